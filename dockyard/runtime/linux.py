"""``DockyardRuntime``: our OCI runtime, run in-process by the shim.

``create`` hands the container to an init waiting on a socket pair, a child of
the calling process (so the caller reaps it and sees its exit status), or with
``siblings`` of the caller's parent (which then does): one the caller forked
ahead (``prepare_init``), or, when none fits, one forked now; it returns once
the init is set up and blocked before exec. ``start`` releases it
through exec.fifo. The other verbs work from any process through
``<root>/<id>/state.json`` (see ``state``). The child's side is ``init``.

Exit status and errors, for the caller:
- setup failures (bad mount, missing binary, bad cwd, ...) raise from ``create``
  with the init's message, as with runc; an execve that fails after ``start``
  (see ``init``) shows on the container's stderr and in its exit status.
  Messages starting ``exec: `` or ``chdir to cwd`` are InvalidParameter (the
  daemon maps them to exit codes 127/126 as moby does), the rest System.
- the container's exit status is the init's wait status, collected by the
  caller with waitpid (the caller must be the init's parent; ``create`` never
  waits for the init itself, except to reap it after a failed setup).
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import signal
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from dockyard import errdefs
from dockyard.oci import runtime_spec
from dockyard.oci.defaults import DEFAULT_CAPABILITIES
from dockyard.oci.runtime_spec import Capabilities, Seccomp, Spec
from dockyard.runtime import caps, console, execproc, init, pages, seccomp, state
from dockyard.runtime import syscalls as sc
from dockyard.runtime.base import RuntimeState
from dockyard.runtime.cgroups import Manager, manager_for
from dockyard.runtime.validate import validate

_VALID_ID = re.compile(r"^[\w+\-.]+$")
_seccomp_cache: dict[bytes, bytes] = {}


def compiled_seccomp(profile: Seccomp) -> bytes:
    """BPF for ``profile``, compiled once per distinct profile (the zygote can warm this)."""
    key = msgspec.json.encode(profile)
    program = _seccomp_cache.get(key)
    if program is None:
        program = _seccomp_cache[key] = seccomp.compile_filter(profile)
    return program


def _error(message: str) -> errdefs.DockyardError:
    if message.startswith(("exec: ", "chdir to cwd")):
        return errdefs.InvalidParameter(message)
    return errdefs.System(message)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WaitingInit:
    """A container init forked by ``_fork_waiting``, detached (signals, session), waiting on
    ``sock`` for its container (``_hand_over``)."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    def discard(self) -> None:
        """Unused: it leaves at the EOF."""
        self.sock.close()
        _reap_failed(self.pid)


_prepared: WaitingInit | None = None
PREPARED_BOUNDING = Capabilities(bounding=list(DEFAULT_CAPABILITIES))  # what a prepared init keeps
_NEW_PID_NS = runtime_spec.Namespace(type="pid")


def prepare_init(rehearsal: bytes | None = None, pages: str | None = None, sibling: bool = False) -> None:
    """Fork the next container's init now, while nothing waits for it, for ``create`` to use:
    the fork (~1 ms), the copy-on-write faults it causes on both sides, and the init's first
    steps leave the start path. It gets a new PID namespace and Docker's default bounding set
    (``_take_prepared``). Call it from a single-threaded process before the work whose pages
    should stay private to the caller. ``rehearsal``: a sample config.json, decoded by the init
    ahead so its own decode later touches pages it already owns. ``pages``: where the pages an
    init writes are listed (``dockyard.runtime.pages``): copied ahead if the list is there,
    recorded by this init otherwise. ``sibling``: forked as our parent's child (see
    ``DockyardRuntime``'s ``siblings``)."""
    global _prepared
    discard_prepared()
    _prepared = _fork_waiting(_NEW_PID_NS, ahead=True, rehearsal=rehearsal, pages_path=pages, sibling=sibling)


