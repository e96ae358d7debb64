"""The composition root: builds every service and wires them together.

Only this module sees all the implementations; each service gets its siblings
as the narrow Protocols of ``dockyard.daemon.interfaces``. It owns start-up
order (storage, events, networks, shims, containers restore) and shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dockyard.daemon.build.images import BuildImages
from dockyard.daemon.build.service import BuildService
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.distribution.service import DistributionService
from dockyard.daemon.containers import health
from dockyard.daemon.containers.exec import ExecService
from dockyard.daemon.containers.service import ContainerService
from dockyard.daemon.events import EventFilter, EventService
from dockyard.daemon.images.service import ImageService
from dockyard.daemon.networks import NetworkService
from dockyard.daemon.system import SystemService
from dockyard.shim.manager import ZygoteShimManager
from dockyard.daemon.volumes import VolumesService
from dockyard.runtime import syscalls
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter

log = logging.getLogger("dockyard.daemon")

HEAP_TRIM_POLL = 1.0  # seconds between looks at the process's CPU clock
HEAP_TRIM_QUIET = 0.005  # CPU seconds in a poll below which the daemon counts as quiet
HEAP_TRIM_BUSY = 30.0  # seconds between trims while the daemon stays busy


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        for d in (config.data_root, config.exec_root, config.data_root / "containers",
                  config.exec_root / "containers"):
            d.mkdir(parents=True, exist_ok=True)
        self.db = Database(config.db_path)
        self.events = EventService()
        self.make_event_filter = EventFilter
        self.content = ContentStore(config.image_root / "content")
        self.layers = LayerStore(config.image_root / "layers", self.content, self.db)
        self.snapshotter = OverlaySnapshotter(config.snapshot_root, self.layers)
        self.networks = NetworkService(config, self.db, self.events)
        self.shims = ZygoteShimManager(config.zygote_socket)
        # images and containers need each other: images ask which containers use an image
        # (ContainerUsage), containers resolve images (ImageLookup); wired after both exist
        self.images = ImageService(config, self.db, self.content, self.layers, self.snapshotter,
                                   self.events, containers=None)
        self.volumes = VolumesService(config, self.db, self.events)
        self.containers = ContainerService(config, self.db, self.images, self.networks, self.shims,
                                           self.events, self.volumes)
        self.execs = ExecService(self.containers, config.container_exec_dir)
        self.containers.exec_ids = self.execs.running_ids
        self.containers.use_probe_runner(health.exec_probe(self.execs))  # health checks run via exec
        self.images.containers = self.containers
        self.networks.endpoints_changed = self.containers.network_endpoints_changed
        self.networks.stopped_containers = self.containers
        self.images.commit_source = self.containers
        self.distribution = DistributionService(config, self.images)  # its registry client: at first use
        self.build = BuildService(config, self.db, BuildImages(self.images), self.containers, self.events,
                                  puller=self.distribution)
        self.system = SystemService(config, self.containers, self.images, self._runtimes(),
                                    volumes=self.volumes, build_cache=self.build)
        self._heap_trimmer: asyncio.Future | None = None

    def _runtimes(self) -> dict[str, str]:
        return {"dockyard": "builtin", **self.config.runtimes}

    async def start(self) -> None:
        self.events.bind_loop(asyncio.get_running_loop())
        # crash recovery before serving: half-made layers, snapshots and loads go away
        self.content.gc_ingest()
        self.layers.gc()
        self.snapshotter.gc()
        self.build.recover()  # contexts and scratch mounts of builds the daemon died in
        self.distribution.recover()  # blobs of pulls nobody resumed within a day
        removed = self.images.recover()
        if removed:
            log.info("released %d layers left by an interrupted load", len(removed))
        await self.networks.start()
        await self.shims.start()
        self.volumes.restore()  # before containers: an exit found now unmounts through the drivers
        await self.containers.restore()
        await self.build.remove_leftover_containers()  # RUN containers of builds the daemon died in
        live = {c.id: c.names[0].lstrip("/") for c in self.containers.list(all=False)}
        await self.networks.reconcile(live)
        await self.containers.start_by_policy()  # after reconcile: these make new sandboxes
        self.volumes.forget_missing({c.id for c in self.containers.list(all=True)})
        self._heap_trimmer = asyncio.ensure_future(self._trim_heap())

    @staticmethod
    async def _trim_heap() -> None:
        """Freed memory stays in the C heap (glibc keeps it) unless given back: start-up's, and
        each request's (a 200 MB ``docker load`` leaves ~13 MB). Given back now, then once the
        daemon goes quiet after work (its CPU clock, all threads, moved in one poll and not in
        the next), so an idle daemon is at its floor a second or two after the last request,
        and every HEAP_TRIM_BUSY seconds while it stays busy. A quiet daemon does not trim
        again: nothing new was freed."""
        syscalls.malloc_trim()
        trimmed_at, busy, clock = time.monotonic(), False, time.process_time()
        while True:
            await asyncio.sleep(HEAP_TRIM_POLL)
            worked = time.process_time() - clock > HEAP_TRIM_QUIET
            busy = busy or worked
            if busy and (not worked or time.monotonic() - trimmed_at > HEAP_TRIM_BUSY):
                syscalls.malloc_trim()
                trimmed_at, busy = time.monotonic(), False
            clock = time.process_time()  # after the trim: its own CPU time is not work

    async def stop(self) -> None:
        if self._heap_trimmer is not None:
            self._heap_trimmer.cancel()
        await self.containers.close()  # running containers keep running (live-restore)
        await self.execs.close()
        await self.shims.close()
        await self.networks.stop()
        self.distribution.close()  # transfers in flight stop; their blobs stay for the next pull
        self.db.close()

