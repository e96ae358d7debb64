"""What both file log drivers' readers share (``jsonlog_reader``, ``locallog_reader``): the
record and position ``daemon/containers/logs.py`` gets from either, and ``follow`` across
rotations. The formats differ; finding the files, following a rotation and catching up on
the files rotated while a follower lagged do not, so those take the format as a parameter.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import struct
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable, Iterator

from dockyard.shim.logcompress import compressed_size, gzip_extra_last_time


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC3339(Nano) timestamp."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    frac_ns = 0
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        frac_ns = int(text[dot + 1:end].ljust(9, "0")[:9])
        text = text[:dot] + text[end:]
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000 + frac_ns


@dataclass(frozen=True)
class LogRecord:
    stream: str  # "stdout" or "stderr"
    data: bytes
    time: str  # RFC3339Nano as written
    time_ns: int
    attrs: tuple[tuple[str, str], ...] = ()  # log-opts tag/labels/env, for ``logs --details``


@dataclass(frozen=True)
class LogPosition:
    """Where a read stopped in the current file, so ``follow`` continues without gap or repeat."""
    inode: int
    offset: int


@dataclass(frozen=True)
class LogFormat:
    """How one driver's files are read, for the format-independent ``follow``."""
    # the records of the complete entries at the start of a buffer, and the bytes they take
    parse: Callable[[bytes], tuple[list[LogRecord], int]]
    # every record of an open file or gzip stream
    records: Callable[[BinaryIO], Iterator[LogRecord]]
    # the records of an open plain file's first ``end`` bytes, last first
    backwards: Callable[[BinaryIO, int], Iterator[LogRecord]]
    # the time of the last record in the first ``size`` bytes of an open plain file
    last_time_ns: Callable[[BinaryIO, int], int | None]
    # how much ``follow`` reads at a time (-1: all there is)
    read_size: int
    # max-file 1 truncates the file in place (json-file) rather than unlinking it (local)
    truncates: bool


def batches(records: Iterable[LogRecord], size: int = 1000) -> Iterator[list[LogRecord]]:
    """``records`` in lists of ``size``."""
    it = iter(records)
    while batch := list(itertools.islice(it, size)):
        yield batch


def cut_at_until(batch: list[LogRecord], until_ns: int | None) -> tuple[list[LogRecord], bool]:
    """The records of ``batch`` up to ``until``, and whether one was past it (follow ends)."""
    if until_ns is None or not batch or batch[-1].time_ns <= until_ns:
        return batch, False
    return [r for r in itertools.takewhile(lambda r: r.time_ns <= until_ns, batch)], True


def last_records(fmt: LogFormat, sources: Iterable[tuple[BinaryIO, bool, int | None]], tail: int,
                 keep: Callable[[LogRecord], bool]) -> list[LogRecord]:
    """The last ``tail`` records ``keep`` takes (``docker logs --tail``), oldest first, from
    open files newest first, each with whether it is gzipped and where it ends (None: its size).
    Plain files are read backwards; there is no way back through a gzip stream, so there the
    last ones going forward."""
    found: list[LogRecord] = []
    for f, gz, end in sources:
        need = tail - len(found)
        if need <= 0:
            break
        if gz:
            found.extend(reversed(deque(filter(keep, fmt.records(f)), maxlen=need)))
            continue
        for rec in fmt.backwards(f, os.fstat(f.fileno()).st_size if end is None else end):
            if keep(rec):
                found.append(rec)
                if len(found) >= tail:
                    break
    found.reverse()
    return found


def _is_compressed_copy(gz: Path, size: int, last_ns: int) -> bool:
    """Whether ``gz`` is the compressed copy of a file of ``size`` bytes ending with a record
    of ``last_ns``: gzip's trailer holds the size (mod 2**32), dockerd's header the last time
    (rotated files are often the same size)."""
    try:
        last = gzip_extra_last_time(gz)
        return compressed_size(gz) == size & 0xFFFFFFFF and last is not None \
            and parse_time(last) == last_ns
    except (OSError, ValueError, struct.error):
        return False


def _rotated_after(fmt: LogFormat, path: Path, old: BinaryIO, size: int) -> list[BinaryIO]:
    """The files rotated after ``old`` (the former current file, read to its end ``size``) while
    a follower was still reading it, opened, oldest first: without them ``follow`` would skip
    from ``old`` to the new current file. Found by walking ``<log>.1``, ``<log>.2``, ... until
    ``old`` itself (its inode, or once compressed its size and last time)."""
    last_ns = fmt.last_time_ns(old, size)
    if last_ns is None:
        return []  # an empty file is never rotated: nothing came between
    inode = os.fstat(old.fileno()).st_ino
    newer: list[BinaryIO] = []
    index = 1
    while True:
        plain = Path(f"{path}.{index}")
        try:
            f: BinaryIO = open(plain, "rb")
            if os.fstat(f.fileno()).st_ino == inode:
                f.close()
                break
        except FileNotFoundError:
            gz = Path(f"{plain}.gz")
            if _is_compressed_copy(gz, size, last_ns):
                break
            try:
                f = gzip.open(gz, "rb")  # type: ignore[assignment]
            except FileNotFoundError:
                break  # no more rotated files: the old one was rotated out entirely
        newer.append(f)
        index += 1
    newer.reverse()
    return newer


async def follow(fmt: LogFormat, path: Path, position: LogPosition, stop: Callable[[], bool],
                 until_ns: int | None = None, poll_interval: float = 0.1) -> AsyncIterator[list[LogRecord]]:
    """Records appended after ``position`` (``docker logs -f``), across rotations, until ``stop()``
    says the container is gone and everything written has been read, or a record is past ``until``;
    in batches of what one read found, so a caller can send them together."""
    offset, inode = position.offset, position.inode
    buf = b""
    f = None
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    f = None
                if f is not None:
                    st = os.fstat(f.fileno())
                    if st.st_ino != inode:
                        inode, offset, buf = st.st_ino, 0, b""
                    f.seek(offset)
            stopping = stop()  # sample before reading: what was written before the stop is read
            chunk = f.read(fmt.read_size) if f is not None else b""
            if chunk:
                offset += len(chunk)
                buf += chunk
                records, used = fmt.parse(buf)
                buf = buf[used:]
                batch, past_until = cut_at_until(records, until_ns)
                if batch:
                    yield batch
                if past_until:
                    return
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                # unlinked: by a rotation with max-file 1 (not yet made again), unless that
                # truncates in place
                rotated = f is not None and not fmt.truncates
            if rotated and f is not None:
                # the old file is complete: on to the new current file, through any rotated
                # in between while this follower lagged (dockerd's follow skips those)
                missed = _rotated_after(fmt, path, f, offset)
                f.close()
                f = None
                try:
                    for rotated_file in missed:
                        for batch in batches(fmt.records(rotated_file)):
                            batch, past_until = cut_at_until(batch, until_ns)
                            if batch:
                                yield batch
                            if past_until:
                                return
                finally:
                    for rotated_file in missed:
                        rotated_file.close()
                continue
            if fmt.truncates and f is not None and os.fstat(f.fileno()).st_size < offset:
                offset, buf = 0, b""  # truncated in place (max-file 1): start over
                f.seek(0)
                continue
            if stopping:
                return
            await asyncio.sleep(poll_interval)
    finally:
        if f is not None:
            f.close()
