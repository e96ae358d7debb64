"""Where the hub's blobs live: the ``Blobs`` protocol and its filesystem implementation.

The filesystem backend is the engine's content store (fsync, verify, rename) plus what the hub
needs beyond it: a blob's age (garbage collection's grace period), how to serve it (a local
file), and where an upload session's bytes go while they arrive (``Session``: appended to the
session's ``data`` file, committed through the content store). dockyard.registry.s3 implements
the same protocols on an S3-compatible object store."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable, Protocol

from dockyard import errdefs
from dockyard.registry import errors
from dockyard.storage.content import ContentStore, Descriptor
from dockyard.storage.fsutil import fsync_dir


class Session(Protocol):
    """The bytes of one upload session (a chunked upload spans many requests); its state lives in
    the session's directory, so it survives a restart of the hub."""

    @property
    def size(self) -> int:
        """Bytes received so far; FileNotFoundError once the session is gone."""

    async def append(self, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        """Append byte chunks and return the new size. A failure (a client gone mid-chunk) leaves
        the session as it was before the call; ``start`` must equal the current size, else
        errors.RangeInvalid (416); FileNotFoundError once the session is gone."""

    def commit(self, expected_digest: str) -> Descriptor:
        """Verify the bytes against ``expected_digest`` and store them as that blob;
        errdefs.InvalidParameter on a mismatch (nothing of the blob is then visible)."""

    def discard(self) -> None:
        """Release what the backend holds for the session (its directory is the store's)."""


class Blobs(Protocol):
    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected_digest: str | None = None,
               expected_size: int | None = None) -> Descriptor:
        """Verify and commit atomically; errdefs.InvalidParameter on a size or digest mismatch."""

    def info(self, digest: str) -> Descriptor:
        """errdefs.NotFound when absent."""

    def has(self, digest: str) -> bool: ...

    def read_bytes(self, digest: str) -> bytes: ...

    def delete(self, digest: str) -> None: ...

    def list(self) -> list[Descriptor]: ...

    def age(self, digest: str) -> float:
        """Seconds since the blob was committed (or last committed again); errdefs.NotFound."""

    def location(self, digest: str) -> Path | str:
        """A local file to send, or a URL the client is redirected to."""

    def gc_staging(self) -> None:
        """At start-up: drop writes a crash interrupted."""

    def session(self, root: Path) -> Session:
        """The session kept in the directory ``root`` (the store creates and removes it)."""

    def drop_orphaned_sessions(self, session_exists: Callable[[str], bool]) -> int:
        """Garbage collection: release what the backend still holds for sessions whose directory
        is gone (a crash, or storage that refused to let go at cancel time); how many."""


class FileSession:
    """Bytes appended in order to ``<root>/data``, hashed as they arrive; committed by renaming
    the file into the content store (one write of every byte, no copy at the end).

    The running SHA-256 lives in memory only: a session picked up again after a restart of the
    hub (or whose file changed behind it) is hashed once more from its file at commit."""

    def __init__(self, blobs: "FilesystemBlobs", root: Path) -> None:
        self._blobs = blobs
        self._data = root / "data"
        self._hash = hashlib.sha256()
        self._hashed = 0  # how many bytes of the file self._hash covers

    @property
    def size(self) -> int:
        return self._data.stat().st_size

    async def append(self, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        with open(self._data, "r+b") as f:
            offset = f.seek(0, os.SEEK_END)
            if start is not None and start != offset:
                raise errors.RangeInvalid(f"upload chunk starts at {start}, expected {offset}", {"offset": offset})
            # a copy: a broken chunk is cut off the file and must be left out of the hash too
            running = self._hash.copy() if self._hashed == offset else None
            try:
                async for chunk in chunks:
                    f.write(chunk)
                    if running is not None:
                        running.update(chunk)
            except BaseException:
                f.truncate(offset)
                raise
            size = f.tell()
        if running is not None:
            self._hash, self._hashed = running, size
        return size

    def commit(self, expected_digest: str) -> Descriptor:
        with open(self._data, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if self._hashed == size:
                digest = "sha256:" + self._hash.hexdigest()
            else:
                digest = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
        if digest != expected_digest:
            raise errdefs.InvalidParameter(f"content digest mismatch: expected {expected_digest}, got {digest}")
        return self._blobs.adopt(self._data, Descriptor(digest, size))

    def discard(self) -> None:
        pass


class FilesystemBlobs(ContentStore):
    def age(self, digest: str) -> float:
        try:
            return time.time() - os.stat(self.path(digest)).st_mtime
        except FileNotFoundError:
            raise errdefs.NotFound(f"content {digest}: not found") from None

    def adopt(self, path: Path, desc: Descriptor) -> Descriptor:
        """Make the verified file ``path`` (on the same filesystem) the blob ``desc``: fsync,
        read-only, rename into place, fsync the directory, as the content store commits. Its
        age starts now, as an ingested blob's does (an upload idle for hours must not look
        old enough to collect before its manifest comes)."""
        final = self.path(desc.digest)
        if final.exists():
            return desc  # already stored: content addressing makes it equal
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.utime(fd)
            os.fsync(fd)
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        try:
            os.rename(path, final)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            with open(path, "rb") as f:  # uploads/ on another filesystem than content/
                return self.ingest(f, expected_digest=desc.digest, expected_size=desc.size)
        fsync_dir(final.parent)
        return desc

    def location(self, digest: str) -> Path:
        return self.path(digest)

    def gc_staging(self) -> None:
        self.gc_ingest()

    def session(self, root: Path) -> FileSession:
        return FileSession(self, root)

    def drop_orphaned_sessions(self, session_exists: Callable[[str], bool]) -> int:
        return 0  # a file session is only its directory


def make_blobs(data: Path, s3: dict | None) -> Blobs:
    """The filesystem under ``data/content`` unless an ``s3`` section names a bucket."""
    if not s3:
        return FilesystemBlobs(data / "content")
    from dockyard.registry.s3 import S3Blobs, S3Settings

    blobs = S3Blobs(S3Settings(**s3), data / "staging")
    blobs.ensure_bucket()
    return blobs
