"""Where the hub's blobs live: the ``Blobs`` protocol and its filesystem implementation.

The filesystem backend is the engine's content store (fsync, verify, rename) plus what the hub
needs beyond it: a blob's age (garbage collection's grace period) and how to serve it (a local
file). dockyard.registry.s3 implements the same protocol on an S3-compatible object store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Protocol

from dockyard.storage.content import ContentStore, Descriptor


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


def make_blobs(data: Path, s3: dict | None) -> Blobs:
    """The filesystem under ``data/content`` unless an ``s3`` section names a bucket."""
    if not s3:
        return FilesystemBlobs(data / "content")
    from dockyard.registry.s3 import S3Blobs, S3Settings

    blobs = S3Blobs(S3Settings(**s3), data / "staging")
    blobs.ensure_bucket()
    return blobs
