"""Export support: a tar of a container's merged root filesystem (``docker export``).

The container's overlay is mounted again, read-only, in a private temp directory with
its upper dir stacked as the topmost *lower* dir: overlayfs then shows the merged view
without sharing an upper/work dir with the container's own (possibly live) mount.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.shim import rootfs
from dockyard.storage.archive import tar_dir


def _read_only_view(mount: Mount) -> Mount:
    options = dict(o.partition("=")[::2] for o in mount.options if "=" in o)
    lowers = [d for d in (options.get("upperdir"), options.get("lowerdir")) if d]
    if mount.type != "overlay" or not lowers:
        raise errdefs.System(f"cannot export a root filesystem mounted as {mount.type}")
    return Mount(type="overlay", source="overlay", options=("ro", "lowerdir=" + ":".join(lowers)))


def export(mounts: list[Mount]) -> Iterator[bytes]:
    """Iterator of tar bytes; the temporary mount is undone when the iterator ends or is closed."""
    views = tuple(_read_only_view(m) for m in mounts if not m.target)
    if len(views) != 1:
        raise errdefs.System("cannot export: expected exactly one root filesystem mount")
    return _stream(views)


def _stream(views: tuple[Mount, ...]) -> Iterator[bytes]:
    with tempfile.TemporaryDirectory(prefix="dockyard-export-") as tmp:
        root = Path(tmp)
        rootfs.mount_all(views, root)
        try:
            yield from tar_dir(root)
        finally:
            rootfs.unmount_all(views, root)
