"""The image rows of the metadata database: images, refs, repo_digests.

Reading and writing them is kept here so every operation module agrees on the
shapes. ``refs.name`` holds the normalized reference (``docker.io/library/busybox:latest``);
``images.config`` the config bytes exactly as hashed into the ID.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.oci import image_spec as spec
from dockyard.storage.metadata import Database


@dataclass(frozen=True)
class ImageRecord:
    id: str  # "sha256:<hex>" of config
    config_bytes: bytes
    top_chain_id: str | None
    size: int
    created: str  # when it was stored here (RFC 3339)
    parent: str  # parent image ID ("" when none): commit chains

    @cached_property
    def config(self) -> spec.ImageConfig:
        return spec.decode_config(self.config_bytes)


_COLUMNS = "id, config, top_chain_id, size, created, parent"


def _record(row: tuple) -> ImageRecord:
    return ImageRecord(id=row[0], config_bytes=bytes(row[1]), top_chain_id=row[2], size=row[3],
                       created=row[4], parent=row[5] or "")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- reads -------------------------------------------------------------------
    def get(self, image_id: str) -> ImageRecord | None:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,))
        return _record(rows[0]) if rows else None

    def all(self) -> list[ImageRecord]:
        return [_record(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM images")]

    def by_prefix(self, hex_prefix: str) -> list[str]:
        pattern = "sha256:" + hex_prefix.replace("%", "").replace("_", "") + "%"
        return [r[0] for r in self.db.query("SELECT id FROM images WHERE id LIKE ? LIMIT 2", (pattern,))]

    def ref_target(self, name: str) -> str | None:
        rows = self.db.query("SELECT image_id FROM refs WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def digest_target(self, name: str) -> str | None:
        rows = self.db.query("SELECT image_id FROM repo_digests WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def refs_of(self, image_id: str) -> list[str]:
        """Normalized tag references of the image, sorted."""
        return [r[0] for r in self.db.query(
            "SELECT name FROM refs WHERE image_id = ? ORDER BY name", (image_id,))]

    def digests_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query(
            "SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (image_id,))]

    def ref_names(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM refs ORDER BY name")]

    def all_refs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, image_id in self.db.query("SELECT name, image_id FROM refs ORDER BY name"):
            out.setdefault(image_id, []).append(name)
        return out

    def all_digests(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for image_id, name in self.db.query("SELECT image_id, name FROM repo_digests ORDER BY name"):
            out.setdefault(image_id, []).append(name)
        return out

    def children(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def orphan_layers(self) -> list[str]:
        """Top layers no image uses: left by a load or import that died before its image row."""
        return [r[0] for r in self.db.query(
            "SELECT chain_id FROM layers AS l WHERE NOT EXISTS (SELECT 1 FROM images WHERE top_chain_id = l.chain_id)"
            " AND NOT EXISTS (SELECT 1 FROM layers AS c WHERE c.parent = l.chain_id)")]

    def is_orphan_layer(self, chain_id: str) -> bool:
        return not self.db.query(
            "SELECT 1 FROM images WHERE top_chain_id = ? UNION ALL SELECT 1 FROM layers WHERE parent = ? LIMIT 1",
            (chain_id, chain_id))

    # ---- writes (inside a caller's transaction) -------------------------------------
    @staticmethod
    def insert(cur: sqlite3.Cursor, image_id: str, config: bytes, top_chain_id: str | None, size: int,
               parent: str = "") -> bool:
        """Add the image row unless it exists; True when it was new."""
        cur.execute("INSERT OR IGNORE INTO images (id, config, top_chain_id, size, created, parent) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (image_id, config, top_chain_id, size, now_rfc3339(), parent or None))
        return cur.rowcount == 1

    @staticmethod
    def set_ref(cur: sqlite3.Cursor, ref: references.Reference, image_id: str) -> str | None:
        """Point ``ref`` at the image; returns the image it pointed at before (None if new)."""
        name = str(ref)
        row = cur.execute("SELECT image_id FROM refs WHERE name = ?", (name,)).fetchone()
        cur.execute("INSERT INTO refs (name, image_id) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))
        return row[0] if row else None

    @staticmethod
    def delete_ref(cur: sqlite3.Cursor, name: str) -> None:
        cur.execute("DELETE FROM refs WHERE name = ?", (name,))

    @staticmethod
    def delete_image(cur: sqlite3.Cursor, image_id: str) -> None:
        cur.execute("DELETE FROM refs WHERE image_id = ?", (image_id,))
        cur.execute("DELETE FROM repo_digests WHERE image_id = ?", (image_id,))
        cur.execute("DELETE FROM images WHERE id = ?", (image_id,))


def short_id(image_id: str) -> str:
    """``stringid.TruncateID``: 12 hex characters, no algorithm."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def require(record: ImageRecord | None, ref: str) -> ImageRecord:
    if record is None:
        raise errdefs.no_such_image(ref)
    return record
