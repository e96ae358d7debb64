"""Reading json-file logs for ``docker logs``: since/until/tail filtering and follow.

The format and the writer (in the shim) are in ``dockyard.shim.jsonlog``. Rotated
files are read oldest first (``<log>.N`` ... ``<log>.1``, ``<log>``), each plain or gzipped
(``.gz``, with ``compress=true``; the plain one is preferred: it exists while its compression
is under way).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import os
import re
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


# a record as the writer lays it out with nothing escaped but the newline: read without json
_PLAIN = re.compile(rb'\{"log":"([^"\\]*)(\\n)?","stream":"(stdout|stderr)"(?:,"attrs":(\{[^}]*\}))?'
                    rb',"time":"([^"\\]*)"\}')
_last_time: tuple[str, int] = ("", 0)  # the records of one write share their time: parse it once
_last_attrs: tuple[bytes, tuple[tuple[str, str], ...]] = (b"", ())  # every record has the same


def _time_ns(stamp: str) -> int:
    global _last_time
    if _last_time[0] != stamp:
        _last_time = (stamp, parse_time(stamp) if stamp else 0)
    return _last_time[1]


def _attrs(raw: bytes | None) -> tuple[tuple[str, str], ...]:
    global _last_attrs
    if not raw:
        return ()
    if _last_attrs[0] != raw:
        _last_attrs = (raw, tuple((str(k), str(v)) for k, v in json.loads(raw).items()))
    return _last_attrs[1]


def _decode_line(line: bytes) -> LogRecord | None:
    plain = _PLAIN.fullmatch(line)
    if plain is not None:
        text, newline, stream, attrs, stamp = plain.groups()
        stamp = stamp.decode()
        try:
            return LogRecord(stream=stream.decode(), data=text + b"\n" if newline else text,
                             time=stamp, time_ns=_time_ns(stamp), attrs=_attrs(attrs))
        except ValueError:
            return None
    try:
        obj = json.loads(line)
        stamp = obj.get("time", "")
        return LogRecord(stream=obj.get("stream", "stdout"), data=obj.get("log", "").encode(),
                         time=stamp, time_ns=_time_ns(stamp),
                         attrs=tuple((str(k), str(v)) for k, v in (obj.get("attrs") or {}).items()))
    except (ValueError, AttributeError):
        return None  # a torn or foreign line: dockerd skips those too


def _lines_backwards(path: Path, end: int) -> Iterator[bytes]:
    """Complete lines of ``path[:end]``, last first, reading from the end."""
    with open(path, "rb") as f:
        yield from _lines_backwards_fd(f, end, 65536)


def _lines_forward(files: list[tuple[BinaryIO, int | None]]) -> Iterator[bytes]:
    """Complete lines of already opened files, each read up to its end offset (None: to EOF),
    a line at a time so a large log is never held in memory; closes them."""
    try:
        for f, end in files:
            consumed = 0
            for line in f:
                consumed += len(line)
                if end is not None and consumed > end:
                    break
                if line.endswith(b"\n") and len(line) > 1:
                    yield line[:-1]
    finally:
        for f, _ in files:
            f.close()


def log_files(path: Path, max_files: int = 1) -> list[Path]:
    """The rotated files then the current one, oldest first, those that exist (a rotated one
    plain if it is, else gzipped)."""
    found = []
    for i in range(max(1, max_files) - 1, 0, -1):
        plain, gz = Path(f"{path}.{i}"), Path(f"{path}.{i}.gz")
        if plain.exists():
            found.append(plain)
        elif gz.exists():
            found.append(gz)
    return found + ([path] if path.exists() else [])


def _open(p: Path) -> BinaryIO:
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")  # type: ignore[return-value]


def _ends_before(p: Path, since_ns: int) -> bool:
    """Whether a gzipped file's header says its last record is before ``since`` (skip it)."""
    if not since_ns or p.suffix != ".gz":
        return False
    try:
        last = gzip_extra_last_time(p)
        return last is not None and parse_time(last) < since_ns
    except (OSError, ValueError):
        return False


