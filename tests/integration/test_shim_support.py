"""Test support for the shim suites: a busybox bundle and a tiny fork+exec runtime.

``ForkExecRuntime`` implements ``dockyard.runtime.base.Runtime`` without namespaces
(chroot + fork + exec, start through a fifo like runc's exec.fifo), so the shim can be
tested on its own. The zygote preloads this module; the shim loads it by the runtime
name ``tests.integration.test_shim_support:ForkExecRuntime``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import termios
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.oci import runtime_spec
from dockyard.runtime.base import RuntimeState
from dockyard.shim.client import SpawnRequest

FORK_EXEC_RUNTIME = "tests.integration.test_shim_support:ForkExecRuntime"
APPLETS = ("sh", "echo", "cat", "true", "sleep", "ls", "printf", "seq", "yes", "head", "tail", "stty",
           "kill", "mount")


class ForkExecRuntime:
    name = "fork-exec (tests)"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, container_id: str) -> Path:
        return self.root / container_id

    def create(self, container_id: str, bundle: Path, *, stdio=None, console_socket=None,
               pid_file=None, spec=None) -> int:
        spec = spec or runtime_spec.decode((bundle / "config.json").read_bytes())
        state = self._dir(container_id)
        state.mkdir(parents=True)
        fifo = state / "exec.fifo"
        os.mkfifo(fifo, 0o600)
        env = dict(e.split("=", 1) for e in spec.process.env)
        master = slave = None
        if spec.process.terminal:
            master, slave = os.openpty()
        pid = os.fork()
        if pid == 0:
            try:
                if slave is not None:
                    os.setsid()
                    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                    fds = (slave, slave, slave)
                else:
                    fds = stdio
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                with open(fifo, "rb") as f:  # blocks until start
                    f.read(1)
                os.chroot(spec.root.path)
                os.chdir(spec.process.cwd)
                os.closerange(3, 1 << 16)
                prog = spec.process.args[0]
                for d in env.get("PATH", "/bin").split(":"):
                    if "/" not in prog and os.path.exists(os.path.join(d, prog)):
                        prog = os.path.join(d, prog)
                        break
                os.execve(prog, spec.process.args, env)
            except BaseException as err:
                os.write(2, f"fork-exec runtime: {err}\n".encode())
            os._exit(127)
        if master is not None:
            os.close(slave)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(console_socket))
                socket.send_fds(s, [b"pty"], [master])
            os.close(master)
        (state / "pid").write_text(str(pid))
        (state / "bundle").write_text(str(bundle))
        return pid

    def _pid(self, container_id: str) -> int:
        try:
            return int((self._dir(container_id) / "pid").read_text())
        except FileNotFoundError:
            raise errdefs.NotFound(f"container {container_id} does not exist") from None

    def start(self, container_id: str) -> None:
        with open(self._dir(container_id) / "exec.fifo", "wb") as f:
            f.write(b"0")

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        os.kill(self._pid(container_id), signal)

    def pause(self, container_id: str) -> None:
        os.kill(self._pid(container_id), signal.SIGSTOP)

    def resume(self, container_id: str) -> None:
        os.kill(self._pid(container_id), signal.SIGCONT)

    def delete(self, container_id: str, force: bool = False) -> None:
        pid = self._pid(container_id)
        if force:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self._dir(container_id))

    def state(self, container_id: str) -> RuntimeState:
        pid = self._pid(container_id)
        status = "running" if os.path.exists(f"/proc/{pid}") else "stopped"
        return RuntimeState(container_id, pid, status, (self._dir(container_id) / "bundle").read_text())


class CrashAfterCreateRuntime(ForkExecRuntime):
    """Kills the calling process (the shim's create helper) right after create: the init it
    forked keeps its fds."""

    def create(self, container_id: str, bundle: Path, **kw) -> int:
        super().create(container_id, bundle, **kw)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class SlowCreateRuntime(ForkExecRuntime):
    """Takes its time in create, so a daemon that leaves after the shim's first reply is gone
    before the create's answer."""

    def create(self, container_id: str, bundle: Path, **kw) -> int:
        time.sleep(0.3)
        return super().create(container_id, bundle, **kw)


# ---- bundles -----------------------------------------------------------------

def make_busybox_rootfs(path: Path) -> None:
    """/bin/busybox of busybox-static with its applets linked in /bin."""
    (path / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (path / d).mkdir()
    shutil.copy2("/bin/busybox", path / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", path / "bin" / applet)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\n")


@dataclass
class Bundle:
    """One container's files below a private temp dir: lower (busybox), upper, work, bundle."""
    base: Path
    container_id: str

    @property
    def bundle(self) -> Path:
        return self.base / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def log_path(self) -> Path:
        return self.base / "container.log"

    def mounts(self) -> tuple[Mount, ...]:
        return (Mount(type="overlay", source="overlay", options=(
            f"lowerdir={self.base / 'lower'}", f"upperdir={self.base / 'upper'}",
            f"workdir={self.base / 'work'}")),)

    def request(self, runtime: str, runtime_root: Path, *, tty: bool = False,
                open_stdin: bool = False, stdin_once: bool = False, log: bool = True,
                log_max_size: int | None = None, log_max_files: int = 1) -> SpawnRequest:
        return SpawnRequest(
            container_id=self.container_id, bundle=self.bundle, rootfs_mounts=self.mounts(),
            state_dir=self.state_dir, runtime=runtime, runtime_root=runtime_root, tty=tty,
            open_stdin=open_stdin, stdin_once=stdin_once,
            log_path=self.log_path if log else None, log_max_size=log_max_size,
            log_max_files=log_max_files)


def make_bundle(base: Path, args: list[str], *, tty: bool = False,
                spec_for: Callable[[Bundle], runtime_spec.Spec] | None = None) -> Bundle:
    """A bundle whose config runs ``args``: a bare spec, or ``spec_for(bundle)``'s."""
    b = Bundle(base, "shimtest-" + uuid.uuid4().hex[:12])
    make_busybox_rootfs(base / "lower")
    for d in ("upper", "work", "bundle/rootfs", "state"):
        (base / d).mkdir(parents=True)
    if spec_for is not None:
        spec = spec_for(b)
    else:
        spec = runtime_spec.Spec(
            process=runtime_spec.Process(args=args, cwd="/", env=["PATH=/bin", "TERM=xterm"],
                                         terminal=tty),
            root=runtime_spec.Root(path=str(b.rootfs)))
    (b.bundle / "config.json").write_bytes(runtime_spec.encode(spec))
    return b


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def test_fork_exec_runtime_runs_a_bundle(tmp_path: Path) -> None:
    """The support runtime itself: create blocks before exec, start releases, exit code returns."""
    b = make_bundle(tmp_path, ["sh", "-c", "exit 7"])
    shutil.copytree(tmp_path / "lower", b.rootfs, dirs_exist_ok=True)
    runtime = ForkExecRuntime(tmp_path / "runtime")
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = runtime.create(b.container_id, b.bundle, stdio=(null, null, null))
    finally:
        os.close(null)
    assert os.waitpid(pid, os.WNOHANG) == (0, 0)
    runtime.start(b.container_id)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7
    runtime.delete(b.container_id)
