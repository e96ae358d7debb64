"""Reading ``local`` driver logs for ``docker logs``: since/until/tail filtering and follow.

The format and the writer (in the shim) are in ``dockyard.shim.locallog``. Files are read
oldest first: ``<log>.N-1`` ... ``<log>.1`` then ``<log>``, each rotated one either plain or
gzipped (``.gz``; the plain one is preferred: it exists while its compression is under way).
The records, positions and ``follow`` are ``logread``'s, as ``jsonlog_reader``'s, so
``daemon/containers/logs.py`` treats both drivers alike.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable, Iterator

from dockyard.shim import logread
from dockyard.shim.jsonlog import format_time
from dockyard.shim.logread import LogPosition, LogRecord, parse_time
from dockyard.shim.locallog import FRAME_LEN, MAX_ENTRY, LogEntry, decode_entry, encode_attrs
from dockyard.shim.logcompress import gzip_extra_last_time

_LEN = struct.Struct(">I")
_CHUNK = 1 << 20


def _record(entry: LogEntry) -> LogRecord:
    line = entry.line + b"\n" if entry.ends_line else entry.line
    return LogRecord(stream=entry.source or "stdout", data=line, time=format_time(entry.time_ns),
                     time_ns=entry.time_ns, attrs=entry.attrs)


def parse_records(buf: bytes | bytearray, start: int = 0) -> tuple[list[LogRecord], int]:
    """The records of the complete entries in ``buf[start:]`` and the offset after the last one.
    Stops at a torn entry (the writer is mid-write) or at bytes that are not a frame (a damaged
    file: what follows cannot be trusted, dockerd stops there too).

    The usual entry, as our writer and dockerd's lay it out, is decoded in place: source (6
    bytes), time (a 9-byte varint until 2255), line. Consecutive entries of one write share
    source and time, so those are decoded once per run of them. Any other entry goes through
    the general protobuf decoder. Attrs (log-opts tag/labels/env) end every entry with the same
    bytes: once the general decoder has seen them, they are recognised in place too."""
    records: list[LogRecord] = []
    append = records.append
    unpack = _LEN.unpack_from
    pos, end = start, len(buf)
    key = b""
    source, time_ns, stamp = "", 0, ""
    attrs_blob, attrs = b"", ()
    while pos + 2 * FRAME_LEN <= end:
        (size,) = unpack(buf, pos)
        stop = pos + FRAME_LEN + size + FRAME_LEN
        if size > MAX_ENTRY or stop > end or unpack(buf, stop - FRAME_LEN)[0] != size:
            break
        b, line_end = pos + FRAME_LEN, stop - FRAME_LEN
        if size > 20 and buf[b] == 0x0A and buf[b + 1] == 6 and buf[b + 8] == 0x10 \
                and buf[b + 18] == 0x1A:
            head = bytes(buf[b + 2:b + 18])
            if head != key and buf[b + 17] < 0x80 and min(buf[b + 9:b + 17]) >= 0x80:
                key, source = head, head[:6].decode()
                time_ns = sum((byte & 0x7F) << (7 * i) for i, byte in enumerate(head[7:16]))
                stamp = format_time(time_ns)
            if head == key:
                length, q = buf[b + 19], b + 20
                if length >= 0x80 and buf[b + 20] < 0x80:
                    length, q = (length & 0x7F) | (buf[b + 20] << 7), b + 21
                extra = line_end - q - length
                if extra == 0 or (extra == len(attrs_blob) and buf[line_end - extra:line_end] == attrs_blob):
                    append(LogRecord(source, bytes(buf[q:q + length]) + b"\n", stamp, time_ns,
                                     attrs if extra else ()))
                    pos = stop
                    continue
        try:
            entry = decode_entry(bytes(buf[b:line_end]))
        except ValueError:
            break
        append(_record(entry))
        if entry.attrs and entry.attrs != attrs:
            attrs_blob, attrs = encode_attrs(entry.attrs), entry.attrs
        pos = stop
    return records, pos


def _records_forward(f: BinaryIO, end: int | None = None) -> Iterator[LogRecord]:
    """Every record of an open file (or gzip stream) up to ``end`` bytes (None: to EOF)."""
    buf = b""
    left = end
    while left is None or left > 0:
        chunk = f.read(_CHUNK if left is None else min(_CHUNK, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        buf += chunk
        records, used = parse_records(buf)
        yield from records
        buf = buf[used:]
        if len(buf) > MAX_ENTRY + 2 * FRAME_LEN:
            return  # not a frame and never will be: a damaged file ends here


def _entries_backwards(fd: int, end: int) -> Iterator[LogEntry]:
    """Entries of a plain file before ``end``, last first, by their length suffixes."""
    pos = end
    while pos >= 2 * FRAME_LEN:
        (size,) = _LEN.unpack(os.pread(fd, FRAME_LEN, pos - FRAME_LEN))
        start = pos - 2 * FRAME_LEN - size
        if size > MAX_ENTRY or start < 0:
            return
        frame = os.pread(fd, size + FRAME_LEN, start)
        if len(frame) != size + FRAME_LEN or _LEN.unpack_from(frame)[0] != size:
            return
        try:
            yield decode_entry(frame[FRAME_LEN:])
        except ValueError:
            return
        pos = start


def _frame_ends_at(data: bytes, p: int) -> bool:
    """Whether a valid frame ends at ``data[p]`` (length prefix and suffix agree, entry decodes)."""
    if p < 2 * FRAME_LEN:
        return False
    (size,) = _LEN.unpack_from(data, p - FRAME_LEN)
    start = p - 2 * FRAME_LEN - size
    if size > MAX_ENTRY or start < 0 or _LEN.unpack_from(data, start)[0] != size:
        return False
    try:
        decode_entry(data[start + FRAME_LEN:p - FRAME_LEN])
    except ValueError:
        return False
    return True


def complete_end(fd: int, end: int) -> int:
    """The end of the last complete entry at or before ``end``: a reader can catch the writer
    mid-write, and ``follow`` must continue from a frame boundary. Usually ``end`` itself; else
    the nearest earlier offset where a frame ends (searched in the last MAX_ENTRY bytes)."""
    base = max(0, end - MAX_ENTRY - 2 * FRAME_LEN)
    data = os.pread(fd, end - base, base)
    for p in range(len(data), 0, -1):
        if _frame_ends_at(data, p):
            return base + p
    return base


def _open_rotated(path: Path, index: int, since_ns: int) -> tuple[BinaryIO, bool] | None:
    """``<log>.<index>`` open for reading (plain preferred) and whether it is gzipped; None if
    neither exists or the gzipped one ends before ``since``."""
    try:
        return open(f"{path}.{index}", "rb"), False
    except FileNotFoundError:
        pass
    gz = Path(f"{path}.{index}.gz")
    try:
        last = gzip_extra_last_time(gz)
        if since_ns and last and parse_time(last) < since_ns:
            return None
        return gzip.open(gz, "rb"), True
    except (FileNotFoundError, ValueError):
        return None


def read_logs(path: Path, max_files: int = 5, since_ns: int = 0, until_ns: int | None = None,
              tail: int | None = None) -> tuple[Iterable[LogRecord], LogPosition]:
    """The records of ``docker logs`` (``--since``, ``--until``, ``--tail``), oldest first, and the
    position where ``follow`` must continue. ``tail`` None means all, read lazily; 0 means none."""
    try:
        current = open(path, "rb")
    except FileNotFoundError:
        return [], LogPosition(0, 0)
    st = os.fstat(current.fileno())
    position = LogPosition(st.st_ino, complete_end(current.fileno(), st.st_size))
    # opened now, newest first: a rotation while the caller reads cannot shift the files under it
    rotated = [opened for i in range(1, max(1, max_files))
               if (opened := _open_rotated(path, i, since_ns)) is not None]

    def keep(rec: LogRecord) -> bool:
        return rec.time_ns >= since_ns and (until_ns is None or rec.time_ns <= until_ns)

    if tail is None:
        def forward() -> Iterator[LogRecord]:
            try:
                for f, _ in reversed(rotated):
                    yield from filter(keep, _records_forward(f))
                yield from filter(keep, _records_forward(current, position.offset))
            finally:
                for f, _ in rotated:
                    f.close()
                current.close()
        return forward(), position

    try:
        sources: list[tuple[BinaryIO, bool, int | None]] = [(current, False, position.offset)]
        sources += [(f, gz, None) for f, gz in rotated]
        return logread.last_records(_FORMAT, sources, tail, keep), position
    finally:
        for f, _ in rotated:
            f.close()
        current.close()


def _records_backwards(f: BinaryIO, end: int) -> Iterator[LogRecord]:
    return map(_record, _entries_backwards(f.fileno(), end))


def _last_time_ns(f: BinaryIO, size: int) -> int | None:
    last = next(_entries_backwards(f.fileno(), size), None)
    return None if last is None else last.time_ns


_FORMAT = logread.LogFormat(parse=parse_records, records=_records_forward, backwards=_records_backwards,
                            last_time_ns=_last_time_ns, read_size=_CHUNK, truncates=False)


def follow(path: Path, position: LogPosition, stop: Callable[[], bool], until_ns: int | None = None,
           poll_interval: float = 0.1) -> AsyncIterator[list[LogRecord]]:
    """``logread.follow`` for local logs (``docker logs -f``)."""
    return logread.follow(_FORMAT, path, position, stop, until_ns, poll_interval)
