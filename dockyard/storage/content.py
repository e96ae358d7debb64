"""Content-addressed blob store (containerd's local content store is the model).

Layout under ``root``::

    blobs/sha256/<hex>           committed blobs, immutable, named by the sha256 of their bytes
    ingest/<random>              in-flight writes; anything here at start-up is garbage
    ingest/partial-sha256-<hex>  a download of a known blob, kept across restarts to resume

A write streams into ``ingest/``, hashing as it goes, is fsynced, checked against
the expected size and digest, then renamed into ``blobs/`` and the directory is
fsynced: a crash at any instant leaves either no blob or a complete, verified one.

A partial download is only ever a prefix of what arrived (bytes are appended in order), so
a later writer can continue it: hashlib cannot save a hash state, so the kept prefix is
hashed again on resume, and the digest check at commit still covers every byte. Partial
files are never content (``has``/``list``/``open`` see only ``blobs/``); ``gc_ingest``
drops them once nobody resumed them for ``PARTIAL_MAX_AGE``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from dockyard import errdefs
from dockyard.storage.fsutil import fsync_dir, remove_tree

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20
_PARTIAL = "partial-sha256-"
PARTIAL_MAX_AGE = 24 * 3600.0  # a download nobody resumed within a day is garbage


@dataclass(frozen=True)
class Descriptor:
    digest: str  # "sha256:<hex>"
    size: int


def _check_digest(digest: str) -> str:
    """The hex part of a well-formed digest; anything else could name a path outside blobs/."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise errdefs.InvalidParameter(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest[len("sha256:"):]


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True)

    def gc_ingest(self, partial_max_age: float = PARTIAL_MAX_AGE) -> None:
        """At start-up: drop writes a crash interrupted (nobody is writing yet), except partial
        downloads younger than ``partial_max_age`` seconds (by their last write), which the next
        pull of the same blob resumes."""
        cutoff = time.time() - partial_max_age
        for entry in os.scandir(self._ingest):
            if entry.name.startswith(_PARTIAL) and _DIGEST_RE.fullmatch("sha256:" + entry.name[len(_PARTIAL):]):
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    continue
            remove_tree(entry.path)

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected_digest: str | None = None,
               expected_size: int | None = None) -> Descriptor:
        """Store bytes, a readable file object, or an iterable of byte chunks; return its descriptor.

        Raises errdefs.InvalidParameter (and leaves nothing in ingest/) when the size or
        digest differs from the expected one. Storing an existing blob is a cheap no-op
        apart from reading the input."""
        if expected_digest is not None:
            _check_digest(expected_digest)
        with self.writer() as w:
            if isinstance(data, (bytes, bytearray, memoryview)):
                chunks: Iterable[bytes] = [bytes(data)]
            elif hasattr(data, "read"):
                read = data.read  # type: ignore[union-attr]
                chunks = iter(lambda: read(_CHUNK), b"")
            else:
                chunks = data  # type: ignore[assignment]
            for chunk in chunks:
                w.write(chunk)
                if expected_size is not None and w.size > expected_size:
                    break  # stop reading an oversized input now; commit reports the mismatch
            return w.commit(expected_digest, expected_size)

    def writer(self) -> "BlobWriter":
        """A streaming writer for producers that push bytes (``write``), then ``commit``."""
        return BlobWriter(self)

    def resumable_writer(self, digest: str, expected_size: int | None = None) -> "BlobWriter":
        """A writer for the known blob ``digest`` that continues what an earlier one (maybe in a
        killed process) left in ``ingest/``: its ``size`` says where the download resumes
        (0 when there is nothing to resume). ``keep()`` leaves it for the next resume. When
        another writer holds that file, this one is private (a plain ``writer()``)."""
        path = self._ingest / (_PARTIAL + _check_digest(digest))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return BlobWriter(self)
            raise
        try:
            return BlobWriter(self, partial=(path, fd), expected_size=expected_size)
        except BaseException:
            os.close(fd)
            raise

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists). Validates the digest's form."""
        return self._blobs / _check_digest(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> Descriptor:
        """Raises errdefs.NotFound when absent."""
        try:
            return Descriptor(digest, self.path(digest).stat().st_size)
        except FileNotFoundError:
            raise errdefs.NotFound(f"content {digest}: not found") from None

    def open(self, digest: str) -> BinaryIO:
        """Open for reading; raises errdefs.NotFound when absent. The caller closes it."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise errdefs.NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        """Remove the blob; no error when it is already gone."""
        self.path(digest).unlink(missing_ok=True)

    def list(self) -> list[Descriptor]:
        out = []
        for entry in os.scandir(self._blobs):
            if _DIGEST_RE.fullmatch("sha256:" + entry.name) and entry.is_file(follow_symlinks=False):
                out.append(Descriptor("sha256:" + entry.name, entry.stat().st_size))
        return sorted(out, key=lambda d: d.digest)


class BlobWriter:
    """One in-flight blob in ``ingest/``: ``write`` chunks, then ``commit`` (or ``abort``).

    Use as a context manager: leaving the block without a commit removes the temp file."""

    def __init__(self, store: ContentStore, partial: tuple[Path, int] | None = None,
                 expected_size: int | None = None) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        self._resumable = partial is not None
        if partial is None:
            self._tmp = store._ingest / secrets.token_hex(16)
            self._file: BinaryIO | None = open(self._tmp, "xb")
            return
        # a locked partial download: hash the prefix already there and append after it
        self._tmp, fd = partial
        self._file = os.fdopen(fd, "r+b")
        if expected_size is not None and os.fstat(fd).st_size > expected_size:
            self._file.truncate(0)  # cannot be a prefix of this blob
        for chunk in iter(lambda: self._file.read(_CHUNK), b""):  # type: ignore[union-attr]
            self._hash.update(chunk)
            self._size += len(chunk)
        self.resumed_from = self._size

    resumed_from = 0  # bytes a resumable writer found already written

    @property
    def size(self) -> int:
        """Bytes written so far (including a resumed prefix)."""
        return self._size

    def reset(self) -> None:
        """Start again from byte 0 (the source cannot continue where this writer is)."""
        if self._file is None:
            raise errdefs.System("reset of a blob writer that was already committed or aborted")
        self._file.seek(0)
        self._file.truncate(0)
        self._hash = hashlib.sha256()
        self._size = 0

    def keep(self) -> None:
        """Stop writing but leave a resumable writer's bytes for a later resume; anything else
        is dropped as by ``abort``. A no-op after commit."""
        if not self._resumable or self._file is None or self._size == 0:
            self.abort()
            return
        self._file.close()  # also releases the lock
        self._file = None

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise errdefs.System("write to a blob writer that was already committed or aborted")
        self._hash.update(chunk)
        self._file.write(chunk)
        self._size += len(chunk)

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None) -> Descriptor:
        """Verify and move the blob into place. On a mismatch the temp file is removed and
        errdefs.InvalidParameter says what was expected and what arrived."""
        if self._file is None:
            raise errdefs.System("commit of a blob writer that was already committed or aborted")
        digest = "sha256:" + self._hash.hexdigest()
        try:
            if expected_size is not None and self._size != expected_size:
                got = f"more than {expected_size}" if self._size > expected_size else str(self._size)
                raise errdefs.InvalidParameter(
                    f"content size mismatch: expected {expected_size} bytes, got {got}"
                    + (f" (for {expected_digest})" if expected_digest else ""))
            if expected_digest is not None and digest != expected_digest:
                raise errdefs.InvalidParameter(
                    f"content digest mismatch: expected {expected_digest}, got {digest}")
            final = self._store.path(digest)
            if final.exists():
                self.abort()  # already committed by someone else: content addressing makes it equal
                return Descriptor(digest, self._size)
            self._file.flush()
            os.fsync(self._file.fileno())
            os.fchmod(self._file.fileno(), 0o444)
            os.rename(self._tmp, final)  # before close: a resumable writer holds its lock until then
            self._file.close()
            self._file = None
            fsync_dir(final.parent)
            return Descriptor(digest, self._size)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temp file; a no-op after commit or keep."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            self._tmp.unlink(missing_ok=True)  # before close, which releases a resumable writer's lock
        finally:
            file.close()

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
