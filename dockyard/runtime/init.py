"""The container init: what the forked child does between ``create`` and exec.

Runs in the child of the calling process (already PID 1 of its new PID
namespace when one is asked for) and never returns: it execs the user's
process or ``_exit``s.

Handshake (runc's sync + exec.fifo, in typed messages):

 =====  ==============  =============================  =============================
 step   channel         init -> caller                 meaning
 =====  ==============  =============================  =============================
 1      sync pipe       ``{"type": "ready"}``           set up, blocked before exec;
                                                        ``create`` returns the PID
 1'     sync pipe       ``{"type": "error", ...}``      setup failed; init exits 1
 2      exec.fifo       (init blocks opening it for    ``start`` opens it for reading
                        writing) then one NUL byte
 3      exec.fifo       EOF (closed before execve)     started
 =====  ==============  =============================  =============================

The fifo is closed just before execve rather than by it: the kernel tears the init's
copy of the caller's address space down inside execve, before it closes close-on-exec
fds, and ``start`` need not wait for that (~1 ms). Everything that can fail is done
before "ready"; an execve that still fails (say, a binary for another architecture)
is reported as runc reports it: the message on the container's stderr, exit status 1.

Order of the setup mirrors runc: signals reset and a new session; namespaces
(join by path, else unshare) except cgroup; then the cgroup
namespace (so its root is the container's cgroup), entered as late as possible:
just before the cgroup filesystem is mounted, after the init joined its cgroup
itself (the caller makes it and writes its limits meanwhile, and says when; the
init waits for that only there); mounts and
pivot_root; terminal; hostname; sysctls, read-only and masked paths; oom
score and rlimits; seccomp (unless no_new_privileges, then it goes last);
bounding set; executable lookup; user switch, capability sets, cwd,
no_new_privileges (then seccomp); ready. After start: exec.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from dockyard.oci.runtime_spec import Process, Spec
from dockyard.runtime import caps, console, credentials, rootfs
from dockyard.runtime import syscalls as sc
from dockyard.runtime.cgroups import Manager


class SyncMessage(msgspec.Struct):
    type: str  # "ready" | "error"
    message: str = ""


class ExecLookupError(Exception):
    """The process's executable cannot be run; message in runc/Go wording."""


@dataclass
class InitConfig:
    spec: Spec
    rootfs: str
    cgroup: Manager  # made and limited by the caller while we set up; we join it ourselves
    cgroup_ready: int  # a pipe: one byte once the cgroup is ready, EOF if the caller gave up
    seccomp_program: bytes | None
    sync_fd: int
    fifo_path: str
    stdio: tuple[int, int, int] | None
    console_socket: socket.socket | None
    on_ready: Callable[[], None] | None = None  # called just before "ready" (``pages.Recorder``)


def lookup_executable(name: str, env: list[str]) -> str:
    """Go's exec.LookPath with the container's PATH, with its error messages."""
    if "/" in name:
        try:
            info = os.stat(name)
        except OSError as err:
            raise ExecLookupError(f'exec: "{name}": stat {name}: {err.strerror.lower()}') from None
        if stat.S_ISDIR(info.st_mode) or not info.st_mode & 0o111:
            raise ExecLookupError(f'exec: "{name}": permission denied')
        return name
    path = ""
    for entry in env:
        if entry.startswith("PATH="):
            path = entry[5:]
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) and info.st_mode & 0o111:
            return candidate
    raise ExecLookupError(f'exec: "{name}": executable file not found in $PATH')


def rehearse() -> None:
    """Make, harmlessly (on a path that does not exist), the calls an init makes, for a prepared
    init while it waits: the first call of each in a forked process copies the pages of what it
    touches (ctypes' machinery, the wrappers, errno's path), ~0.3 ms of its start otherwise."""
    sc.unshare(0)
    nowhere = "/nonexistent/dockyard-rehearsal"
    for call in (lambda: sc.mount(None, nowhere, None, sc.MS_BIND), lambda: sc.umount2(nowhere, sc.MNT_DETACH),
                 lambda: sc.pivot_root(nowhere, nowhere), lambda: sc.mknod(nowhere, stat.S_IFCHR | 0o666, 1, 3),
                 lambda: sc.setns(-1, 0, "rehearsal"), lambda: sc.seccomp_filter(b""),
                 lambda: sc.mount_setattr(nowhere, 0, 0), lambda: os.chdir(nowhere),
                 lambda: lookup_executable("true", ["PATH=" + nowhere]), lambda: os.lstat(nowhere)):
        try:
            call()
        except (OSError, ExecLookupError):
            pass
    sc.capget()
    msgspec.json.encode(SyncMessage(type="ready"))


def _send(fd: int, message: SyncMessage) -> None:
    os.write(fd, msgspec.json.encode(message) + b"\n")


