"""The daemon's metadata database: one SQLite file, WAL, schema and migrations here.

Schema (version 1)::

    layers      chain_id PK | diff_id | parent (chain_id) | size | cache_id (dir name) | created
    images      id PK ("sha256:<config digest>") | config (raw JSON bytes, exactly as hashed)
                | top_chain_id | size | created | parent (image id, for commit/build chains)
    refs        name PK (normalized "docker.io/library/busybox:latest") | image_id
    repo_digests image_id | name ("docker.io/library/busybox@sha256:...")   PK(image_id, name)
    containers  id PK | name UNIQUE (without leading "/") | image_id | created | doc (JSON record)
    networks    id PK | name UNIQUE | doc (JSON record)
    ip_allocs   network_id | address | owner  PK(network_id, address)
    volumes     name PK | doc (JSON record)

Version 2 adds::

    container_mounts  container_id PK | doc (JSON: the container's resolved mounts, owned by
                      the volume service; -v, --mount, --volumes-from, anonymous volumes)

Version 3 adds::

    build_cache parent (image id) | key (digest of the step) | image_id | created
                PK(parent, key): the classic builder's cache, a step's image under its parent

Every state change is one transaction (``with db.transaction() as cur: ...``).
A schema change is a new entry at the end of MIGRATIONS; never edit an old one.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY, diff_id TEXT NOT NULL, parent TEXT,
        size INTEGER NOT NULL DEFAULT 0, cache_id TEXT NOT NULL, created TEXT NOT NULL
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY, config BLOB NOT NULL, top_chain_id TEXT,
        size INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL, parent TEXT
    );
    CREATE TABLE refs (name TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id));
    CREATE INDEX refs_image ON refs(image_id);
    CREATE TABLE repo_digests (
        image_id TEXT NOT NULL REFERENCES images(id), name TEXT NOT NULL,
        PRIMARY KEY (image_id, name)
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL,
        created TEXT NOT NULL, doc BLOB NOT NULL
    );
    CREATE INDEX containers_image ON containers(image_id);
    CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc BLOB NOT NULL);
    CREATE TABLE ip_allocs (
        network_id TEXT NOT NULL, address TEXT NOT NULL, owner TEXT NOT NULL,
        PRIMARY KEY (network_id, address)
    );
    CREATE TABLE volumes (name TEXT PRIMARY KEY, doc BLOB NOT NULL);
    """,
    # 2: the volume service's record of each container's mounts
    """
    CREATE TABLE container_mounts (container_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
    """,
    # 3: the classic builder's cache (dockyard.daemon.build.cache)
    """
    CREATE TABLE build_cache (
        parent TEXT NOT NULL, key TEXT NOT NULL, image_id TEXT NOT NULL, created TEXT NOT NULL,
        PRIMARY KEY (parent, key)
    );
    """,
]


class Database:
    """A single connection shared by the daemon's services, serialized by a lock.

    Calls are short (well under a millisecond); services call them directly from
    the event loop or from worker threads.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={number}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        """One atomic state change: committed on success, rolled back on any error.

        ``durable=False`` commits to the WAL without an fsync (~0.02 ms instead of 0.3-3 ms): the
        change survives a daemon crash but not a power loss. Only for state that a reboot voids
        anyway (the addresses of running containers); the next durable commit syncs it too.
        """
        with self._lock:
            cur = self._conn.cursor()
            if not durable:
                cur.execute("PRAGMA synchronous=NORMAL")
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                else:
                    cur.execute("COMMIT")
            finally:
                if not durable:
                    cur.execute("PRAGMA synchronous=FULL")

    def query(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
