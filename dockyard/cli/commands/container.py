"""Container commands: run, create, start, attach, exec, port, stop, kill, restart, pause, unpause,
wait, rm, rename, prune, logs, commit, export, inspect, ps; and the image-reference helpers that
run (pull on a missing image) and the image commands share."""

from __future__ import annotations

import json
import os
import sys
import time
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Callable

from dockyard.cli.client import APIError, Client, filters_arg, path_quote
from dockyard.cli.formatting import Formatter, ellipsis, go_time_string, human_size, since, truncate_id
from dockyard.cli.context import PROG, Context, StatusError
from dockyard.cli.parser import DockyardParser

# ---------------------------------------------------------------------------------------------
# helpers shared by the multi-target commands


def for_each(ctx: Context, names: list[str], action: Callable[[str], Any], echo: bool = True) -> int:
    """Run ``action`` per name; print the name on success, collect errors like docker (exit 1)."""
    errors = []
    for name in names:
        try:
            result = action(name)
        except APIError as e:
            errors.append(str(e))
            continue
        if echo:
            print(name if result is None else result, flush=True)
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def confirm(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _c(name: str) -> str:
    return f"/containers/{path_quote(name)}"


# ---------------------------------------------------------------------------------------------
# image references (docker's "familiar" names)


def split_reference(ref: str) -> tuple[str, str]:
    """``busybox`` -> ("busybox", "latest"); ``r:5000/a/b:t`` -> ("r:5000/a/b", "t"); digests kept."""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return name, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = ref.rpartition(":")
        return name, tag
    return ref, "latest"


def familiar(ref: str) -> str:
    name, tag = split_reference(ref)
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"


def fully_qualified(name: str) -> str:
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return name
    return "docker.io/" + (name if sep else "library/" + name)


def pull(ctx: Context, ref: str, quiet: bool = False, out=None, platform: str = "",  # noqa: ANN001
         all_tags: bool = False) -> None:
    from dockyard.cli.jsonstream import StreamError, display

    from dockyard.cli import auth

    name, tag = split_reference(ref)
    # every tag: no tag at all in the query (the daemon lists the repository's tags)
    query = {"fromImage": fully_qualified(name), "tag": None if all_tags else tag, "platform": platform or None}
    resp = ctx.client.request("POST", "/images/create", query, headers=auth.header(auth.registry_of(name)))
    stream = out or sys.stderr
    try:
        lines = iter(resp.readline, b"")
        if quiet:
            for _ in display_quiet(lines):
                pass
        else:
            display(lines, stream, stream.isatty())
    except StreamError as e:
        raise APIError(500, str(e)) from None


def display_quiet(lines):  # noqa: ANN001, ANN201 - consume a stream, still failing on errors
    from dockyard.cli.jsonstream import StreamError

    for raw in lines:
        raw = raw.strip()
        if raw:
            msg = json.loads(raw)
            if msg.get("errorDetail") or msg.get("error"):
                raise StreamError((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
            yield msg


# ---------------------------------------------------------------------------------------------
# create / run


def setup_create(p: DockyardParser) -> None:
    from dockyard.cli.runopts import add_container_flags

    add_container_flags(p, run=False)


def setup_run(p: DockyardParser) -> None:
    from dockyard.cli.runopts import add_container_flags

    add_container_flags(p, run=True)


def create_container(ctx: Context, opts: Any, body: dict[str, Any]) -> str:
    query = {"name": opts.name or None, "platform": opts.platform or None}
    image = body["Image"]
    if opts.pull == "always":
        pull(ctx, image, opts.quiet, platform=opts.platform or "")
    try:
        resp = ctx.client.post("/containers/create", query, body)
    except APIError as e:
        if e.status != 404 or not e.message.startswith("No such image") or opts.pull == "never":
            raise
        if not opts.quiet:
            sys.stderr.write(f"Unable to find image '{familiar(image)}' locally\n")
            sys.stderr.flush()
        pull(ctx, image, opts.quiet, platform=opts.platform or "")
        resp = ctx.client.post("/containers/create", query, body)
    for warning in resp.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    if opts.cidfile:
        with open(opts.cidfile, "x", encoding="utf-8") as f:
            f.write(resp["Id"])
    return resp["Id"]


def _validate_pull(opts: Any) -> None:
    if opts.pull not in ("always", "missing", "never"):
        raise ValueError(f'invalid pull option: \'{opts.pull}\': must be one of "always", "missing" or "never"')


def cmd_create(ctx: Context, opts: Any) -> int:
    from dockyard.cli.runopts import OptionError, build_create_body

    try:
        _validate_pull(opts)
        body = build_create_body(opts, run=False)
    except (OptionError, ValueError) as e:
        raise StatusError(125, f"{PROG}: {e}\n\nRun '{PROG} create --help' for more information") from None
    print(create_container(ctx, opts, body))
    return 0


def _run_error(message: str) -> StatusError:
    """docker's reportError + runStartContainerErr: the message, then 125/126/127."""
    text = f"{PROG}: {message}\n\nRun '{PROG} run --help' for more information"
    trimmed = message.removeprefix("Error response from daemon: ")
    code = 125
    if any(s in trimmed for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        code = 127
    elif "permission denied" in trimmed or "is a directory" in trimmed:
        code = 126
    return StatusError(code, text)


class _Waiter:
    """POST /containers/{id}/wait on a connection of its own, sent before start like docker.

    ``start()`` returns once the daemon has answered with headers (so the wait is registered);
    ``result()`` gives the exit status.
    """

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        import threading  # only run and start -a wait: not on every command's start-up

        self.client, self.cid, self.condition = client, cid, condition
        self.registered = threading.Event()
        self.done = threading.Event()
        self.status = 125
        self.error: str | None = None

    def start(self) -> None:
        import threading

        threading.Thread(target=self._run, daemon=True).start()
        self.registered.wait(5)

    def _run(self) -> None:
        conn = self.client._new_connection(None)
        try:
            conn.request("POST", self.client.url(_c(self.cid) + "/wait", {"condition": self.condition}),
                         headers={"User-Agent": "Dockyard-Client/0.1.0 (linux)", "Content-Type": "text/plain"})
            resp = conn.getresponse()
            self.registered.set()
            data = resp.read()
            if resp.status >= 400:
                self.error = str(APIError(resp.status, _message(data)))
                return
            body = json.loads(data.strip().splitlines()[-1]) if data.strip() else {}
            self.status = int(body.get("StatusCode", 0))
            err = body.get("Error") or {}
            if err.get("Message"):
                self.error = err["Message"]
        except (OSError, ValueError) as e:
            self.error = str(e)
        finally:
            self.registered.set()
            self.done.set()
            conn.close()

    def result(self) -> int:
        while not self.done.wait(0.5):
            pass
        return self.status


def _message(data: bytes) -> str:
    try:
        return json.loads(data).get("message", "")
    except ValueError:
        return data.decode(errors="replace").strip()


class _SignalProxy:
    """Forward the signals we receive to the container (docker's --sig-proxy)."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")

    def __init__(self, client: Client, cid: str) -> None:
        import signal

        self.client, self.cid = client, cid
        for name in self.SIGNALS:
            signal.signal(getattr(signal, name), self._forward)

    def _forward(self, signum: int, frame: object) -> None:
        def send() -> None:
            conn = self.client._new_connection(5)
            try:
                conn.request("POST", self.client.url(_c(self.cid) + "/kill", {"signal": signum}))
                conn.getresponse().read()
            except OSError:
                pass
            finally:
                conn.close()

        import threading

        threading.Thread(target=send, daemon=True).start()


def cmd_run(ctx: Context, opts: Any) -> int:
    from dockyard.cli.runopts import ConflictingOptions, OptionError, build_create_body

    try:
        _validate_pull(opts)
        body = build_create_body(opts, run=True)
    except (OptionError, ValueError) as e:
        raise StatusError(125, f"{PROG}: {e}\n\nRun '{PROG} run --help' for more information") from None
    except ConflictingOptions as e:
        raise StatusError(1, str(e)) from None
    tty = opts.tty
    if not opts.detach and body["AttachStdin"] and tty and not os.isatty(sys.stdin.fileno()):
        raise StatusError(1, "the input device is not a TTY")
    try:
        cid = create_container(ctx, opts, body)
    except APIError as e:
        raise _run_error(str(e)) from None
    client = ctx.client
    attached_out = body["AttachStdout"] or body["AttachStderr"]
    if opts.detach:
        try:
            client.post(_c(cid) + "/start")
        except APIError as e:
            raise _run_error(str(e)) from None
        print(cid)
        return 0

    from dockyard.cli import streams

    if opts.sig_proxy and not tty:
        _SignalProxy(client, cid)
    attachment = None
    if body["AttachStdin"] or attached_out:
        query = {"stream": True, "stdin": body["AttachStdin"], "stdout": body["AttachStdout"],
                 "stderr": body["AttachStderr"]}
        sock, first = client.hijack(_c(cid) + "/attach", {k: v for k, v in query.items() if v})
        detach_keys = streams.parse_detach_keys(opts.detach_keys)
        attachment = streams.Attachment(sock, first, tty, body["AttachStdin"], detach_keys)
    waiter = _Waiter(client, cid, "removed" if opts.rm else "next-exit")
    waiter.start()
    raw = streams.RawTerminal(sys.stdin.fileno()) if tty and body["AttachStdin"] else None
    if raw:
        raw.__enter__()
    try:
        if attachment:
            attachment.start()
        try:
            client.post(_c(cid) + "/start")
        except APIError as e:
            if attachment:
                attachment.close()
            if opts.rm:
                waiter.result()
            raise _run_error(str(e)) from None
        if tty and attached_out and os.isatty(sys.stdout.fileno()):
            streams.monitor_tty_size(
                lambda h, w: client.post(_c(cid) + "/resize", {"h": h, "w": w}), sys.stdout.fileno())
        if attachment:
            try:
                attachment.wait()
            except streams.Detached:
                return 0
            finally:
                attachment.close()
        if not attached_out:
            print(cid)
            return 0
    finally:
        if raw:
            raw.__exit__(None, None, None)
    status = waiter.result()
    if waiter.error and status == 125:
        sys.stderr.write(f"{waiter.error}\n")
    return status


# ---------------------------------------------------------------------------------------------
# start / attach


def setup_start(p: DockyardParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.positional("CONTAINER [CONTAINER...]", 1)


def _attach_and_wait(ctx: Context, cid: str, info: dict[str, Any], stdin: bool, detach_keys: str,
                     start: bool) -> int:
    from dockyard.cli import streams

    client = ctx.client
    tty = bool(info["Config"].get("Tty"))
    query = {"stream": True, "stdout": True, "stderr": True, "stdin": stdin or None}
    sock, first = client.hijack(_c(cid) + "/attach", {k: v for k, v in query.items() if v})
    attachment = streams.Attachment(sock, first, tty, stdin, streams.parse_detach_keys(detach_keys))
    waiter = _Waiter(client, cid, "next-exit" if start else "not-running")
    waiter.start()
    started = (lambda: client.post(_c(cid) + "/start")) if start else None
    if _follow(client, attachment, tty, stdin, _c(cid) + "/resize", started):
        return 0
    return waiter.result()


def _follow(client: Any, attachment: Any, tty: bool, stdin: bool, resize_path: str,
            on_started: Any = None) -> bool:
    """Stream an attach or exec session to its end: the terminal raw with a TTY and stdin, its
    size sent on every change. True when the user detached (the detach keys)."""
    from dockyard.cli import streams

    raw = streams.RawTerminal(sys.stdin.fileno()) if tty and stdin else None
    if raw:
        raw.__enter__()
    try:
        attachment.start()
        if on_started is not None:
            on_started()
        if tty and os.isatty(sys.stdout.fileno()):
            streams.monitor_tty_size(lambda h, w: client.post(resize_path, {"h": h, "w": w}),
                                     sys.stdout.fileno())
        try:
            attachment.wait()
        except streams.Detached:
            return True
        finally:
            attachment.close()
    finally:
        if raw:
            raw.__exit__(None, None, None)
    return False


def cmd_start(ctx: Context, opts: Any) -> int:
    if opts.attach or opts.interactive:
        if len(opts.args) > 1:
            raise StatusError(1, "you cannot start and attach multiple containers at once")
        info = ctx.client.get(_c(opts.args[0]) + "/json")
        return _attach_and_wait(ctx, info["Id"], info, opts.interactive, opts.detach_keys, start=True)
    errors, failed = [], []
    for name in opts.args:
        try:
            ctx.client.post(_c(name) + "/start")
            print(name, flush=True)
        except APIError as e:
            errors.append(str(e))
            failed.append(name)
    if errors:
        errors.append("Error: failed to start containers: " + ", ".join(failed))
        raise StatusError(1, "\n".join(errors))
    return 0


def setup_attach(p: DockyardParser) -> None:
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", action="store_true", default=True, help="Proxy all received signals to the process")
    p.positional("CONTAINER", 1, 1)


def cmd_attach(ctx: Context, opts: Any) -> int:
    info = ctx.client.get(_c(opts.args[0]) + "/json")
    if not info["State"].get("Running"):
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if info["State"].get("Paused"):
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    stdin = bool(info["Config"].get("OpenStdin")) and not opts.no_stdin
    return _attach_and_wait(ctx, info["Id"], info, stdin, opts.detach_keys, start=False)


# ---------------------------------------------------------------------------------------------
# exec


def setup_exec_(p: DockyardParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-u", "--user", default="", help='Username or UID (format: "<name|uid>[:<group|gid>]")')
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    p.command_line("CONTAINER COMMAND [ARG...]")
    p.min_args = 2


def cmd_exec_(ctx: Context, opts: Any) -> int:
    from dockyard.cli import streams
    from dockyard.cli.runopts import OptionError, exec_env

    name, *cmd = opts.args
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(sys.stdin.fileno()):
        raise StatusError(1, "the input device is not a TTY")
    try:
        env = exec_env(opts.env_file, opts.env)
    except OptionError as e:
        raise StatusError(125, f"{PROG}: {e}\n\nRun '{PROG} exec --help' for more information") from None
    client = ctx.client
    attach = not opts.detach
    body = {"User": opts.user, "Privileged": opts.privileged, "Tty": opts.tty,
            "AttachStdin": opts.interactive and attach, "AttachStderr": attach, "AttachStdout": attach,
            "Detach": opts.detach, "DetachKeys": opts.detach_keys, "Env": env, "WorkingDir": opts.workdir,
            "Cmd": cmd}
    exec_id = client.post(_c(name) + "/exec", body=body)["Id"]
    if opts.detach:
        client.post(f"/exec/{exec_id}/start", body={"Detach": True, "Tty": opts.tty})
        return 0
    sock, first = client.hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": opts.tty})
    attachment = streams.Attachment(sock, first, opts.tty, body["AttachStdin"],
                                    streams.parse_detach_keys(opts.detach_keys))
    if _follow(client, attachment, opts.tty, body["AttachStdin"], f"/exec/{exec_id}/resize"):
        return 0
    return int(client.get(f"/exec/{exec_id}/json").get("ExitCode") or 0)


# ---------------------------------------------------------------------------------------------
# port


def setup_port(p: DockyardParser) -> None:
    p.positional("CONTAINER [PRIVATE_PORT[/PROTO]]", 1, 2)


def cmd_port(ctx: Context, opts: Any) -> int:
    info = ctx.client.get(_c(opts.args[0]) + "/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}

    def host_port(binding: dict[str, str]) -> str:
        ip = binding.get("HostIp", "")
        return f"[{ip}]:{binding.get('HostPort', '')}" if ":" in ip else f"{ip}:{binding.get('HostPort', '')}"

    if len(opts.args) == 2:
        port, _, proto = opts.args[1].partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise StatusError(1, f"Error: No public port '{key}' published for {opts.args[0]}")
        sys.stdout.write("".join(host_port(b) + "\n" for b in bindings))
        return 0
    lines = [f"{key} -> {host_port(b)}" for key, bindings in ports.items() for b in bindings or []]
    sys.stdout.write("".join(line + "\n" for line in sorted(lines)))
    return 0


# ---------------------------------------------------------------------------------------------
# top / diff / update


def setup_top(p: DockyardParser) -> None:
    p.command_line("CONTAINER [ps OPTIONS]")


def cmd_top(ctx: Context, opts: Any) -> int:
    from dockyard.cli.formatting import tabwrite

    name, *ps_args = opts.args
    top = ctx.client.get(_c(name) + "/top", {"ps_args": " ".join(ps_args) or None})
    rows = [top.get("Titles") or [], *(top.get("Processes") or [])]
    sys.stdout.write(tabwrite("".join("\t".join(r) + "\n" for r in rows), minwidth=20))
    return 0


def setup_diff(p: DockyardParser) -> None:
    p.positional("CONTAINER", 1, 1)


def cmd_diff(ctx: Context, opts: Any) -> int:
    changes = ctx.client.get(_c(opts.args[0]) + "/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    sys.stdout.write("".join(f"{kinds.get(c.get('Kind'), '?')} {c.get('Path', '')}\n" for c in changes))
    return 0


def setup_update(p: DockyardParser) -> None:
    from dockyard.cli.runopts import bytes_flag, nano_cpus

    a = p.add_argument
    a("--blkio-weight", type=int, default=0, help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
    a("--cpu-period", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpu-rt-period", type=int, default=0, help="Limit the CPU real-time period in microseconds")
    a("--cpu-rt-runtime", type=int, default=0, help="Limit the CPU real-time runtime in microseconds")
    a("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    a("--cpus", type=nano_cpus, default=0, metavar="decimal", help="Number of CPUs")
    a("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", type=bytes_flag("-m, --memory"), default=0, metavar="bytes", help="Memory limit")
    a("--memory-reservation", type=bytes_flag("--memory-reservation"), default=0, metavar="bytes",
      help="Memory soft limit")
    a("--memory-swap", type=bytes_flag("--memory-swap", allow_unlimited=True), default=0, metavar="bytes",
      help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    a("--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)")
    a("--restart", default="", help="Restart policy to apply when a container exits")
    p.positional("CONTAINER [CONTAINER...]", 1)
    # kept to tell "no flag given", which docker refuses
    p.set_defaults(flag_defaults={a.dest: a.default for a in p._actions if a.option_strings and a.dest != "help"})


def cmd_update(ctx: Context, opts: Any) -> int:
    from dockyard.cli.runopts import OptionError, restart_policy

    if all(getattr(opts, k) == v for k, v in opts.flag_defaults.items()):
        raise StatusError(1, "you must provide one or more flags when using this command")

    body: dict[str, Any] = {
        "BlkioWeight": opts.blkio_weight, "CpuShares": opts.cpu_shares, "Memory": opts.memory,
        "NanoCpus": opts.cpus, "CgroupParent": "", "BlkioWeightDevice": None, "BlkioDeviceReadBps": None,
        "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
        "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota, "CpuRealtimePeriod": opts.cpu_rt_period,
        "CpuRealtimeRuntime": opts.cpu_rt_runtime, "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems,
        "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": opts.memory_reservation, "MemorySwap": opts.memory_swap, "MemorySwappiness": None,
        "OomKillDisable": None, "PidsLimit": opts.pids_limit, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    }
    if opts.restart:
        try:
            body["RestartPolicy"] = restart_policy(opts.restart)
        except OptionError as e:
            raise StatusError(125, f"{PROG}: {e}\n\nRun '{PROG} update --help' for more information") from None

    def update(name: str) -> None:
        resp = ctx.client.post(_c(name) + "/update", body=body) or {}
        for warning in resp.get("Warnings") or []:
            sys.stderr.write(f"{warning}\n")

    return for_each(ctx, opts.args, update)


# ---------------------------------------------------------------------------------------------
# stats


class StatsRow:
    """docker's stats columns computed from one /containers/{id}/stats sample (with precpu)."""

    def __init__(self, ref: str, cid: str, name: str, s: dict[str, Any], trunc: bool) -> None:
        self._ref, self._id, self._name, self._s, self._trunc = ref, cid, name, s, trunc

    def ID(self) -> str:
        return truncate_id(self._id) if self._trunc else self._id

    def Container(self) -> str:
        return self._ref  # as the user named it

    def Name(self) -> str:
        return self._name.lstrip("/") or "--"

    def _cpu(self) -> float:
        s = self._s
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
        system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
        online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
        return cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0

    def _mem(self) -> tuple[float, float]:
        mem = self._s.get("memory_stats") or {}
        usage, stats = mem.get("usage") or 0, mem.get("stats") or {}
        for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, then v2: page cache is not "used"
            if key in stats and stats[key] < usage:
                usage -= stats[key]
                break
        return usage, mem.get("limit") or 0

    def CPUPerc(self) -> str:
        return f"{self._cpu():.2f}%"

    def MemUsage(self) -> str:
        from dockyard.cli.commands.system import bytes_size

        usage, limit = self._mem()
        return f"{bytes_size(usage)} / {bytes_size(limit)}"

    def MemPerc(self) -> str:
        usage, limit = self._mem()
        return f"{usage / limit * 100.0 if limit else 0.0:.2f}%"

    def NetIO(self) -> str:
        nets = (self._s.get("networks") or {}).values()
        rx, tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
        return f"{human_size(rx)} / {human_size(tx)}"

    def BlockIO(self) -> str:
        read = write = 0
        for entry in ((self._s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []):
            op = (entry.get("op") or "").lower()
            if op == "read":
                read += entry.get("value", 0)
            elif op == "write":
                write += entry.get("value", 0)
        return f"{human_size(read)} / {human_size(write)}"

    def PIDs(self) -> str:
        return str((self._s.get("pids_stats") or {}).get("current", 0))

    def __json__(self) -> dict[str, str]:
        fields = ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"]
        return {f: getattr(self, f)() for f in fields}


STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def setup_stats(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.positional("[CONTAINER...]", 0)


def _stats_rows(ctx: Context, opts: Any) -> list[StatsRow]:
    if opts.args:
        targets = [(name, name) for name in opts.args]
    else:
        listed = ctx.client.get("/containers/json", {"all": opts.all or None})
        targets = [(c["Id"], (c.get("Names") or ["/"])[0]) for c in listed]
    rows = []
    for ref, name in targets:
        sample = ctx.client.get(_c(ref) + "/stats", {"stream": False}) or {}
        rows.append(StatsRow(ref, sample.get("id") or ref, sample.get("name") or name, sample, not opts.no_trunc))
    return rows


def cmd_stats(ctx: Context, opts: Any) -> int:
    formatter = Formatter(opts.format or "table", STATS_TABLE, STATS_HEADERS)
    if opts.no_stream:
        formatter.render(_stats_rows(ctx, opts))
        return 0
    import io

    while True:  # redraw once a second, as docker does, until interrupted
        buf = io.StringIO()
        formatter.render(_stats_rows(ctx, opts), buf)
        sys.stdout.write("\x1b[2J\x1b[H" + buf.getvalue())
        sys.stdout.flush()
        time.sleep(1)


# ---------------------------------------------------------------------------------------------
# simple lifecycle verbs


def setup_stop(p: DockyardParser) -> None:
    p.add_argument("-s", "--signal", default="", help="Signal to send to the container")
    p.add_argument("-t", "--timeout", "--time", type=int, default=None, help="Seconds to wait before killing the container")
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_stop(ctx: Context, opts: Any) -> int:
    query = {"signal": opts.signal or None, "t": opts.timeout}
    return for_each(ctx, opts.args, lambda n: ctx.client.post(_c(n) + "/stop", query) and None)


def setup_restart(p: DockyardParser) -> None:
    setup_stop(p)


def cmd_restart(ctx: Context, opts: Any) -> int:
    query = {"signal": opts.signal or None, "t": opts.timeout}
    return for_each(ctx, opts.args, lambda n: ctx.client.post(_c(n) + "/restart", query) and None)


def setup_kill(p: DockyardParser) -> None:
    p.add_argument("-s", "--signal", default="", help="Signal to send to the container")
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_kill(ctx: Context, opts: Any) -> int:
    query = {"signal": opts.signal or None}
    return for_each(ctx, opts.args, lambda n: ctx.client.post(_c(n) + "/kill", query) and None)


def setup_pause(p: DockyardParser) -> None:
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_pause(ctx: Context, opts: Any) -> int:
    return for_each(ctx, opts.args, lambda n: ctx.client.post(_c(n) + "/pause") and None)


setup_unpause = setup_pause


def cmd_unpause(ctx: Context, opts: Any) -> int:
    return for_each(ctx, opts.args, lambda n: ctx.client.post(_c(n) + "/unpause") and None)


def setup_wait(p: DockyardParser) -> None:
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_wait(ctx: Context, opts: Any) -> int:
    def wait(name: str) -> str:
        body = ctx.client.post(_c(name) + "/wait")
        err = (body or {}).get("Error") or {}
        if err.get("Message"):
            raise APIError(500, err["Message"])
        return str(body.get("StatusCode", 0))

    return for_each(ctx, opts.args, wait)


def setup_rm(p: DockyardParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_rm(ctx: Context, opts: Any) -> int:
    query = {"force": opts.force or None, "v": opts.volumes or None, "link": opts.link or None}
    return for_each(ctx, opts.args, lambda n: ctx.client.delete(_c(n), query) and None)


def setup_rename(p: DockyardParser) -> None:
    p.positional("CONTAINER NEW_NAME", 2, 2)


def cmd_rename(ctx: Context, opts: Any) -> int:
    old, new = opts.args
    new = new.strip()
    if not old.strip() or not new:
        raise StatusError(1, "Error: Neither old nor new names may be empty")
    try:
        ctx.client.post(_c(old) + "/rename", {"name": new})
    except APIError as e:
        raise StatusError(1, f"{e}\nError: failed to rename container named {old}") from None
    return 0


def setup_prune(p: DockyardParser) -> None:
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "until=<timestamp>")')
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.positional("", 0, 0)


def cmd_prune(ctx: Context, opts: Any) -> int:
    if not opts.force and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    report = ctx.client.post("/containers/prune", {"filters": filters_arg(opts.filter)})
    deleted = report.get("ContainersDeleted") or []
    out = ""
    if deleted:
        out += "Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) + "\n"
    out += f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}\n"
    sys.stdout.write(out)
    return 0


# ---------------------------------------------------------------------------------------------
# logs


def setup_logs(p: DockyardParser) -> None:
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--since", default="", help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--until", default="", help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
    p.positional("CONTAINER", 1, 1)


def get_timestamp(value: str, now: float | None = None) -> str | None:
    """docker's timetypes.GetTimestamp: durations ("10m") relative to now, RFC 3339 dates, unix seconds."""
    import re
    from datetime import datetime

    if not value:
        return None
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", value)
    if m:
        total = 0.0
        scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value):
            total += float(num) * scale[unit]
        t = now - total
        return f"{int(t)}.{int(round(t % 1 * 1e9)):09d}"
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StatusError(1, f'invalid value for "since": failed to parse value as time or duration: "{value}"') from None
    t = dt.timestamp()
    return f"{int(t)}.{int(round(t % 1 * 1e9)):09d}"


def cmd_logs(ctx: Context, opts: Any) -> int:
    from dockyard.cli import streams

    info = ctx.client.get(_c(opts.args[0]) + "/json")
    query = {"stdout": True, "stderr": True, "follow": opts.follow or None,
             "since": get_timestamp(opts.since), "until": get_timestamp(opts.until),
             "timestamps": opts.timestamps or None, "details": opts.details or None, "tail": opts.tail}
    resp = ctx.client.request("GET", _c(opts.args[0]) + "/logs", query)
    chunks = streams.response_chunks(resp)
    if info["Config"].get("Tty"):
        streams.copy_raw(chunks, sys.stdout.buffer)
    else:
        streams.demux(chunks, sys.stdout.buffer, sys.stderr.buffer)
    return 0


# ---------------------------------------------------------------------------------------------
# commit / export


def setup_commit(p: DockyardParser) -> None:
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True, help="Pause container during commit (default true)")
    p.positional("CONTAINER [REPOSITORY[:TAG]]", 1, 2)


def cmd_commit(ctx: Context, opts: Any) -> int:
    query: dict[str, Any] = {"container": opts.args[0], "author": opts.author or None,
                             "comment": opts.message or None,
                             "pause": opts.pause}
    if len(opts.args) == 2:
        repo, tag = split_reference(opts.args[1])
        query["repo"] = repo
        query["tag"] = tag if ":" in opts.args[1].rsplit("/", 1)[-1] else None
    if opts.change:
        query["changes"] = "\n".join(opts.change)  # one value, split on newlines by the daemon
    resp = ctx.client.request("POST", "/commit", query)
    print(json.loads(resp.read())["Id"])
    return 0


def setup_export(p: DockyardParser) -> None:
    p.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    p.positional("CONTAINER", 1, 1)


def write_stream_to(resp, output: str) -> None:  # noqa: ANN001 - HTTPResponse
    """Copy a (tar) response body to the -o file or to stdout."""
    from dockyard.cli import streams

    target = open(output, "wb") if output else sys.stdout.buffer
    try:
        streams.copy_raw(streams.response_chunks(resp), target)
    finally:
        if output:
            target.close()


def cmd_export(ctx: Context, opts: Any) -> int:
    if not opts.output and sys.stdout.isatty():
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", _c(opts.args[0]) + "/export")
    write_stream_to(resp, opts.output)
    return 0


# ---------------------------------------------------------------------------------------------
# inspect (container only; the generic `inspect` lives in commands/inspect.py)


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.positional("CONTAINER [CONTAINER...]", 1)


def cmd_inspect(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.inspect import inspect_objects

    def get(name: str) -> Any:
        return ctx.client.get(_c(name) + "/json", {"size": opts.size or None})

    return inspect_objects(opts.args, get, opts.format)


# ---------------------------------------------------------------------------------------------
# ps


class ContainerRow:
    """The fields docker's ``ps --format`` offers, computed from one /containers/json entry."""

    def __init__(self, c: dict[str, Any], trunc: bool, now: float) -> None:
        self._c, self._trunc, self._now = c, trunc, now

    def ID(self) -> str:
        id_ = self._c.get("Id", "")
        return truncate_id(id_) if self._trunc else id_

    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self._c.get("Names") or []]
        if self._trunc:
            # linked names ("/other/alias") are only shown with --no-trunc
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    def Image(self) -> str:
        image = self._c.get("Image") or "<no image>"
        if self._trunc:
            if image.startswith("sha256:") and image[7:] == (self._c.get("ImageID") or "")[7:]:
                return truncate_id(image)
            if "@" in image:
                image = image.split("@", 1)[0]
        return image

    def Command(self) -> str:
        command = self._c.get("Command") or ""
        if self._trunc:
            command = ellipsis(command, 20)
        return json.dumps(command, ensure_ascii=False)

    def CreatedAt(self) -> str:
        return go_time_string(self._c.get("Created") or 0)

    def RunningFor(self) -> str:
        return since(self._c.get("Created") or 0, self._now)

    def Ports(self) -> str:
        return display_ports(self._c.get("Ports") or [])

    def State(self) -> str:
        return self._c.get("State") or ""

    def Status(self) -> str:
        return self._c.get("Status") or ""

    def Size(self) -> str:
        srw = human_size(self._c.get("SizeRw") or 0)
        if (self._c.get("SizeRootFs") or 0) > 0:
            return f"{srw} (virtual {human_size(self._c['SizeRootFs'])})"
        return srw

    def Labels(self) -> str:
        labels = self._c.get("Labels") or {}
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Label(self, name: str) -> str:
        return (self._c.get("Labels") or {}).get(name, "")

    def Mounts(self) -> str:
        names = []
        for m in self._c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            if self._trunc:
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self._c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        nets = (self._c.get("NetworkSettings") or {}).get("Networks") or {}
        return ",".join(sorted(nets))

    def Platform(self) -> Any:
        return self._c.get("ImageManifestDescriptor", {}).get("platform") if self._c.get("ImageManifestDescriptor") else None

    def __json__(self) -> dict[str, Any]:
        fields = ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
                  "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status"]
        return {f: getattr(self, f)() for f in fields}


PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
              "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
              "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def display_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: same-number mappings folded into ranges, others listed after."""
    ports = sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0),
                                         p.get("Type", "")))
    groups: dict[str, list[int]] = {}  # key -> [first, last]; insertion order is output order
    result: list[str] = []
    host_mappings: list[str] = []
    for p in ports:
        private, public, ip, ptype = p.get("PrivatePort", 0), p.get("PublicPort", 0), p.get("IP", ""), p.get("Type", "")
        key = ptype
        if ip:
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                host_mappings.append(f"{host}:{public}->{private}/{ptype}")
                continue
            key = f"{ip}/{ptype}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(key, *group))
            del groups[key]  # re-inserted at the end, as docker's map keeps the first key's order
            groups[key] = [private, private]
    result = [_port_group(k, *g) for k, g in groups.items()] + host_mappings if not result else \
        result + [_port_group(k, *g) for k, g in groups.items()] + host_mappings
    return ", ".join(result)


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, ptype = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        host = f"[{ip}]" if ":" in ip else ip
        group = f"{host}:{group}->{group}"
    return f"{group}/{ptype}"