def reset_signals() -> None:
    """Default dispositions and an empty mask: the shim's Python handlers must not run here,
    and SIG_IGN (Python ignores SIGPIPE) would survive exec."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT, signal.SIGWINCH, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def detach() -> None:
    """Default signals, its own session, killed with its parent: the first steps of a forked
    container process (an init takes them before it has its container)."""
    reset_signals()
    os.setsid()
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)


def take_stdio(process: Process, stdio: tuple[int, int, int] | None) -> None:
    """``stdio`` as 0, 1, 2 (unless the process gets a terminal), every other fd closed on exec."""
    if stdio is not None and not process.terminal:
        # via fresh copies, so a source that is itself 0, 1 or 2 is not overwritten before use
        copies = [os.dup(fd) for fd in stdio]
        for target, fd in enumerate(copies):
            os.dup2(fd, target, inheritable=True)
            os.close(fd)
    sc.cloexec_from(3)


def begin_child(process: Process, stdio: tuple[int, int, int] | None) -> None:
    """The first steps of a forked container process, shared with ``docker exec`` (``execproc``)."""
    detach()
    take_stdio(process, stdio)


def limit_process(process: Process, seccomp_program: bytes | None) -> str:
    """The limits set while still privileged, shared with ``execproc``: OOM score, rlimits,
    seccomp (here unless no_new_privileges defers it to ``become_process``), capability
    bounding set. Returns the executable of ``process.args[0]``."""
    if process.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process.oom_score_adj))
    credentials.set_rlimits(process.rlimits)
    if seccomp_program is not None and not process.no_new_privileges:
        sc.seccomp_filter(seccomp_program)
    if process.capabilities is not None:
        caps.drop_bounding(process.capabilities, caps.last_cap())
    return lookup_executable(process.args[0], process.env)


def _namespaces(spec: Spec, cgroup: bool) -> None:
    """Join (by path) or unshare the spec's namespaces: all but cgroup when ``cgroup`` is false,
    only the cgroup namespace when it is true (that one must wait until we are in our cgroup)."""
    joins: list[tuple[int, int, str]] = []
    flags = 0
    for ns in spec.linux.namespaces:
        if ns.type == "pid" or (ns.type == "cgroup") != cgroup:
            continue  # pid: the caller placed us in it before fork
        if ns.type not in sc.NAMESPACE_FLAGS:
            raise OSError(0, f"unknown namespace type {ns.type!r}")
        if ns.type == "user":
            raise OSError(0, "user namespaces are not supported by the dockyard runtime (use --runtime runc)")
        if ns.path:
            joins.append((os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC), sc.NAMESPACE_FLAGS[ns.type], ns.path))
        else:
            flags |= sc.NAMESPACE_FLAGS[ns.type]
    # the mount namespace last: joining it changes which paths the others resolve through
    joins.sort(key=lambda j: j[1] == sc.CLONE_NEWNS)
    for fd, nstype, path in joins:
        sc.setns(fd, nstype, f"join namespace {path}")
        os.close(fd)
    if flags:
        sc.unshare(flags)


def _setup(cfg: InitConfig) -> tuple[str, dict[str, str], int]:
    """Everything up to "ready"; returns (executable, environment, O_PATH fd of exec.fifo)."""
    spec = cfg.spec
    process = spec.process
    take_stdio(process, cfg.stdio)  # detached already (the runtime forks it waiting for its order)
    _namespaces(spec, cgroup=False)

    def enter_cgroup_ns() -> None:
        # join first, so the cgroup namespace's root is the container's cgroup; by ourselves:
        # on v1 a thread moving itself skips the global lock a move by pid waits on (Manager.add)
        if not os.read(cfg.cgroup_ready, 1):
            raise OSError(0, "the runtime gave up on the container's cgroup")
        os.close(cfg.cgroup_ready)
        cfg.cgroup.add(0)
        _namespaces(spec, cgroup=True)

    os.umask(0)
    fifo_fd = os.open(cfg.fifo_path, os.O_PATH | os.O_CLOEXEC)
    rootfs.prepare(spec, cfg.rootfs, enter_cgroup_ns)  # validate() made sure of a mount namespace
    rootfs.pivot(cfg.rootfs)
    if process.terminal:
        if cfg.console_socket is None:
            raise OSError(0, "process.terminal is set but no console socket was given")
        console.setup(cfg.console_socket, process.console_size)
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)
    rootfs.finalize(spec)
    executable = limit_process(process, cfg.seccomp_program)
    return executable, become_process(process, cfg.seccomp_program), fifo_fd


def become_process(process: Process, seccomp_program: bytes | None) -> dict[str, str]:
    """The last steps before execve, shared with ``docker exec`` (``execproc``): user switch,
    capability sets, cwd, no_new_privileges (then seccomp). Returns the environment."""
    credentials.switch_user(process.user)
    if process.capabilities is not None:
        caps.set_sets(process.capabilities, caps.last_cap())
    try:
        os.chdir(process.cwd)
    except OSError as err:
        raise OSError(err.errno, f'chdir to cwd ("{process.cwd}") set in config.json failed: {err.strerror.lower()}') from None
    if process.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_program is not None:
            sc.seccomp_filter(seccomp_program)
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in process.env)
    if "HOME" not in env:
        env["HOME"] = credentials.home_of(process.user.uid)
    return env


def exec_process(process: Process, seccomp_program: bytes | None, executable: str) -> None:
    """``become_process``, then execve. Raises on failure, never returns otherwise."""
    env = become_process(process, seccomp_program)
    try:
        os.execve(executable, process.args, env)
    except OSError as err:
        raise ExecLookupError(f'exec: "{process.args[0]}": {err.strerror.lower()}') from None


def run(cfg: InitConfig) -> None:
    """The child's whole life; never returns."""
    # a full collection would touch (and so copy) every page inherited from the caller
    gc.disable()
    try:
        executable, env, fifo_fd = _setup(cfg)
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        if cfg.on_ready is not None:
            cfg.on_ready()
        _send(cfg.sync_fd, SyncMessage(type="ready"))
        os.close(cfg.sync_fd)
        # blocks until start opens the fifo for reading
        fifo_write = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.close(fifo_fd)
        os.write(fifo_write, b"\0")
        os.close(fifo_write)
    except BaseException as err:  # noqa: BLE001 - the child must report, never unwind into the caller
        try:
            _send(cfg.sync_fd, SyncMessage(type="error", message=_describe(err)))
        finally:
            os._exit(1)
    try:
        os.execve(executable, cfg.spec.process.args, env)
    except OSError as err:
        os.write(2, f"exec {executable}: {err.strerror.lower()}\n".encode())
    os._exit(1)


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return str(err) or type(err).__name__
