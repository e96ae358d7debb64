"""Which layer chains container snapshots sit on.

A forced ``docker rmi`` may delete an image that a stopped container still uses (Docker
allows it); the container's layers must then outlive the image row. They are released
when the last snapshot over them goes (``remove_rootfs``) and never by ``recover``
while a snapshot sits on them. The snapshotter gives mounts, not parents, so the top
lower dir of a snapshot's overlay is mapped back to its chain through the layers table.
"""

from __future__ import annotations

from pathlib import Path

from dockyard import errdefs
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter


def snapshot_chain(snapshotter: OverlaySnapshotter, db: Database, key: str) -> str | None:
    """The chain the snapshot ``key`` sits on (None: no snapshot, or one over no layers)."""
    try:
        mounts = snapshotter.mounts(key)
    except (errdefs.NotFound, errdefs.InvalidParameter):
        return None
    for option in mounts[0].options if mounts else ():
        if option.startswith("lowerdir="):
            top = Path(option[len("lowerdir="):].split(":")[0])
            rows = db.query("SELECT chain_id FROM layers WHERE cache_id = ?", (top.name,))
            return rows[0][0] if rows else None
    return None


def chains_in_use(snapshotter: OverlaySnapshotter, db: Database) -> set[str]:
    chains = set()
    for entry in snapshotter.root.iterdir():
        if not entry.name.startswith(".") and snapshotter.exists(entry.name):
            chain = snapshot_chain(snapshotter, db, entry.name)
            if chain is not None:
                chains.add(chain)
    return chains
