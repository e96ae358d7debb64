"""What keeps garbage collection from deleting a blob a push has just made live again.

The collector marks (reads every manifest) without holding anything, so between its mark and
its delete a client can re-push an old unreferenced blob, mount it, or put a manifest naming it;
without this module the sweep would then delete a blob whose push had been answered 201.

Two ``flock`` locks and a journal under ``<data>/gc/`` close that window, across processes
(``garbage-collect`` runs beside ``serve``)::

    gc/run.lock   held exclusively by the one collection running (a second one waits)
    gc/lock       shared by every operation that makes a blob live (commit + link, mount,
                  manifest put), exclusive for each of the collector's deletions
    gc/gate       passed (shared, at once released) before taking gc/lock shared, and held
                  exclusively by the collector while it waits for gc/lock: flock has no
                  writer priority, so without it a hub that never stops committing would
                  hold a collection back for ever
    gc/running    exists while a collection runs (it also survives a collector that crashed:
                  the next collection starts over and clears it)
    gc/journal    digests made live while a collection runs, one per line

An operation that makes a blob live holds ``gc/lock`` shared from before it checks the blob
until its link is written, and writes the digests to the journal first when a collection
runs. The collector takes ``gc/lock`` exclusively for each deletion, reads what the journal
gained, and spares those digests. So a deletion either comes before the operation (which then
finds the blob gone and stores it again, or refuses: MANIFEST_BLOB_UNKNOWN, no mount) or after
it (and sees its journal line): never between its check and its 201.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class SweepLock:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = directory / "lock"
        self._gate = directory / "gate"
        self._marker = directory / "running"
        self._journal = directory / "journal"

    @contextmanager
    def _flock(self, path: Path, mode: int) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._flock(self._gate, fcntl.LOCK_EX), self._flock(self._lock, fcntl.LOCK_EX):
            yield

    @contextmanager
    def live(self, digests: list[str]) -> Iterator[None]:
        """Around an operation that makes ``digests`` live: no deletion runs inside it, and a
        collection in progress will spare them. Never nested: an inner call would wait at the
        gate for a deletion that waits for the outer one."""
        with self._flock(self._gate, fcntl.LOCK_SH):
            pass  # wait behind a deletion that is waiting for the operations in flight
        with self._flock(self._lock, fcntl.LOCK_SH):
            if self._marker.exists():
                fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, "".join(f"{d}\n" for d in digests).encode())
                finally:
                    os.close(fd)
            yield

    @contextmanager
    def collection(self) -> Iterator["Collection"]:
        """One collection: from before its mark to after its last deletion."""
        with self._flock(self.directory / "run.lock", fcntl.LOCK_EX):
            with self._exclusive():
                self._journal.write_bytes(b"")
                self._marker.touch()
            try:
                yield Collection(self)
            finally:
                with self._exclusive():
                    self._marker.unlink(missing_ok=True)
                    self._journal.unlink(missing_ok=True)


class Collection:
    def __init__(self, lock: SweepLock) -> None:
        self._lock = lock
        self._offset = 0
        self.spared: set[str] = set()

    @contextmanager
    def deleting(self) -> Iterator[set[str]]:
        """Hold off every operation that makes a blob live; yields the digests made live since
        the collection began (the caller must not delete those)."""
        with self._lock._exclusive():
            try:
                with open(self._lock._journal, "rb") as f:
                    f.seek(self._offset)
                    added = f.read()
            except FileNotFoundError:
                added = b""
            complete = added[:added.rfind(b"\n") + 1]  # whole lines only (every writer is done)
            self._offset += len(complete)
            self.spared.update(line for line in complete.decode().split("\n") if line)
            yield self.spared
