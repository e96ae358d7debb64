"""Content-addressed blob store (containerd's local content store is the model).

Layout under ``root``::

    blobs/sha256/<hex>   committed blobs, immutable, named by the sha256 of their bytes
    ingest/<random>      in-flight writes; anything here at start-up is garbage

A write streams into ``ingest/``, hashing as it goes, is fsynced, checked against
the expected size and digest, then renamed into ``blobs/`` and the directory is
fsynced: a crash at any instant leaves either no blob or a complete, verified one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable


@dataclass(frozen=True)
class Descriptor:
    digest: str  # "sha256:<hex>"
    size: int


class ContentStore:
    def __init__(self, root: Path) -> None:
        raise NotImplementedError

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected_digest: str | None = None,
               expected_size: int | None = None) -> Descriptor:
        """Store bytes, a readable file object, or an iterable of byte chunks; return its descriptor.

        Raises errdefs.InvalidParameter (and leaves nothing in ingest/) when the size or
        digest differs from the expected one. Storing an existing blob is a cheap no-op
        apart from reading the input."""
        raise NotImplementedError

    def writer(self) -> "BlobWriter":
        """A streaming writer for producers that push bytes (``write``), then ``commit``."""
        raise NotImplementedError

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists). Validates the digest's form."""
        raise NotImplementedError

    def has(self, digest: str) -> bool:
        raise NotImplementedError

    def info(self, digest: str) -> Descriptor:
        """Raises errdefs.NotFound when absent."""
        raise NotImplementedError

    def open(self, digest: str) -> BinaryIO:
        """Open for reading; raises errdefs.NotFound when absent. The caller closes it."""
        raise NotImplementedError

    def read_bytes(self, digest: str) -> bytes:
        raise NotImplementedError

    def delete(self, digest: str) -> None:
        """Remove the blob; no error when it is already gone."""
        raise NotImplementedError

    def list(self) -> list[Descriptor]:
        raise NotImplementedError


class BlobWriter:
    """One in-flight blob in ``ingest/``: ``write`` chunks, then ``commit`` (or ``abort``).

    Use as a context manager: leaving the block without a commit removes the temp file."""

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None) -> Descriptor:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
