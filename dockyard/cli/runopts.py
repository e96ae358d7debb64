"""`run`/`create` flags and their translation into the POST /containers/create body.

The body mirrors what docker CLI 28 sends (the same keys and defaults), so the daemon sees one
shape whichever client made the container.
"""

from __future__ import annotations

import argparse
import os
import re
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli.parser import DockyardParser


class OptionError(Exception):
    """A flag value docker would reject before talking to the daemon."""


class ConflictingOptions(Exception):
    """Flags that cannot go together: docker prints the bare message and exits 1."""


def add_container_flags(p: DockyardParser, run: bool) -> None:
    a = p.add_argument
    if run:
        a("-d", "--detach", action="store_true", help="Run container in background and print container ID")
        a("--sig-proxy", action="store_true", default=True, help="Proxy received signals to the process")
        a("--detach-keys", default="", help="Override the key sequence for detaching a container")
    a("--name", default="", help="Assign a name to the container")
    a("--pull", default="missing", help='Pull image before running ("always", "missing", "never")')
    a("-q", "--quiet", action="store_true", help="Suppress the pull output")
    a("--platform", default="", help="Set platform if server is multi-platform capable")
    a("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--cgroup-parent", default="", help="Optional parent cgroup for the container")
    a("--cgroupns", default="", help="Cgroup namespace to use (host|private)")
    a("--cidfile", default="", help="Write the container ID to the file")
    a("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    a("--cpu-period", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpus", type=nano_cpus, default=0, metavar="decimal", help="Number of CPUs")
    a("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--device", action="append", default=[], help="Add a host device to the container")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--dns-option", action="append", default=[], help="Set DNS options")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--domainname", default="", help="Container NIS domain name")
    a("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("--health-cmd", default="", help="Command to run to check health")
    a("--health-interval", type=_duration("--health-interval"), default=0, metavar="duration",
      help="Time between running the check (ms|s|m|h) (default 0s)")
    a("--health-retries", type=int, default=0, help="Consecutive failures needed to report unhealthy")
    a("--health-start-interval", type=_duration("--health-start-interval"), default=0, metavar="duration",
      help="Time between running the check during the start period (ms|s|m|h) (default 0s)")
    a("--health-start-period", type=_duration("--health-start-period"), default=0, metavar="duration",
      help="Start period for the container to initialize before starting health-retries countdown "
           "(ms|s|m|h) (default 0s)")
    a("--health-timeout", type=_duration("--health-timeout"), default=0, metavar="duration",
      help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("-h", "--hostname", default="", help="Container host name")
    a("--init", action="store_true", help="Run an init inside the container that forwards signals and reaps processes")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("--ipc", default="", help="IPC mode to use")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--label-file", action="append", default=[], help="Read in a line delimited file of labels")
    a("--log-driver", default="", help="Logging driver for the container")
    a("--log-opt", action="append", default=[], help="Log driver options")
    a("-m", "--memory", type=bytes_flag("-m, --memory"), default=0, metavar="bytes", help="Memory limit")
    a("--memory-reservation", type=bytes_flag("--memory-reservation"), default=0, metavar="bytes",
      help="Memory soft limit")
    a("--memory-swap", type=bytes_flag("--memory-swap", allow_unlimited=True), default=0, metavar="bytes",
      help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--mount", action="append", default=[], metavar="mount", help="Attach a filesystem mount to the container")
    a("--network", "--net", default="", metavar="network", help="Connect a container to a network")
    a("--network-alias", action="append", default=[], help="Add network-scoped alias for the container")
    a("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    a("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
    a("--link", action="append", default=[], help="Add link to another container")
    a("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    a("--oom-score-adj", type=int, default=0, help="Tune host's OOM preferences (-1000 to 1000)")
    a("--pid", default="", help="PID namespace to use")
    a("--pids-limit", type=int, default=0, help="Tune container pids limit (set -1 for unlimited)")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("--rm", action="store_true", help="Automatically remove the container and its associated anonymous volumes when it exits")
    a("--runtime", default="", help="Runtime to use for this container")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--shm-size", type=bytes_flag("--shm-size"), default=0, metavar="bytes", help="Size of /dev/shm")
    a("--stop-signal", default="", help="Signal to stop the container")
    a("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container")
    a("--sysctl", action="append", default=[], metavar="map", help="Sysctl options")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--ulimit", action="append", default=[], metavar="ulimit", help="Ulimit options")
    a("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--userns", default="", help="User namespace to use")
    a("--uts", default="", help="UTS namespace to use")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--volume-driver", default="", help="Optional volume driver for the container")
    a("--volumes-from", action="append", default=[], help="Mount volumes from the specified container(s)")
    a("-w", "--workdir", default="", help="Working directory inside the container")
    p.command_line("IMAGE [COMMAND] [ARG...]")


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "1024" (binary multiples; a trailing b/ib is allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", value.lower())
    if not m:
        raise OptionError(f"invalid size: '{value}'")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def bytes_flag(flag: str, allow_unlimited: bool = False):  # noqa: ANN202 - an argparse type
    """A size flag parsed while the flags are read, so a bad value is a flag error (exit 125)."""
    def parse(value: str) -> int:
        if allow_unlimited and value == "-1":
            return -1
        try:
            return ram_in_bytes(value)
        except OptionError:
            raise argparse.ArgumentTypeError(
                f'invalid argument "{value}" for "{flag}" flag: invalid size: \'{value}\'') from None
    return parse


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}
_GO_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"


def _duration(flag: str):  # noqa: ANN202 - an argparse type
    """A Go duration flag ("200ms", "1m30s", "-1s") in nanoseconds, parsed as pflag does."""
    def parse(value: str) -> int:
        if not re.fullmatch(rf"[-+]?(?:{_GO_PART})+|[-+]?0", value):
            raise argparse.ArgumentTypeError(
                f'invalid argument "{value}" for "{flag}" flag: time: invalid duration "{value}"')
        total = sum(float(n) * _GO_UNITS[u] for n, u in re.findall(_GO_PART, value))
        return -int(total) if value.startswith("-") else int(total)
    return parse


def _healthcheck(opts: argparse.Namespace) -> dict[str, Any] | None:
    """docker's Healthcheck from the --health-* flags: NONE with --no-healthcheck."""
    given = (opts.health_cmd or opts.health_interval or opts.health_timeout or opts.health_start_period
             or opts.health_retries or opts.health_start_interval)
    if opts.no_healthcheck:
        if given:
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for flag, value in (("interval", opts.health_interval), ("timeout", opts.health_timeout),
                        ("retries", opts.health_retries), ("start-period", opts.health_start_period),
                        ("start-interval", opts.health_start_interval)):
        if value < 0:
            raise OptionError(f"--health-{flag} cannot be negative")
    return {"Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None,
            "Interval": opts.health_interval, "Timeout": opts.health_timeout,
            "StartPeriod": opts.health_start_period, "StartInterval": opts.health_start_interval,
            "Retries": opts.health_retries}


def nano_cpus(value: str) -> int:
    try:
        return int(round(float(value) * 1e9))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'invalid argument "{value}" for "--cpus" flag: failed to parse {value} as a rational number') from None


def _env(opts: argparse.Namespace) -> list[str] | None:
    return exec_env(opts.env_file, opts.env)


def exec_env(env_files: list[str], entries: list[str]) -> list[str] | None:
    """-e and --env-file values (files first), as docker merges them."""
    env: list[str] = []
    for path in env_files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise OptionError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
        for line in lines:
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            env.append(_env_entry(line))
    env += [_env_entry(e) for e in entries]
    return env or None


def _env_entry(entry: str) -> str:
    # "-e NAME" takes NAME from our environment; an unset NAME stays bare (docker does the same)
    if "=" not in entry and entry in os.environ:
        return f"{entry}={os.environ[entry]}"
    return entry


def _labels(opts: argparse.Namespace) -> dict[str, str]:
    labels: dict[str, str] = {}
    for path in opts.label_file:
        with open(path, encoding="utf-8") as f:
            for line in f.read().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    k, _, v = line.partition("=")
                    labels[k] = v
    for item in opts.label:
        k, _, v = item.partition("=")
        labels[k] = v
    return labels


def _ulimits(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for v in values:
        name, sep, limits = v.partition("=")
        if not sep:
            raise OptionError(f'invalid argument "{v}" for "--ulimit" flag: invalid ulimit argument: {v}')
        soft, _, hard = limits.partition(":")
        try:
            out.append({"Name": name, "Hard": int(hard or soft), "Soft": int(soft)})
        except ValueError:
            raise OptionError(f'invalid argument "{v}" for "--ulimit" flag: invalid ulimit argument: {v}') from None
    return out


def restart_policy(value: str) -> dict[str, Any]:
    """docker's ParseRestartPolicy: the name is checked by the daemon, only the shape here."""
    name, sep, count = value.partition(":")
    if sep and not name:
        raise OptionError("invalid restart policy format: no policy provided before colon")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise OptionError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def _ports(opts: argparse.Namespace) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts.expose:
        port, _, proto = spec.partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    for spec in opts.publish:
        spec, _, proto = spec.partition("/")
        parts = spec.rsplit(":", 2) if not spec.startswith("[") else _split_v6(spec)
        if len(parts) == 1:
            host_ip, host_port, ctr = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, (host_port, ctr) = "", parts
        else:
            host_ip, host_port, ctr = parts
        key = f"{ctr}/{proto or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip.strip("[]"), "HostPort": host_port})
    return exposed, bindings


def _split_v6(spec: str) -> list[str]:
    ip, _, rest = spec[1:].partition("]:")
    return [ip, *rest.split(":", 1)]


def _volumes(opts: argparse.Namespace) -> tuple[list[str] | None, dict[str, dict]]:
    binds: list[str] = []
    anonymous: dict[str, dict] = {}
    for spec in opts.volume:
        if ":" in spec:
            binds.append(spec)
        else:
            anonymous[spec] = {}
    return binds or None, anonymous


def _mounts(values: list[str]) -> list[dict[str, Any]] | None:
    """--mount, as docker's opts.MountOpt: CSV key=value fields; type defaults to volume."""
    mounts = [_mount(spec) for spec in values]
    return mounts or None


_RECURSIVE = {"enabled": {}, "disabled": {"NonRecursive": True},
              "writable": {"ReadOnlyNonRecursive": True}, "readonly": {"ReadOnlyForceRecursive": True}}


def _csv_fields(line: str) -> list[str]:
    """One CSV record as Go's encoding/csv reads it (docker parses --mount so): a field may be
    double-quoted, with "" for a quote inside; csv would cost an import on every command."""
    fields, field, quoted, i = [], [], False, 0
    while i < len(line):
        c = line[i]
        if quoted:
            if c == '"' and line[i + 1:i + 2] == '"':
                field.append('"')
                i += 1
            elif c == '"':
                quoted = False
            else:
                field.append(c)
        elif c == '"' and not field:
            quoted = True
        elif c == ",":
            fields.append("".join(field))
            field = []
        else:
            field.append(c)
        i += 1
    if line:
        fields.append("".join(field))
    return fields


def _mount(spec: str) -> dict[str, Any]:
    def bad(reason: str) -> OptionError:
        return OptionError(f'invalid argument "{spec}" for "--mount" flag: {reason}')

    def parse_bool(key: str, value: str) -> bool:
        if value.lower() in ("1", "t", "true"):
            return True
        if value.lower() in ("0", "f", "false"):
            return False
        raise bad(f"invalid value for {key}: {value}")

    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in _csv_fields(spec):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key in ("readonly", "ro"):
                m["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind["NonRecursive"] = True
            else:
                raise bad(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = parse_bool(key, value)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = parse_bool(key, value)
        elif key == "bind-recursive":
            if value not in _RECURSIVE:
                raise bad(f'invalid value for {key}: {value} (must be "enabled", "disabled", "writable", '
                          'or "readonly")')
            bind.update(_RECURSIVE[value])
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "volume-nocopy":
            volume["NoCopy"] = parse_bool(key, value)
        elif key == "volume-label":
            k, _, v = value.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            try:
                tmpfs["SizeBytes"] = ram_in_bytes(value)
            except OptionError:
                raise bad(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise bad(f"invalid value for {key}: {value}") from None
        else:
            raise bad(f"unexpected key '{key}' in '{field}'")
    if not m.get("Target"):
        raise bad("target is required")
    for options, name, prefix in ((bind, "BindOptions", "bind"), (volume, "VolumeOptions", "volume"),
                                  (tmpfs, "TmpfsOptions", "tmpfs")):
        if options:
            if m["Type"] != prefix:
                raise bad(f"cannot mix '{prefix}-*' options with mount type '{m['Type']}'")
            m[name] = options
    if bind.get("ReadOnlyForceRecursive") and not m.get("ReadOnly"):
        raise bad("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction")
    return m


def _devices(values: list[str]) -> list[dict[str, str]]:
    out = []
    for v in values:
        parts = v.split(":")
        host = parts[0]
        ctr = parts[1] if len(parts) > 1 and not re.fullmatch(r"[rwm]+", parts[1]) else host
        perms = parts[-1] if len(parts) > 1 and re.fullmatch(r"[rwm]+", parts[-1]) else "rwm"
        out.append({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms})
    return out


def build_create_body(opts: argparse.Namespace, run: bool) -> dict[str, Any]:
    """The create body docker would send for these flags (image is ``opts.args[0]``)."""
    image, *cmd = opts.args
    attach = [a.lower() for a in opts.attach]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise OptionError(f'invalid argument "{a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR')
    detach = run and opts.detach
    if detach and attach:
        raise ConflictingOptions("conflicting options: cannot specify both --attach and --detach")
    if attach:
        attach_stdin, attach_stdout, attach_stderr = ("stdin" in attach, "stdout" in attach, "stderr" in attach)
    else:
        attach_stdin, attach_stdout, attach_stderr = opts.interactive, True, True
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    exposed, bindings = _ports(opts)
    binds, anonymous = _volumes(opts)
    entrypoint = None
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else [""]
    network = opts.network or "default"
    log_config: dict[str, Any] = {"Type": opts.log_driver, "Config": {}}
    for item in opts.log_opt:
        k, _, v = item.partition("=")
        log_config["Config"][k] = v
    tmpfs = {}
    for item in opts.tmpfs:
        path, _, options = item.partition(":")
        tmpfs[path] = options
    sysctls = dict(item.partition("=")[::2] for item in opts.sysctl)
    host_config: dict[str, Any] = {
        "Binds": binds, "ContainerIDFile": opts.cidfile, "LogConfig": log_config, "NetworkMode": network,
        "PortBindings": bindings, "RestartPolicy": restart_policy(opts.restart), "AutoRemove": opts.rm,
        "VolumeDriver": opts.volume_driver, "VolumesFrom": opts.volumes_from or None,
        "ConsoleSize": [0, 0], "CapAdd": opts.cap_add or None, "CapDrop": opts.cap_drop or None,
        "CgroupnsMode": opts.cgroupns, "Dns": opts.dns, "DnsOptions": opts.dns_option,
        "DnsSearch": opts.dns_search, "ExtraHosts": opts.add_host or None, "GroupAdd": opts.group_add or None,
        "IpcMode": opts.ipc, "Cgroup": "", "Links": opts.link or None, "OomScoreAdj": opts.oom_score_adj,
        "PidMode": opts.pid, "Privileged": opts.privileged, "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only, "SecurityOpt": opts.security_opt or None, "UTSMode": opts.uts,
        "UsernsMode": opts.userns, "ShmSize": opts.shm_size, "Isolation": "",
        "CpuShares": opts.cpu_shares, "Memory": opts.memory,
        "NanoCpus": opts.cpus, "CgroupParent": opts.cgroup_parent, "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": opts.cpu_period,
        "CpuQuota": opts.cpu_quota, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems, "Devices": _devices(opts.device),
        "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": opts.memory_reservation,
        "MemorySwap": opts.memory_swap, "MemorySwappiness": -1,
        "OomKillDisable": opts.oom_kill_disable, "PidsLimit": opts.pids_limit,
        "Ulimits": _ulimits(opts.ulimit), "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
    }
    if opts.runtime:
        host_config["Runtime"] = opts.runtime
    if opts.init:
        host_config["Init"] = True
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if sysctls:
        host_config["Sysctls"] = sysctls
    mounts = _mounts(opts.mount)
    if mounts:
        host_config["Mounts"] = mounts
    endpoint: dict[str, Any] = {"Aliases": opts.network_alias or None}
    if opts.ip or opts.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": opts.ip, "IPv6Address": opts.ip6}
    if opts.mac_address:
        endpoint["MacAddress"] = opts.mac_address
    config: dict[str, Any] = {
        "Hostname": opts.hostname, "Domainname": opts.domainname, "User": opts.user,
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout, "AttachStderr": attach_stderr,
        **({"ExposedPorts": exposed} if exposed else {}),
        "Tty": opts.tty, "OpenStdin": opts.interactive, "StdinOnce": bool(attach_stdin and not detach),
        "Env": _env(opts), "Cmd": cmd or None, "Image": image, "Volumes": anonymous,
        "WorkingDir": opts.workdir, "Entrypoint": entrypoint, "OnBuild": None, "Labels": _labels(opts),
    }
    healthcheck = _healthcheck(opts)
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    config["HostConfig"] = host_config
    config["NetworkingConfig"] = {"EndpointsConfig": {network: endpoint} if network != "default" or
                                  opts.network_alias or opts.ip or opts.ip6 or opts.mac_address else {}}
    return config