def discard_prepared() -> None:
    """Let a prepared init that no create took go (a create with another runtime)."""
    global _prepared
    if _prepared is not None:
        _prepared.discard()
        _prepared = None


def _pid_namespace(spec: Spec) -> runtime_spec.Namespace | None:
    return next((ns for ns in spec.linux.namespaces if ns.type == "pid"), None)


def _take_prepared(spec: Spec) -> WaitingInit | None:
    """The prepared init, if this container is to have a new PID namespace (the prepared one's)
    and no capability beyond Docker's default set; otherwise it is discarded and None returned."""
    global _prepared
    prepared, _prepared = _prepared, None
    if prepared is None:
        return None
    pid_ns = _pid_namespace(spec)
    capabilities = spec.process.capabilities
    if (pid_ns is None or pid_ns.path or capabilities is None
            or not set(capabilities.bounding) <= set(PREPARED_BOUNDING.bounding)):
        prepared.discard()
        return None
    return prepared


def preload_config(config: Path) -> None:
    """Name the config.json the next ``create`` will be given, so that the prepared init (if
    there is one) decodes it while the caller goes on (mounting the rootfs)."""
    if _prepared is not None:
        try:
            _prepared.sock.send(json.dumps({"config": str(config)}).encode())
        except OSError:
            discard_prepared()


def _fork_waiting(pid_ns: runtime_spec.Namespace | None, *, ahead: bool = False,
                  rehearsal: bytes | None = None, pages_path: str | None = None,
                  spec: Spec | None = None, config: str = "", sibling: bool = False) -> WaitingInit:
    """Fork a container init that waits for its container: in a new PID namespace, the one at
    ``pid_ns.path``, or ours (``pid_ns`` None). ``ahead``: it waits for a container yet
    unknown (``prepare_init``), so it gets ready meanwhile; else ``spec``, decoded from
    ``config``, is the container it is forked for."""
    # The container init must be our child so the caller can reap it (or, ``sibling``, our
    # parent's); callers that are not subreapers still are its parent, as no intermediate
    # process is used.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    own_pid_ns = -1
    try:
        if pid_ns is not None:
            # a new (or joined) PID namespace applies to children only: fork after entering it,
            # then put ourselves back for our later children
            own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            if pid_ns.path:
                fd = os.open(pid_ns.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    sc.setns(fd, sc.CLONE_NEWPID, f"join namespace {pid_ns.path}")
                finally:
                    os.close(fd)
            else:
                sc.unshare(sc.CLONE_NEWPID)
        pid = sc.fork_sibling() if sibling else sc.fork()
        if pid == 0:
            ours.close()
            _waiting_life(theirs, ahead, rehearsal, pages_path, spec, config)
    except BaseException:
        ours.close()
        raise
    finally:
        if own_pid_ns >= 0:
            sc.setns(own_pid_ns, sc.CLONE_NEWPID, "restore PID namespace")
            os.close(own_pid_ns)
        theirs.close()
    return WaitingInit(pid, ours)


def _waiting_life(sock: socket.socket, ahead: bool, rehearsal: bytes | None, pages_path: str | None,
                  spec: Spec | None, config: str) -> None:
    """A waiting init's life: detach (and, forked ahead, get ready), wait for its container, be
    its init. Never returns."""
    gc.disable()  # as in init.run: a collection would copy every page inherited
    sync_fd = -1
    try:
        init.detach()
        learn = False
        if ahead:
            # the bounding set most containers get (one that needs more does not take this init)
            caps.drop_bounding(PREPARED_BOUNDING, caps.last_cap())
            if rehearsal is not None:
                runtime_spec.decode(rehearsal)
            init.rehearse()
            learn = pages_path is not None and not pages.populate(pages_path)
        while True:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 8)
            if not data:
                os._exit(0)  # not needed after all
            order = json.loads(data)
            if fds:
                break  # the container's order (``_hand_over``)
            config = order["config"]  # a preload (``preload_config``)
            try:
                spec = runtime_spec.decode(Path(config).read_bytes())
            except Exception:
                spec = None  # decoded again with the order, which reports what is wrong
        sock.close()
        sync_fd, cgroup_ready, *rest = fds
        recorder = pages.recorder(pages_path) if learn else None
        stdio = (rest[0], rest[1], rest[2]) if order["stdio"] else None
        console_fd = rest[3 if stdio else 0] if order["console"] else -1
        if spec is None or config != order["config"]:
            spec = runtime_spec.decode(Path(order["config"]).read_bytes())
        cfg = init.InitConfig(
            spec=spec, rootfs=order["rootfs"], cgroup=manager_for(order["cgroup"]), cgroup_ready=cgroup_ready,
            seccomp_program=compiled_seccomp(spec.linux.seccomp) if spec.linux.seccomp else None,
            sync_fd=sync_fd, fifo_path=order["fifo"], stdio=stdio,
            console_socket=socket.socket(fileno=console_fd) if console_fd >= 0 else None,
            on_ready=recorder.record if recorder is not None else None)
    except BaseException as err:  # noqa: BLE001 - the child must report, never unwind into the caller
        try:
            if sync_fd >= 0:
                init._send(sync_fd, init.SyncMessage(type="error", message=init._describe(err)))
        finally:
            os._exit(1)
    init.run(cfg)


