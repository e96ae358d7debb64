"""Writing a tar as a stream of chunks, one entry at a time, never the whole in memory.

Used by ``save`` (docker-archive out) and ``mkimage``: each entry's size is known up
front (from the content store or the file), so a header, the data and the padding can
be yielded as they are read.
"""

from __future__ import annotations

import tarfile
from typing import Iterable, Iterator

BLOCK = 512
CHUNK = 1 << 20


def _header(name: str, size: int, type: bytes, mode: int, mtime: int, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = type
    info.mode = mode
    info.mtime = mtime
    info.linkname = linkname
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.PAX_FORMAT)


def directory(name: str, mtime: int = 0) -> bytes:
    return _header(name.rstrip("/") + "/", 0, tarfile.DIRTYPE, 0o755, mtime)


def file_bytes(name: str, data: bytes, mtime: int = 0) -> Iterator[bytes]:
    yield _header(name, len(data), tarfile.REGTYPE, 0o644, mtime)
    yield data
    if len(data) % BLOCK:
        yield b"\0" * (BLOCK - len(data) % BLOCK)


def file_chunks(name: str, size: int, chunks: Iterable[bytes], mtime: int = 0) -> Iterator[bytes]:
    """An entry whose data comes in chunks; refuses to write a tar whose header would lie."""
    yield _header(name, size, tarfile.REGTYPE, 0o644, mtime)
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > size:
            raise OSError(f"{name}: source grew beyond {size} bytes while it was being written")
        yield chunk
    if written != size:
        raise OSError(f"{name}: source gave {written} of {size} bytes")
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def end() -> bytes:
    return b"\0" * (2 * BLOCK)
