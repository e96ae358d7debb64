"""BuildService: ``POST /build`` and ``POST /build/prune`` (the classic builder).

The context arrives as a spooled file; it is unpacked into a private directory under
``exec_root/build`` that lives exactly as long as the build. ``build`` is an async
iterator of stream messages; an error raised before the first message is the API's
error response, one raised later becomes the stream's ``errorDetail``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, BinaryIO

from dockyard.daemon.build import run
from dockyard.daemon.build.cache import BuildCache, record_id
from dockyard.daemon.build.images import BuildImages
from dockyard.daemon.build.options import BasePuller, BuildOptions
from dockyard.daemon.build.run import RunContainers
from dockyard.daemon.build.stream import Message
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.interfaces import EventSink
from dockyard.runtime import syscalls as sc
from dockyard.storage.metadata import Database

if TYPE_CHECKING:
    from dockyard.daemon.build.builder import Builder

log = logging.getLogger("dockyard.build")


class BuildService:
    def __init__(self, config: DaemonConfig, db: Database, images: BuildImages, containers: RunContainers,
                 events: EventSink, puller: BasePuller | None = None) -> None:
        self._scratch = config.exec_root / "build"
        self._cache = BuildCache(db)
        self._events = events
        self._images = images
        self._containers = containers
        self._puller = puller
        self._builder: Builder | None = None

    def recover(self) -> None:
        """At start-up: contexts and scratch mounts of builds the daemon died in (unmounted
        first, so removing the tree never reaches into a snapshot)."""
        prefix = str(self._scratch) + "/"
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
        for target in sorted((t for t in targets if t.startswith(prefix)), reverse=True):
            try:
                sc.umount2(target, sc.MNT_DETACH)
            except OSError:
                pass
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._images.remove_leftover_snapshots()

    async def remove_leftover_containers(self) -> None:
        """After the containers are restored: RUN containers of builds the daemon died in."""
        removed = await run.remove_leftovers(self._containers)
        if removed:
            log.info("removed %d containers of interrupted builds", removed)

    def _loaded_builder(self) -> Builder:
        """The builder, made at the first build: it and the parser, context and copy modules
        it brings are ~1 MB of RSS an idle daemon (most daemons, most of the time) never uses."""
        if self._builder is None:
            from dockyard.daemon.build.builder import Builder
            self._builder = Builder(self._images, self._cache, self._containers, self._scratch, self._puller)
        return self._builder

    async def build(self, body: BinaryIO, options: BuildOptions) -> AsyncIterator[Message]:
        builder = self._loaded_builder()
        from dockyard.daemon.build import context as contextmod  # with the builder: at the first build
        context = await asyncio.to_thread(contextmod.open_context, body, options.dockerfile, options.remote,
                                          Path(self._scratch))
        try:
            async for message in builder.build(context, options):
                yield message
        finally:
            await asyncio.shield(asyncio.to_thread(context.close))

    def prune(self) -> dict:
        """Forget the build cache; the intermediate images stay until ``image prune`` removes them."""
        forgotten = self._cache.prune()
        return {"CachesDeleted": forgotten, "SpaceReclaimed": 0}

    def disk_usage(self) -> list[dict[str, Any]]:
        """``system df``: one record per cached step whose image still exists; a step that made
        a layer counts that layer's size (metadata steps are 0 B)."""
        records = []
        for parent, key, image_id, created in self._cache.rows():
            image = self._images.get(image_id)
            if image is None:
                continue
            history = image.config.history or []
            records.append({
                "ID": record_id(key), "Parent": parent, "Parents": [parent], "Type": "regular",
                "Description": history[-1].created_by if history else "", "InUse": False, "Shared": False,
                "Size": self._images.own_layer_size(image), "CreatedAt": created, "LastUsedAt": created,
                "UsageCount": 1})
        return records