def setup_ps(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.positional("", 0, 0)


class _FieldRecorder:
    """Stands in for a row to learn which fields a --format template uses (docker's FieldsUsed)."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self._row = ContainerRow({}, True, 0.0)

    def __getattr__(self, name: str) -> Any:
        self.used.add(name)
        return getattr(self._row, name)

    def __json__(self) -> dict[str, Any]:
        self.used.add("Size")
        return {}


def _template_uses_size(fmt: str) -> bool:
    from dockyard.cli.template import Template, TemplateError

    fmt = {"json": "{{json .}}", "table": ""}.get(fmt, fmt).removeprefix("table")
    recorder = _FieldRecorder()
    try:
        Template(fmt.replace("\\t", "\t")).render(recorder)
    except TemplateError:
        return False
    return "Size" in recorder.used


def cmd_ps(ctx: Context, opts: Any) -> int:
    limit = 1 if opts.latest else (opts.last if opts.last > 0 else None)
    fmt = opts.format
    size = opts.size or (bool(fmt) and not opts.quiet and _template_uses_size(fmt))
    query = {"all": True if opts.all or limit else None, "limit": limit, "size": size or None,
             "filters": filters_arg(opts.filter)}
    containers = ctx.client.get("/containers/json", query)
    now = time.time()
    rows = [ContainerRow(c, not opts.no_trunc, now) for c in containers]
    if opts.quiet:
        sys.stdout.write("".join(r.ID() + "\n" for r in rows))
        return 0
    default = PS_TABLE + ("\t{{.Size}}" if opts.size else "")
    Formatter(fmt or "table", default, PS_HEADERS).render(rows)
    return 0
