"""ContainerCore: the state ContainerService's parts share, and the small lookups they all use.

The parts (supervisor: start, exits and policy restarts; stopping: kill/stop/restart/pause;
removal; restore; ...) each hold this one object; ``service.ContainerService`` builds it and
them, and is the facade the API and the other services call.

Locking: one asyncio.Lock per container serializes start/remove/rename and exit handling.
Nothing waits for an exit while holding it (stop/kill release it first), so an exit can
always be recorded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from dockyard import errdefs
from dockyard.apitypes.container import WaitResponse
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers.attach import AttachSession
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.store import ContainerStore
from dockyard.daemon.interfaces import EventSink, ImageLookup, NetworkAttacher, VolumeMounter
from dockyard.mount import Mount
from dockyard.runtime.cgroups import MigrationWarmer
from dockyard.shim.client import ShimHandle, ShimManager

log = logging.getLogger("dockyard.containers")


@dataclass
class Running:
    """A running container's shim and the task watching for its exit."""
    handle: ShimHandle
    exited: asyncio.Event
    watch: asyncio.Task | None = None
    exit_on_next: bool = False  # a user's stop/kill: this exit never restarts (moby's ExitOnNext)


@dataclass
class ContainerCore:
    config: DaemonConfig
    store: ContainerStore
    images: ImageLookup
    networks: NetworkAttacher
    shims: ShimManager
    events: EventSink
    volumes: VolumeMounter
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    live: dict[str, Running] = field(default_factory=dict)
    pending: dict[str, list[AttachSession]] = field(default_factory=dict)  # attaches waiting for a start
    exit_waiters: dict[str, list[asyncio.Future]] = field(default_factory=dict)
    removed_waiters: dict[str, list[asyncio.Future]] = field(default_factory=dict)
    shim_shutdowns: dict[str, asyncio.Future] = field(default_factory=dict)  # an exited auto-remove's
    background: set[asyncio.Future] = field(default_factory=set)  # those shutdowns, the file removals after
    # what a create prepares for the start that usually follows (creation.warm_start), until
    # that start or the removal takes it
    warming: dict[str, asyncio.Future] = field(default_factory=dict)
    shutting_down: bool = False
    # the kernel's wait before moving a container's init into its cgroup (~10 ms) elapses
    # while the create's answer, the CLI's next requests and the shim's spawn go on
    migration_warmer: MigrationWarmer = field(default_factory=MigrationWarmer)

    def lock(self, cid: str) -> asyncio.Lock:
        return self.locks.setdefault(cid, asyncio.Lock())

    def emit(self, rec: ContainerRecord, action: str, **extra: str) -> None:
        attributes = {**(rec.config.labels or {}), "image": rec.config.image, "name": rec.name, **extra}
        self.events.emit("container", action, rec.id, attributes)

    def keep(self, task: asyncio.Future) -> None:
        """Hold a background task until it is done (the loop keeps weak references); close() awaits it."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def warmed(self, cid: str) -> None:
        """Wait for the files a create prepares (``creation.warm_start``), if it still runs."""
        task = self.warming.pop(cid, None)
        if task is not None:
            await task

    def exec_dir(self, cid: str) -> Path:
        return self.config.container_exec_dir(cid)

    def data_dir(self, cid: str) -> Path:
        return self.config.container_data_dir(cid)

    def cgroups_path(self, rec: ContainerRecord) -> str:
        return f"{rec.host_config.cgroup_parent or self.config.cgroup_parent}/{rec.id}"

    def upper(self, rec: ContainerRecord) -> Path | None:
        try:
            return self.images.rootfs_upper(rec.id)
        except (errdefs.DockyardError, NotImplementedError):
            return None

    def answer_waiters(self, waiters: list[asyncio.Future], exit_code: int) -> None:
        """``ContainerService.wait``'s futures get their answer here, not through a task of
        their own: the reply leaves one pass of the event loop sooner."""
        answer = WaitResponse(status_code=exit_code)
        for fut in waiters:
            if not fut.done():
                fut.set_result(answer)


def rootfs_mounts(rec: ContainerRecord) -> list[Mount]:
    return [Mount(type=m.type, source=m.source, options=tuple(m.options)) for m in rec.rootfs_mounts]

