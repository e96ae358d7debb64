"""An ImageService on real storage (content store, layers, overlay snapshotter, SQLite) in a
temp dir of its own, with recording fakes for the daemon parts it calls: the set-up shared by
the images, commit and distribution tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.images.service import ImageService
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter
from tests.integration.tempdirs import temp_dir

FIXTURES = Path("/work/shared/fixtures")
BUSYBOX_ID = "sha256:d7cd88ae98201f321ecfd5e5bbeb8ff8e5e0db86fd6558f924b3971778a6d67a"


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict | None]] = []

    def emit(self, type, action, actor_id, attributes=None, scope="local") -> None:
        self.seen.append((type, action, actor_id, attributes))

    def actions(self) -> list[str]:
        return [action for _, action, _, _ in self.seen]


class Usage:
    def __init__(self) -> None:
        self.by_image: dict[str, list[tuple[str, bool]]] = {}

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return self.by_image.get(image_id, [])


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = DaemonConfig(data_root=root / "data", exec_root=root / "run")
        self.db = Database(self.config.db_path)
        self.content = ContentStore(self.config.image_root / "content")
        self.layers = LayerStore(self.config.image_root / "layers", self.content, self.db)
        self.snapshotter = OverlaySnapshotter(self.config.snapshot_root, self.layers)
        self.events = Events()
        self.usage = Usage()
        self.service = ImageService(self.config, self.db, self.content, self.layers, self.snapshotter,
                                    self.events, self.usage)

    def load(self, name: str) -> list[str]:
        with open(FIXTURES / name, "rb") as f:
            return [m.stream for m in self.service.load(f)]

    def rows(self, table: str) -> int:
        return self.db.query(f"SELECT COUNT(*) FROM {table}")[0][0]

    def layer_dirs(self) -> list[str]:
        return sorted(os.listdir(self.config.image_root / "layers"))


@contextmanager
def temp_harness(prefix: str = "dy-images-") -> Iterator[Harness]:
    """A Harness in a temp dir; its database closed and the dir removed afterwards."""
    with temp_dir(prefix) as root:
        harness = Harness(root)
        try:
            yield harness
        finally:
            harness.db.close()
