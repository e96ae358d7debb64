"""Writable container root filesystems as overlay snapshots over image layers.

Layout under ``root``::

    <key>/upper   the container's changes (overlay upperdir)
    <key>/work    overlay workdir
    <key>/lower   an empty lower dir, used only when the image has no layers
    <key>/parent  the parent chain id (empty: no layers), so mounts survive a restart

Like containerd's snapshotters this module never mounts: ``prepare`` and ``mounts``
return ``dockyard.mount.Mount`` values that the shim (or a daemon helper) performs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from dockyard.mount import Mount
from dockyard.storage.layers import LayerStore


class OverlaySnapshotter:
    def __init__(self, root: Path, layers: LayerStore) -> None:
        raise NotImplementedError

    def prepare(self, key: str, parent_chain_id: str | None) -> list[Mount]:
        """Create the snapshot ``key`` over the chain and return its mounts (one overlay,
        target empty: the caller picks it). Raises errdefs.Conflict if ``key`` exists."""
        raise NotImplementedError

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an existing snapshot; raises errdefs.NotFound."""
        raise NotImplementedError

    def upper_dir(self, key: str) -> Path:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def remove(self, key: str) -> None:
        """Delete the snapshot's directories (idempotent). The caller unmounts first."""
        raise NotImplementedError

    def diff(self, key: str) -> Iterator[bytes]:
        """The snapshot's changes as a Docker layer tar (for commit)."""
        raise NotImplementedError
