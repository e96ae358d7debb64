"""Where the hub's blobs live: the ``Blobs`` protocol and its filesystem implementation.

The filesystem backend is the engine's content store (fsync, verify, rename) plus what the hub
needs beyond it: a blob's age (garbage collection's grace period), how to serve it (a local
file), and where an upload session's bytes go while they arrive (``Session``: appended to the
session's ``data`` file, committed through the content store). dockyard.registry.s3 implements
the same protocols on an S3-compatible object store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable, Protocol

from dockyard.registry import errors
from dockyard.storage.content import ContentStore, Descriptor


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
    """Bytes appended in order to ``<root>/data``; committed through the content store."""

    def __init__(self, blobs: ContentStore, root: Path) -> None:
        self._blobs = blobs
        self._data = root / "data"

    @property
    def size(self) -> int:
        return self._data.stat().st_size

    async def append(self, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        with open(self._data, "r+b") as f:
            offset = f.seek(0, os.SEEK_END)
            if start is not None and start != offset:
                raise errors.RangeInvalid(f"upload chunk starts at {start}, expected {offset}", {"offset": offset})
            try:
                async for chunk in chunks:
                    f.write(chunk)
            except BaseException:
                f.truncate(offset)
                raise
            return f.tell()

    def commit(self, expected_digest: str) -> Descriptor:
        with open(self._data, "rb") as f:
            return self._blobs.ingest(f, expected_digest=expected_digest)

    def discard(self) -> None:
        pass


class FilesystemBlobs(ContentStore):
    def age(self, digest: str) -> float:
        try:
            return time.time() - os.stat(self.path(digest)).st_mtime
        except FileNotFoundError:
            from dockyard import errdefs

            raise errdefs.NotFound(f"content {digest}: not found") from None

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