def _hand_over(waiting: WaitingInit, config: str, rootfs: str, cgroup_path: str, fifo: str,
               stdio: tuple[int, int, int] | None, console_socket: Path | None) -> tuple[int, int, int] | None:
    """Give a waiting init its container. Returns its pid, the read end of its sync pipe and the
    write end of its cgroup pipe (one byte: its cgroup is ready to join; closed unwritten: give
    up), or None if the init is gone."""
    sock = console.connect(str(console_socket)) if console_socket is not None else None
    sync_read, sync_write = os.pipe2(os.O_CLOEXEC)
    cgroup_read, cgroup_write = os.pipe2(os.O_CLOEXEC)
    order = {"config": config, "rootfs": rootfs, "cgroup": cgroup_path, "fifo": fifo,
             "stdio": stdio is not None, "console": sock is not None}
    fds = [sync_write, cgroup_read, *(stdio or ()), *([sock.fileno()] if sock is not None else [])]
    try:
        socket.send_fds(waiting.sock, [json.dumps(order).encode()], fds)
    except OSError:
        os.close(sync_read)
        os.close(cgroup_write)
        waiting.discard()
        return None
    finally:
        os.close(sync_write)
        os.close(cgroup_read)
        if sock is not None:
            sock.close()
    waiting.sock.close()
    return waiting.pid, sync_read, cgroup_write