def read_logs(path: Path, max_files: int = 1, since_ns: int = 0, until_ns: int | None = None,
              tail: int | None = None) -> tuple[Iterable[LogRecord], LogPosition]:
    """The records of ``docker logs`` (``--since``, ``--until``, ``--tail``), oldest first, and the
    position where ``follow`` must continue. ``tail`` None means all, read lazily (iterate the
    records once, to the end or not); 0 means none."""
    try:
        st = os.stat(path)
        position = LogPosition(st.st_ino, st.st_size)
    except FileNotFoundError:
        position = LogPosition(0, 0)
    files = [p for p in log_files(path, max_files) if not _ends_before(p, since_ns)]

    def keep(rec: LogRecord | None) -> bool:
        return rec is not None and rec.time_ns >= since_ns and (until_ns is None or rec.time_ns <= until_ns)

    def end_of(p: Path) -> int | None:
        return position.offset if p == path else None

    if tail is None:
        # opened now: a rotation while the caller iterates cannot shift the files under it
        opened = [(_open(p), end_of(p)) for p in files]
        return (rec for rec in map(_decode_line, _lines_forward(opened)) if keep(rec)), position
    records = []
    for p in reversed(files):
        if len(records) >= tail:
            break
        if p.suffix == ".gz":  # no way back through a gzip stream: the last ones going forward
            need = tail - len(records)
            lines = _lines_forward([(_open(p), None)])
            records.extend(reversed(deque(filter(keep, map(_decode_line, lines)), maxlen=need)))
            continue
        end = end_of(p)
        for line in _lines_backwards(p, os.path.getsize(p) if end is None else end):
            if len(records) >= tail:
                break
            rec = _decode_line(line)
            if keep(rec):
                records.append(rec)
    records.reverse()
    return records, position


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


def _last_record_time(f: BinaryIO, size: int) -> str | None:
    """The time of the last record in the first ``size`` bytes of an open plain file."""
    for line in _lines_backwards_fd(f, size):
        rec = _decode_line(line)
        if rec is not None:
            return rec.time
    return None


def _lines_backwards_fd(f: BinaryIO, end: int, block: int = 4096) -> Iterator[bytes]:
    """Complete lines of an open file's first ``end`` bytes, last first."""
    pos, carry = end, b""
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(f.fileno(), pos - start, start) + carry
        pos = start
        lines = chunk.split(b"\n")
        carry = lines.pop(0)
        yield from (line for line in reversed(lines) if line)
    if carry:
        yield carry


def _rotated_after(path: Path, old: BinaryIO, size: int) -> list[BinaryIO]:
    """The files rotated after ``old`` (the former current file, still open, ``size`` bytes)
    while a follower was still reading it, opened, oldest first: ``<log>.1``, ``<log>.2``, ...
    until ``old`` itself (by its inode, or once gzipped by the size its trailer records and the
    lastTime its header records: rotated files are often the same size)."""
    inode = os.fstat(old.fileno()).st_ino
    last = _last_record_time(old, size)
    newer: list[BinaryIO] = []
    index = 1
    while True:
        try:
            f: BinaryIO = open(f"{path}.{index}", "rb")
            if os.fstat(f.fileno()).st_ino == inode:
                f.close()
                break
        except FileNotFoundError:
            gz = Path(f"{path}.{index}.gz")
            try:
                if compressed_size(gz) == size & 0xFFFFFFFF and gzip_extra_last_time(gz) == last:
                    break
                f = _open(gz)
            except (FileNotFoundError, OSError):
                break  # no more: the old file was rotated out entirely
        newer.append(f)
        index += 1
    newer.reverse()
    return newer


async def follow(path: Path, position: LogPosition, stop: Callable[[], bool],
                 until_ns: int | None = None, poll_interval: float = 0.1) -> AsyncIterator[list[LogRecord]]:
    """Records appended after ``position`` (``docker logs -f``), across rotations, until ``stop()``
    says the container is gone and everything written has been read, or a record is past ``until``;
    in batches of what one read found, so a caller can send them together."""
    offset, inode = position.offset, position.inode
    carry = b""
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
                        inode, offset, carry = st.st_ino, 0, b""
                    f.seek(offset)
            stopping = stop()  # sample before reading: what was written before the stop is read
            chunk = f.read() if f is not None else b""
            if chunk:
                offset += len(chunk)
                lines = (carry + chunk).split(b"\n")
                carry = lines.pop()
                decoded = [r for r in map(_decode_line, lines) if r is not None]
                batch, past_until = cut_at_until(decoded, until_ns)
                if batch:
                    yield batch
                if past_until:
                    return
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = False
            if rotated and f is not None:
                # the old file is complete: on to the new current file, through any rotated in
                # between while this follower lagged (dockerd's follow skips those)
                missed = _rotated_after(path, f, offset)
                f.close()
                f = None
                try:
                    records = (r for r in map(_decode_line, _lines_forward([(m, None) for m in missed]))
                               if r is not None)
                    for batch in batches(records):
                        batch, past_until = cut_at_until(batch, until_ns)
                        if batch:
                            yield batch
                        if past_until:
                            return
                finally:
                    for m in missed:
                        m.close()
                continue
            if f is not None and os.fstat(f.fileno()).st_size < offset:
                offset, carry = 0, b""  # truncated in place (max-file 1): start over
                f.seek(0)
                continue
            if stopping:
                return
            await asyncio.sleep(poll_interval)
    finally:
        if f is not None:
            f.close()
