"""ImageService: the daemon's images (the ``ImageLookup`` the container service uses).

Each operation lives in its own module (list, inspect, history, tag, remove, prune,
load, save, import, commit, export); this class holds the shared state and is the one
object the router and the container service see. Methods are synchronous; the router
runs the slow ones (tar work) in a thread. Streams are iterators of bytes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO, Any, Iterator

from dockyard.apitypes import image as api
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.images import (commit, export, history, importer, inspect, listing, load, remove,
                                    save, snapshot_usage, tag)
from dockyard.daemon.images.references import familiar
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.store import ImageRecord, ImageStore
from dockyard.daemon.interfaces import ContainerCommitSource, ContainerUsage, EventSink, ImageInfo
from dockyard.mount import Mount
from dockyard.oci import image_spec as spec
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter


class ImageService:
    def __init__(self, config: DaemonConfig, db: Database, content: ContentStore, layers: LayerStore,
                 snapshotter: OverlaySnapshotter, events: EventSink, containers: ContainerUsage,
                 commit_source: ContainerCommitSource | None = None) -> None:
        self.config = config
        self.store = ImageStore(db)
        self.content = content
        self.layers = layers
        self.snapshotter = snapshotter
        self.events = events
        self.containers = containers
        self.commit_source = commit_source
        # Held while layers are registered or released, so a failing load cannot release
        # a layer that a concurrent load is about to reference.
        self.lock = threading.RLock()

    def recover(self) -> list[str]:
        """At start-up, before serving: release layers that a load, import or commit registered
        before the daemon died, without the image row that would have used them."""
        removed: list[str] = []
        with self.lock:
            in_use = snapshot_usage.chains_in_use(self.snapshotter, self.store.db)
            for chain_id in self.store.orphan_layers():
                if chain_id not in in_use:
                    removed.extend(self.layers.release(chain_id))
        return removed

    # ---- ImageLookup (for the container service) ---------------------------------------
    def resolve(self, ref: str) -> ImageInfo:
        return self.info(resolve(self.store, ref))

    def info(self, record: ImageRecord) -> ImageInfo:
        return ImageInfo(id=record.id, config=spec.container_config_dict(record.config.config),
                         top_chain_id=record.top_chain_id,
                         repo_tags=[familiar(r) for r in self.store.refs_of(record.id)])

    def prepare_rootfs(self, key: str, image: ImageInfo) -> list[Mount]:
        return self.snapshotter.prepare(key, image.top_chain_id)

    def make_spare_rootfs(self) -> None:
        self.snapshotter.make_spare()

    def remove_rootfs(self, key: str) -> None:
        chain = snapshot_usage.snapshot_chain(self.snapshotter, self.store.db, key)
        self.snapshotter.remove(key)
        # The image may have been force-removed while this container kept its layers alive.
        if chain is not None and self.store.is_orphan_layer(chain):
            with self.lock:
                if chain not in snapshot_usage.chains_in_use(self.snapshotter, self.store.db):
                    self.layers.release(chain)

    def rootfs_diff(self, key: str) -> Iterator[bytes]:
        return self.snapshotter.diff(key)

    def rootfs_upper(self, key: str) -> Path:
        return self.snapshotter.upper_dir(key)

    def layer_dirs(self, image: ImageInfo) -> list[Path]:
        return self.layers.lower_dirs(image.top_chain_id) if image.top_chain_id else []

    # ---- the images API --------------------------------------------------------------
    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None,
             shared_size: bool = False) -> list[api.ImageSummary]:
        return listing.list_images(self, all, filters or {}, shared_size)

    def count(self) -> int:
        return len(self.store.all())

    def disk_usage(self) -> dict[str, Any]:
        return listing.disk_usage(self)

    def inspect(self, ref: str) -> api.ImageInspect:
        return inspect.inspect(self, ref)

    def history(self, ref: str) -> list[api.HistoryResponseItem]:
        return history.history(self, ref)

    def tag(self, ref: str, repo: str, tag_name: str) -> None:
        tag.tag(self, ref, repo, tag_name)

    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[api.DeleteResponse]:
        return remove.remove(self, ref, force, prune)

    def prune(self, filters: dict[str, list[str]] | None = None) -> api.PruneReport:
        return remove.prune(self, filters or {})

    def load(self, archive: IO[bytes]) -> list[api.ProgressMessage]:
        """The archive must be seekable (the router spools the upload)."""
        return load.load(self, archive)

    def save(self, refs: list[str]) -> Iterator[bytes]:
        return save.save(self, refs)

    def import_image(self, source: IO[bytes], repo: str = "", tag_name: str = "", message: str = "",
                     changes: list[str] | None = None, platform: str = "") -> list[api.ProgressMessage]:
        return importer.import_image(self, source, repo, tag_name, message, changes or [], platform)

    def commit(self, container_id: str, image_id: str, snapshot_key: str, container_config: dict[str, Any],
               repo: str = "", tag_name: str = "", author: str = "", comment: str = "",
               changes: list[str] | None = None, overrides: dict[str, Any] | None = None) -> str:
        return commit.commit(self, container_id, image_id, snapshot_key, container_config, repo, tag_name,
                             author, comment, changes or [], overrides)

    def commit_container(self, container: str, repo: str = "", tag_name: str = "", author: str = "",
                         comment: str = "", changes: list[str] | None = None, pause: bool = True,
                         overrides: dict[str, Any] | None = None) -> api.CommitResponse:
        return commit.commit_container(self, container, repo, tag_name, author, comment, changes or [],
                                       pause, overrides)

    def export(self, mounts: list[Mount]) -> Iterator[bytes]:
        return export.export(mounts)