class DockyardRuntime:
    name = "dockyard"

    def __init__(self, root: Path, siblings: bool = False) -> None:
        """``siblings``: the inits are our parent's children (``sc.fork_sibling``), so that it
        reaps them and hears of their exits while we live: for a caller that hands them to its
        parent (the shim's create helper)."""
        self.root = Path(root)
        self.siblings = siblings

    def _dir(self, container_id: str) -> str:
        if not _VALID_ID.match(container_id):
            raise errdefs.InvalidParameter(f"invalid container id format: {container_id}")
        return str(self.root / container_id)

    def _load(self, container_id: str) -> state.ContainerState:
        try:
            return state.load(self._dir(container_id))
        except FileNotFoundError:
            raise errdefs.NotFound(f"container does not exist: {container_id}") from None

    # create ---------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
        pid_file: Path | None = None,
        spec: Spec | None = None,
    ) -> int:
        """``spec``: the bundle's config.json if the caller decoded it already (a prepared init
        reads the file itself)."""
        directory = self._dir(container_id)
        bundle = Path(bundle).resolve()
        if spec is None:
            try:
                spec = runtime_spec.decode((bundle / "config.json").read_bytes())
            except FileNotFoundError:
                raise errdefs.NotFound(f"no config.json in bundle {bundle}") from None
            except msgspec.ValidationError as err:
                raise errdefs.InvalidParameter(f"invalid config.json in {bundle}: {err}") from None
        validate(spec)
        if spec.process.terminal and console_socket is None:
            raise errdefs.InvalidParameter("cannot allocate a tty without a console socket (process.terminal is set)")
        rootfs = str(bundle / spec.root.path) if not spec.root.path.startswith("/") else spec.root.path
        if not os.path.isdir(rootfs):
            raise errdefs.InvalidParameter(f"rootfs ({rootfs}) does not exist")

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory, 0o711)
        except FileExistsError:
            raise errdefs.Conflict(f"container with id exists: {container_id}") from None
        cgroup: Manager | None = None
        try:
            fifo = os.path.join(directory, state.EXEC_FIFO)
            os.mkfifo(fifo, 0o622)
            cgroup_path = spec.linux.cgroups_path or f"/dockyard/{container_id}"
            cgroup = manager_for(cgroup_path)
            config = str(bundle / "config.json")
            console_path = console_socket if spec.process.terminal else None
            prepared = _take_prepared(spec)
            init_pipes = None
            if prepared is not None:
                init_pipes = _hand_over(prepared, config, rootfs, cgroup_path, fifo, stdio, console_path)
            if init_pipes is None:  # none fits this container (or it died): one of its own, now
                waiting = _fork_waiting(_pid_namespace(spec), spec=spec, config=config, sibling=self.siblings)
                init_pipes = _hand_over(waiting, config, rootfs, cgroup_path, fifo, stdio, console_path)
                if init_pipes is None:
                    raise errdefs.System("container init exited before it was given its container")
            pid, sync_read, cgroup_ready = init_pipes
            try:
                # while the init unshares and mounts: its cgroup, made and limited before it
                # joins (it waits for this byte), and the state file
                try:
                    cgroup.create()
                    cgroup.apply(spec.linux.resources)
                except OSError as err:
                    raise errdefs.System(f"container cgroup {cgroup.path}: {init._describe(err)}") from None
                try:
                    os.write(cgroup_ready, b"\0")
                except BrokenPipeError:
                    pass  # the init failed already: its message is on the sync pipe
                os.close(cgroup_ready)
                cgroup_ready = -1
                start_time = state.process_start_time(pid)
                if start_time is not None:
                    state.save(directory, state.ContainerState(
                        id=container_id, pid=pid, pid_start_time=start_time, bundle=str(bundle),
                        rootfs=rootfs, cgroup_path=cgroup_path, created=_now()))
                message = _read_sync(sync_read)
            except BaseException:
                if cgroup_ready >= 0:
                    os.close(cgroup_ready)
                _signal(pid, signal.SIGKILL)  # not yet past exec: nothing of the user's to lose
                _reap_failed(pid)
                raise
            finally:
                os.close(sync_read)
            if message is None or message.type != "ready":
                _reap_failed(pid)
                text = message.message if message else "container init exited before it was ready"
                raise _error(text)
            if start_time is None:
                raise errdefs.System(f"container init {pid} exited during create")
            if pid_file is not None:
                _write_atomic(Path(pid_file), str(pid))
            return pid
        except BaseException as err:
            if cgroup is not None and cgroup.exists():
                _kill_cgroup(cgroup)
                _destroy_quietly(cgroup)
            _remove_state_dir(directory)
            if isinstance(err, OSError):
                raise errdefs.System(init._describe(err)) from None
            raise

    # start ----------------------------------------------------------------

    def start(self, container_id: str) -> None:
        st = self._load(container_id)
        fifo = os.path.join(self._dir(container_id), state.EXEC_FIFO)
        if not os.path.exists(fifo):
            raise errdefs.Conflict(f"cannot start an already running container: {container_id}")
        if not state.alive(st):
            raise errdefs.Conflict(f"cannot start a container that has stopped: {container_id}")
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            data = _drain_fifo(fd, st)
        finally:
            os.close(fd)
            os.unlink(fifo)
        if not data:
            raise errdefs.System(f"container {container_id}: init exited before start")

    # exec -----------------------------------------------------------------

    def exec(
        self,
        container_id: str,
        process: runtime_spec.Process,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
    ) -> int:
        """Start ``process`` in the running container (every namespace and the cgroup of its
        init, the seccomp profile of its config.json) and return its host PID once it has
        exec'd. The process is the caller's child: the caller reaps it."""
        st = self._load(container_id)
        if not state.alive(st):
            raise errdefs.Conflict(f"container {container_id} is not running")
        if process.terminal and console_socket is None:
            raise errdefs.InvalidParameter("cannot allocate a tty without a console socket (process.terminal is set)")
        spec = runtime_spec.decode(Path(st.bundle, "config.json").read_bytes())
        program = compiled_seccomp(spec.linux.seccomp) if spec.linux.seccomp else None
        fds: list[tuple[int, int, str]] = []
        pid_fd = own_pid_ns = -1
        sock = None
        sync_read, sync_write = os.pipe2(os.O_CLOEXEC)
        try:
            for ns in spec.linux.namespaces:
                if ns.type == "user":
                    raise errdefs.InvalidParameter(
                        "user namespaces are not supported by the dockyard runtime (use --runtime runc)")
                path = f"/proc/{st.pid}/ns/{sc.NAMESPACE_FILES[ns.type]}"
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                if ns.type == "pid":
                    pid_fd = fd
                else:
                    fds.append((fd, sc.NAMESPACE_FLAGS[ns.type], f"join namespace {path}"))
            # the mount namespace last: entering it changes what every path resolves to
            fds.sort(key=lambda item: item[1] == sc.CLONE_NEWNS)
            if process.terminal and console_socket is not None:
                sock = console.connect(str(console_socket))
            if pid_fd >= 0:
                # a PID namespace applies to children only: enter it, fork, come back
                own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
                sc.setns(pid_fd, sc.CLONE_NEWPID, f"join namespace /proc/{st.pid}/ns/pid")
            try:
                pid = sc.fork()
                if pid == 0:
                    os.close(sync_read)
                    execproc.run(execproc.ExecConfig(
                        process=process, namespaces=fds, cgroup=manager_for(st.cgroup_path),
                        seccomp_program=program, sync_fd=sync_write, stdio=stdio, console_socket=sock))
            finally:
                if own_pid_ns >= 0:
                    sc.setns(own_pid_ns, sc.CLONE_NEWPID, "restore PID namespace")
        except OSError as err:
            raise errdefs.System(f"exec in container {container_id}: {init._describe(err)}") from None
        finally:
            for fd in [pid_fd, own_pid_ns, *(item[0] for item in fds)]:
                if fd >= 0:
                    os.close(fd)
            if sock is not None:
                sock.close()
            os.close(sync_write)
        try:
            message = _read_sync(sync_read)
        finally:
            os.close(sync_read)
        if message is not None:
            _reap_failed(pid)
            raise _error(message.message)
        return pid

    # other verbs ----------------------------------------------------------

    def state(self, container_id: str) -> RuntimeState:
        st = self._load(container_id)
        return RuntimeState(id=st.id, pid=st.pid, status=self._status(st), bundle=st.bundle)

    def _status(self, st: state.ContainerState) -> str:
        if not state.alive(st):
            return "stopped"
        if os.path.exists(os.path.join(self._dir(st.id), state.EXEC_FIFO)):
            return "created"
        if manager_for(st.cgroup_path).frozen():
            return "paused"
        return "running"

    def kill(self, container_id: str, signal_number: int, all_processes: bool = False) -> None:
        st = self._load(container_id)
        if all_processes:
            cgroup = manager_for(st.cgroup_path)
            for pid in cgroup.pids():
                _signal(pid, signal_number)
            if signal_number == signal.SIGKILL and cgroup.frozen():
                cgroup.thaw()  # frozen tasks cannot die
            return
        if not state.alive(st):
            raise errdefs.Conflict(f"container {container_id} is not running")
        _signal(st.pid, signal_number)

    def pause(self, container_id: str) -> None:
        st = self._load(container_id)
        status = self._status(st)
        if status not in ("running", "created"):
            raise errdefs.Conflict(f"container {container_id} is not running")
        manager_for(st.cgroup_path).freeze()

    def resume(self, container_id: str) -> None:
        st = self._load(container_id)
        if self._status(st) != "paused":
            raise errdefs.Conflict(f"container {container_id} is not paused")
        manager_for(st.cgroup_path).thaw()

    def delete(self, container_id: str, force: bool = False) -> None:
        directory = self._dir(container_id)
        st = self._load(container_id)
        status = self._status(st)
        cgroup = manager_for(st.cgroup_path)
        if status != "stopped":
            # a created container is deleted without --force, as runc does: its init never ran user code
            if not force and status != "created":
                raise errdefs.Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
            _kill_cgroup(cgroup)
            if state.alive(st):
                _signal(st.pid, signal.SIGKILL)
        elif cgroup.exists():
            _kill_cgroup(cgroup)  # processes the init left behind (no PID namespace)
        if cgroup.exists():
            try:
                cgroup.destroy()
            except OSError as err:
                raise errdefs.System(f"delete container {container_id}: {err.strerror}") from None
        _remove_state_dir(directory)

    def stats(self, container_id: str):  # -> cgroups.Stats
        return manager_for(self._load(container_id).cgroup_path).stats()


