"""The daemon's side of the shim: spawn a shim through the zygote, talk to it.

CONTRACT (implemented by the shim package, used by daemon/containers.py).
All methods are asyncio coroutines; they never block the event loop.
Implementation: ``dockyard.shim.manager.ZygoteShimManager(config.zygote_socket)``
(``await start()`` once at daemon start); it lives apart so the zygote, which
imports these types, does not load asyncio. Wire format: ``dockyard.shim.protocol``.

Per container the shim keeps its state in ``state_dir`` (the container's exec
dir): ``shim.sock`` (control + attach), ``shim.pid``, ``init.pid``,
``exit.json`` ({"exit_code": int, "finished_at": RFC3339Nano str, "oom_killed": bool,
"error": str}) written atomically when the container's init is reaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Protocol, Sequence

from dockyard.oci import runtime_spec


@dataclass(frozen=True)
class SpawnRequest:
    container_id: str
    bundle: Path  # holds config.json; config's root.path is absolute (bundle/rootfs)
    rootfs_mounts: tuple  # tuple[dockyard.mount.Mount, ...]: the shim mounts these at the spec's
    # root.path (in the host mount namespace, so the daemon can read it for cp/export) before
    # runtime create, and unmounts them when the container is deleted
    state_dir: Path  # where shim.sock / exit.json live
    runtime: str  # "dockyard" (ours, in-process) or a runc-compatible binary path
    runtime_root: Path  # --root for runc; state dir root for ours
    tty: bool
    open_stdin: bool
    stdin_once: bool
    log_path: Path | None  # json-file log; None for log driver "none"
    log_max_size: int | None = None  # bytes; rotation (issue 4 completes it)
    log_max_files: int = 1
    log_driver: str = "json-file"  # or "local" (dockyard.shim.locallog)
    log_compress: bool = False  # gzip rotated files (local, json-file compress=true)
    # the attrs every entry carries (log-opts tag/labels/env...: moby's ExtraAttributes), sorted
    log_attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    finished_at: str  # RFC3339Nano, UTC
    oom_killed: bool = False
    error: str = ""


@dataclass(frozen=True)
class ShimState:
    status: str  # "created" | "running" | "paused" | "draining" | "stopped"
    pid: int
    exit: ExitStatus | None


class AttachStream(Protocol):
    """One attach session to a running container's stdio.

    ``output()`` yields (stream, data): stream 1 stdout, 2 stderr (always 1 with a
    TTY); it ends when the container's output ends. ``write_stdin`` forwards input;
    ``close_stdin`` half-closes it (the process sees EOF).
    """

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def close(self) -> None: ...


class ShimHandle(Protocol):
    container_id: str
    shim_pid: int
    pid: int  # the container's init, host PID

    async def start(self) -> None:
        """Let the created container's process run (it was blocked before exec)."""

    async def kill(self, signal: int, all_processes: bool = False) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def resize(self, height: int, width: int) -> None: ...

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> AttachStream: ...

    async def wait(self) -> ExitStatus:
        """Return when the init has exited and been reaped (at once if it already has)."""

    async def state(self) -> ShimState:
        """The shim's view: status and init pid, and the exit once stopped (daemon restore)."""

    async def shutdown(self) -> None:
        """Ask the shim to clean up (runtime delete) and exit; after the container exited."""

    async def discard(self) -> None:
        """End a shim whose container must not run: kill everything in it, then ``shutdown``;
        errors are swallowed (it may never have run, or be gone already)."""

    async def exec(self, exec_id: str, process: "runtime_spec.Process", *, stdin: bool,
                   attach: bool) -> tuple[int, AttachStream | None]:
        """Start ``process`` in the running container; (its host PID, its stdio stream when
        ``attach``: output until it exited, stdin into it). Errors as the runtime words them."""

    async def exec_wait(self, exec_id: str) -> int:
        """The exec'd process's exit code, once it was reaped and its output drained."""

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None: ...


class ShimManager(Protocol):
    async def start(self) -> None:
        """Start the zygote (once, at daemon start, before any spawn)."""

    async def spawn(self, request: SpawnRequest) -> ShimHandle:
        """Fork a shim from the zygote; it runs runtime create. Raises errdefs on failure
        with the runtime's message (e.g. 'exec: "nope": executable file not found in $PATH')."""

    async def run(self, request: SpawnRequest, attach: Sequence[tuple[bool, bool, bool]] = ()
                  ) -> tuple[ShimHandle, list[AttachStream]]:
        """``spawn``, the attach sessions ``attach`` asks for ((stdin, stdout, stderr) each) and
        ``start`` in one exchange: the shim starts the container as soon as they are attached,
        without waiting for a start request. If the start fails, the shim is ended (container
        deleted) and the runtime's error raised, as ``start`` raises it."""

    async def connect(self, state_dir: Path, container_id: str) -> ShimHandle | None:
        """Reattach to a live shim after a daemon restart; None if the shim is gone
        (then read ``exit.json`` from state_dir if present)."""

    async def close(self) -> None:
        """Stop the zygote (shims keep running)."""
