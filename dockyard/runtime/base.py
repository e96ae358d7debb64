"""The runtime contract: what the shim asks of an OCI runtime.

Shaped like runc's CLI (create/start/kill/delete/state/pause/resume), so our own
Python runtime and runc/crun are interchangeable behind it. A runtime takes an
OCI bundle (``config.json`` + rootfs) and knows nothing of images.

Called from the shim process (single-threaded, forked from the zygote), never
from the threaded daemon. ``create`` leaves the container's init blocked before
exec of the user process; ``start`` releases it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.oci import runtime_spec


@dataclass(frozen=True)
class RuntimeState:
    id: str
    pid: int
    status: str  # "creating" | "created" | "running" | "paused" | "stopped"
    bundle: str


class Runtime(Protocol):
    name: str

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
        pid_file: Path | None = None,
        spec: runtime_spec.Spec | None = None,
    ) -> int:
        """Set the container up and return its init's host PID. ``spec``: the bundle's
        config.json when the caller has decoded it already (a runtime may use it instead of
        reading the file again; runc reads its own).

        Without a terminal, ``stdio`` fds become the process's 0, 1, 2. With
        ``process.terminal`` the runtime makes a pty inside the container and sends
        the master fd over ``console_socket`` (SCM_RIGHTS), as runc does.
        The caller (shim) is a child subreaper and reaps the init.
        """
        ...

    def start(self, container_id: str) -> None: ...

    def exec(
        self,
        container_id: str,
        process: runtime_spec.Process,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: Path | None = None,
    ) -> int:
        """Run ``process`` in the running container (its namespaces, cgroup, seccomp profile) and
        return its host PID once it has exec'd; the caller (a child subreaper) reaps it. Exec
        errors read as runc's ('exec: "nope": executable file not found in $PATH')."""
        ...

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None: ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def delete(self, container_id: str, force: bool = False) -> None:
        """Remove what create made (cgroups, state); the container must be stopped unless ``force``."""
        ...

    def state(self, container_id: str) -> RuntimeState: ...
