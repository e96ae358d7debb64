"""gzip for pushed layers, compressed in parallel blocks (pigz's scheme).

The diff is cut into 1 MiB blocks; each is deflated on its own worker thread (zlib releases
the GIL) with the previous block's last 32 KiB as dictionary, ended by a sync flush so the
pieces join into one valid deflate stream, framed as a single gzip member (header, blocks,
CRC-32, size). A block whose sample does not shrink (already compressed or random data) is
stored instead of deflated, which costs nothing and loses nothing. The output depends only
on the input, so the same layer always gets the same digest.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator

BLOCK = 1 << 20
_WINDOW = 32 << 10
_SAMPLE = 64 << 10
_LEVEL = 1  # on a LAN, compression speed bounds a push; the ratio costs little
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0, OS unknown

_WORKERS = max(2, os.cpu_count() or 2)
_pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="gzip")


def _deflate(block: bytes, dictionary: bytes, last: bool) -> bytes:
    level = _LEVEL
    sample = block[:_SAMPLE]
    if len(sample) >= 4096 and len(zlib.compress(sample, 1)) > len(sample) * 0.97:
        level = 0  # incompressible: store it
    if dictionary:
        d = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    else:
        d = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    return d.compress(block) + d.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def gzip_stream(source: BinaryIO, on_read: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The gzip of everything ``source`` yields; ``on_read(n)`` is told of each block consumed."""
    yield _HEADER
    crc = 0
    size = 0
    pending: deque[Future] = deque()
    previous = b""
    block = source.read(BLOCK)
    while True:
        following = source.read(BLOCK) if block else b""
        last = not following
        pending.append(_pool.submit(_deflate, block, previous[-_WINDOW:], last))
        crc = zlib.crc32(block, crc)
        size += len(block)
        if on_read is not None and block:
            on_read(len(block))
        previous, block = block, following
        while pending and (len(pending) > 2 * _WORKERS or last):
            yield pending.popleft().result()
        if last:
            break
    yield crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