def _read_sync(fd: int) -> init.SyncMessage | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    if not data.strip():
        return None
    return msgspec.json.decode(data.splitlines()[0], type=init.SyncMessage)


def _drain_fifo(fd: int, st: state.ContainerState) -> bytes:
    """Read the init's NUL byte until the init closes the fifo (just before its execve) or exits."""
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        events = poller.poll(50)
        if events:
            chunk = os.read(fd, 65536)
            if chunk:
                data += chunk
                continue
            if data:
                return data
            # no writer connected yet: the init is about to open its end
        if not state.alive(st):
            try:
                data += os.read(fd, 65536)
            except BlockingIOError:
                pass
            return data
        if not events or not data:
            time.sleep(0.0002)


def _signal(pid: int, signal_number: int) -> None:
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        pass


def _kill_cgroup(cgroup: Manager) -> None:
    """SIGKILL everything in the cgroup (thawing it, frozen tasks cannot die) and wait until empty."""
    if cgroup.frozen():
        for pid in cgroup.pids():
            _signal(pid, signal.SIGKILL)
        cgroup.thaw()
    deadline = time.monotonic() + 5
    while True:
        pids = cgroup.pids()
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.002)


def _destroy_quietly(cgroup: Manager) -> None:
    try:
        cgroup.destroy()
    except OSError:
        pass


def _reap_failed(pid: int) -> None:
    """The init reported failure and exits; reap it (a subreaper's own loop may have already,
    and a sibling, ``sc.fork_sibling``'s, is our parent's to reap)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _write_atomic(path: Path, text: str) -> None:
    # atomic by the rename; no fsync: a pid file names a process, which a power loss ends anyway
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _remove_state_dir(directory: str) -> None:
    """Remove a container's state dir, flat by construction (state.json, its temp file,
    exec.fifo). By hand rather than shutil.rmtree: shutil loads bz2 and lzma, 0.6 MB of the
    zygote's RSS that every shim's address space would carry."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
