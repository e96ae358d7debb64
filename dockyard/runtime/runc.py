"""``RuncRuntime``: the same contract over a runc-compatible binary (runc, crun).

Each verb runs ``<binary> --root <root> <verb> ...``. stdio fds are passed
straight through to ``create`` (runc hands its own 0/1/2 to the container
process), so the container's output goes where the caller's fds point. runc's
error (stderr; with ``--log-format json`` the last "error" record) becomes an
errdefs error carrying runc's own message.

``create`` runs runc in the foreground; runc exits once the container's init is
set up, leaving the init re-parented to the nearest child subreaper: the shim
(which is one) then reaps it as it would reap our own runtime's init.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import msgspec

from dockyard import errdefs
from dockyard.oci import runtime_spec
from dockyard.runtime import syscalls
from dockyard.runtime.base import RuntimeState
from dockyard.runtime.rootfs import RECURSIVE_ATTRS


# runc's recursive mount options (mount_setattr; runc 1.1+), named as our runtime names them
_RECURSIVE_OPTIONS = frozenset(RECURSIVE_ATTRS)


@functools.cache
def mount_options(binary: str) -> frozenset[str]:
    """The mount options ``<binary> features`` lists, asked once per binary (the daemon asks too:
    a plain read-only bind falls back to "ro" on a runtime without "rro", as Docker's); empty for
    a runc older than 1.1, which has no "features" verb."""
    import subprocess  # on use, as in _run: the zygote stays without threading

    try:
        result = subprocess.run([binary, "features"], stdin=subprocess.DEVNULL, capture_output=True,
                                check=False, timeout=30)
        features = json.loads(result.stdout) if result.returncode == 0 else {}
        return frozenset(features.get("mountOptions") or ())
    except (OSError, ValueError, AttributeError, subprocess.TimeoutExpired):
        return frozenset()


class RuncRuntime:
    def __init__(self, binary: str | Path, root: Path) -> None:
        self.binary = str(binary)
        self.root = Path(root)
        self.name = os.path.basename(self.binary)

    def _check_recursive_options(self, bundle: Path) -> None:
        """A runc without "rro" & co. (before 1.1) would pass them to the kernel as mount data and
        fail obscurely, or a newer one silently; refuse them with a clear error instead."""
        with open(bundle / "config.json", "rb") as f:
            mounts = json.loads(f.read()).get("mounts") or []
        wanted = [(option, m.get("destination", "")) for m in mounts for option in m.get("options") or []
                  if option in _RECURSIVE_OPTIONS]
        if not wanted:
            return
        supported = mount_options(self.binary)
        for option, destination in wanted:
            if option not in supported:
                raise errdefs.InvalidParameter(
                    f'mount option "{option}" for {destination} is not supported by runtime "{self.name}" '
                    f"({self.binary} features does not list it; runc 1.1 or later makes submounts read-only)")

    def _run(self, *args: str, stdio: tuple[int, int, int] | None = None) -> str:
        """Run one verb; runc's log goes to a temp file (a pipe would be held open by the
        container's init until it execs)."""
        # imported here, in the shim that runs runc: the zygote every shim forks from stays
        # without threading (subprocess imports it), whose after-fork hook dirties ~0.4 MB a shim
        import subprocess
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".log-") as log:
            command = [self.binary, "--root", str(self.root), "--log", log.name, "--log-format", "json", *args]
            if stdio is None:
                result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
            else:
                result = subprocess.run(
                    command, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], check=False, close_fds=True
                )
            if result.returncode != 0:
                text = log.read().decode(errors="replace") + (result.stderr or b"").decode(errors="replace")
                raise _error(_message(text) or f"{self.name} {args[0]} failed with status {result.returncode}")
        return result.stdout.decode() if result.stdout else ""

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
        pid_file: Path | None = None,
        spec: runtime_spec.Spec | None = None,  # runc reads config.json itself
    ) -> int:
        # runc's init must end up with a reaper in our process tree, like our own runtime's
        self._check_recursive_options(Path(bundle))
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        pid_path = Path(pid_file) if pid_file else self.root / f"{container_id}.pid"
        args = ["create", "--bundle", str(bundle), "--pid-file", str(pid_path)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        self._run(*args, container_id, stdio=stdio if console_socket is None else None)
        pid = int(pid_path.read_text())
        if pid_file is None:
            pid_path.unlink(missing_ok=True)
        return pid

    def start(self, container_id: str) -> None:
        self._run("start", container_id)

    def exec(
        self,
        container_id: str,
        process: runtime_spec.Process,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
    ) -> int:
        """``runc exec --detach --process``: runc exits once the process runs, leaving it to the
        nearest child subreaper (the shim), which reaps it."""
        import tempfile

        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".exec-", suffix=".json") as spec_file, \
                tempfile.NamedTemporaryFile(dir=self.root, prefix=".exec-", suffix=".pid") as pid_file:
            spec_file.write(msgspec.json.encode(process))
            spec_file.flush()
            args = ["exec", "--detach", "--process", spec_file.name, "--pid-file", pid_file.name]
            if console_socket is not None:
                args += ["--console-socket", str(console_socket)]
            self._run(*args, container_id, stdio=stdio if console_socket is None else None)
            return int(Path(pid_file.name).read_text())

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        self._run("kill", *(["--all"] if all_processes else []), container_id, str(signal))

    def pause(self, container_id: str) -> None:
        self._run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def delete(self, container_id: str, force: bool = False) -> None:
        self._run("delete", *(["--force"] if force else []), container_id)

    def state(self, container_id: str) -> RuntimeState:
        data = json.loads(self._run("state", container_id))
        return RuntimeState(id=data["id"], pid=data.get("pid", 0), status=data["status"], bundle=data["bundle"])


def _message(stderr: str) -> str:
    """runc's error: the last JSON log record at level error, else the raw text."""
    message = ""
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                message = line.strip()
            continue
        if isinstance(record, dict) and record.get("level") == "error":
            message = str(record.get("msg", ""))
    return message


def _error(message: str) -> errdefs.DockyardError:
    if "does not exist" in message or "not found" in message and "container" in message.split(":")[0]:
        if "executable file not found" not in message:
            return errdefs.NotFound(message)
    if "exec: " in message or "chdir to cwd" in message:
        return errdefs.InvalidParameter(message)
    if "already exists" in message or "exists" in message and "container with id" in message:
        return errdefs.Conflict(message)
    if "not stopped" in message or "not running" in message or "not paused" in message:
        return errdefs.Conflict(message)
    return errdefs.System(message)
