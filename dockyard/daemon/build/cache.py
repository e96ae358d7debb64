"""The classic builder's cache: a step's image, found by its parent image and the step's key.

The key is a digest of everything that decides the step's result: the instruction as it
will be recorded (``created_by``, which for COPY/ADD names the digest of every source
file's content and metadata, and for RUN carries the build args it sees) and the config
the step runs with. A row whose image was removed since is a miss, never an error.
"""

from __future__ import annotations

import hashlib

from dockyard.oci import image_spec as spec
from dockyard.storage.metadata import Database


def step_key(created_by: str, config: spec.ContainerConfig | None, extra: str = "") -> str:
    h = hashlib.sha256()
    h.update(created_by.encode())
    h.update(b"\0")
    h.update(spec.encode(config) if config is not None else b"null")
    h.update(b"\0")
    h.update(extra.encode())
    return h.hexdigest()


class BuildCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    def lookup(self, parent: str, key: str) -> str | None:
        rows = self._db.query("SELECT image_id FROM build_cache WHERE parent = ? AND key = ?", (parent, key))
        return rows[0][0] if rows else None

    def store(self, parent: str, key: str, image_id: str, created: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO build_cache (parent, key, image_id, created) VALUES (?, ?, ?, ?)",
                        (parent, key, image_id, created))

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(parent, key, image_id, created) of every cached step."""
        return [tuple(r) for r in self._db.query(
            "SELECT parent, key, image_id, created FROM build_cache ORDER BY created")]  # type: ignore[misc]

    def prune(self) -> list[str]:
        """Forget every row; returns their record IDs (as ``system df -v`` shows them)."""
        with self._db.transaction() as cur:
            ids = [record_id(r[0]) for r in cur.execute("SELECT key FROM build_cache").fetchall()]
            cur.execute("DELETE FROM build_cache")
        return ids


def record_id(key: str) -> str:
    return key[:25]
