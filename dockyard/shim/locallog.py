"""Docker's ``local`` log driver: the file format and the writer (in the shim).

Each entry is framed as dockerd's ``daemon/logger/local`` frames it, so the files have the
same shape::

    [uint32 big-endian n][n bytes: protobuf LogEntry][uint32 big-endian n]

The length after the entry lets a reader walk the file backwards (``--tail``) without an
index. ``LogEntry`` (moby ``api/types/plugins/logdriver/entry.proto``)::

    1 source string ("stdout"/"stderr")    2 time_nano int64    3 line bytes (no newline)
    4 partial bool                          5 partial_log_metadata {1 last bool, 2 id string,
                                                                    3 ordinal int32}
    6 attrs repeated {1 key string, 2 value string}  (log-opts tag/labels/env, every entry)

A line longer than ``PARTIAL_LIMIT`` is written in pieces sharing one id and the first
piece's time (ordinal 1, 2, ...; the piece that ends the line has ``last``). Output that ends
without a newline ends with a partial piece that is not last, as dockerd's copier writes it.
A reader adds the newline to every entry that is not partial or is last, as dockerd does.

Rotation (``max-size``/``max-file``, default 20 MB x 5): when the current file has reached
``max_size``, ``<log>.N-1`` is dropped, ``<log>.i`` becomes ``<log>.i+1``, ``<log>`` becomes
``<log>.1`` and a new ``<log>`` is started (with one file, the old one is unlinked: a reader
keeps its inode). With ``compress`` (the default) ``<log>.1`` becomes ``<log>.1.gz``
in a child process (``dockyard.shim.logcompress``, shared with json-file). Reading:
``dockyard.shim.locallog_reader``.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard.shim.jsonlog import PARTIAL_LIMIT, format_time
from dockyard.shim.logrotate import RotatingLogFile

DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 5
FRAME_LEN = 4  # bytes of each length prefix and suffix
MAX_ENTRY = 1_000_000  # dockerd refuses to decode an entry larger than this
_LEN = struct.Struct(">I")


# ---- the entry (protobuf, by hand: five fields do not justify a protobuf dependency) ----

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf encodes it: two's complement in 10 bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


@dataclass(frozen=True)
class LogEntry:
    source: str
    time_ns: int
    line: bytes
    partial: bool = False
    partial_last: bool = False
    partial_id: str = ""
    partial_ordinal: int = 0
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def ends_line(self) -> bool:
        """Whether a reader adds the newline (dockerd: not partial, or the last piece)."""
        return not self.partial or self.partial_last


def encode_attrs(attrs: tuple[tuple[str, str], ...]) -> bytes:
    """Field 6 of every entry: the attrs in the order given (moby sorts them by key, value);
    an empty key or value left out, as proto3 does."""
    return b"".join(_field(0x32, (_field(0x0A, k.encode()) if k else b"")
                           + (_field(0x12, v.encode()) if v else b""))
                    for k, v in attrs)


def encode_entry(entry: LogEntry) -> bytes:
    """One framed entry; proto3 leaves out fields at their default value, as gogo-proto does."""
    body = bytearray()
    if entry.source:
        body += _field(0x0A, entry.source.encode())
    if entry.time_ns:
        body += b"\x10" + _varint(entry.time_ns)
    if entry.line:
        body += _field(0x1A, entry.line)
    if entry.partial:
        body += b"\x20\x01"
        meta = bytearray()
        if entry.partial_last:
            meta += b"\x08\x01"
        if entry.partial_id:
            meta += _field(0x12, entry.partial_id.encode())
        if entry.partial_ordinal:
            meta += b"\x18" + _varint(entry.partial_ordinal)
        body += _field(0x2A, bytes(meta))
    body += encode_attrs(entry.attrs)
    size = _LEN.pack(len(body))
    return size + body + size


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, value) of a protobuf message: ints for varints, bytes for the rest."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise ValueError("field runs past the entry")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def decode_entry(body: bytes) -> LogEntry:
    """A ``LogEntry`` from its protobuf bytes (fields we do not know are skipped); raises
    ValueError on bytes that are not one."""
    source, time_ns, line, partial = "", 0, b"", False
    last, pid, ordinal = False, "", 0
    attrs: list[tuple[str, str]] = []
    try:
        for number, value in _fields(body):
            if number == 1:
                source = bytes(value).decode("utf-8", "replace")
            elif number == 2:
                time_ns = value - (1 << 64) if value >= 1 << 63 else value
            elif number == 3:
                line = bytes(value)
            elif number == 4:
                partial = bool(value)
            elif number == 5:
                for sub, subvalue in _fields(bytes(value)):
                    if sub == 1:
                        last = bool(subvalue)
                    elif sub == 2:
                        pid = bytes(subvalue).decode("utf-8", "replace")
                    elif sub == 3:
                        ordinal = subvalue
            elif number == 6:
                pair = dict(_fields(bytes(value)))
                attrs.append((bytes(pair.get(1, b"")).decode("utf-8", "replace"),
                              bytes(pair.get(2, b"")).decode("utf-8", "replace")))
    except (IndexError, TypeError) as e:
        raise ValueError(f"not a log entry: {e}") from None
    return LogEntry(source, time_ns, line, partial, last, pid, ordinal, tuple(attrs))


# ---- writing (in the shim) ---------------------------------------------------------------

class _Partial:
    """A line being written in pieces on one stream."""

    __slots__ = ("id", "ordinal", "time_ns")

    def __init__(self, time_ns: int) -> None:
        self.id = os.urandom(32).hex()  # dockerd's copier: a random 64-hex id per long line
        self.ordinal = 0
        self.time_ns = time_ns  # every piece carries the first piece's time, as dockerd's copier


class LocalLogWriter(RotatingLogFile):
    """Appends entries for one container; not thread-safe (the shim is single-threaded).
    Same interface as ``JsonLogWriter``: ``write``, ``end_stream``, ``close``."""

    def __init__(self, path: Path, max_size: int | None = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, compress: bool = True,
                 attrs: tuple[tuple[str, str], ...] = ()) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(path, max_size, max_files, compress, truncates=False)
        self._buffered: dict[str, bytes] = {}  # the start of a line not yet ended, per stream
        self._partials: dict[str, _Partial] = {}
        # the time of the file's last entry, for the gzip header once it rotates (a file from an
        # earlier start of the container has one already)
        self._last_time_ns = self._last_entry_time() if self._size else 0
        self.attrs = attrs
        self._attrs = encode_attrs(attrs)  # the same bytes end every entry

    def _last_entry_time(self) -> int:
        """By the last entry's length suffix; if that is torn or foreign, now: no earlier than
        any entry in the file, so a reader's --since never skips the file wrongly."""
        try:
            (size,) = _LEN.unpack(os.pread(self._fd, FRAME_LEN, self._size - FRAME_LEN))
            if size > min(MAX_ENTRY, self._size - 2 * FRAME_LEN):
                raise ValueError("not a frame")
            return decode_entry(os.pread(self._fd, size, self._size - FRAME_LEN - size)).time_ns
        except (OSError, ValueError, struct.error):
            return time.time_ns()

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` read from ``stream`` ("stdout"/"stderr"): whole lines now, the rest later."""
        now = time.time_ns()
        buf = self._buffered.pop(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if stream in self._partials and lines:
            frames = [self._entry(stream, lines.pop(0), now, ends=True)]
        else:
            frames = []
        # the common case, whole lines: the entry's source and time are the same for all
        head = _field(0x0A, stream.encode()) + b"\x10" + _varint(now)
        pack = _LEN.pack
        attrs = self._attrs
        for line in lines:
            body = (head + b"\x1a" + _varint(len(line)) + line if line else head) + attrs
            size = pack(len(body))
            frames.append((now, size + body + size))
        while len(rest) >= PARTIAL_LIMIT:
            frames.append(self._entry(stream, rest[:PARTIAL_LIMIT], now, ends=False))
            rest = rest[PARTIAL_LIMIT:]
        if rest:
            self._buffered[stream] = rest
        self._emit(frames)

    def end_stream(self, stream: str) -> None:
        """The stream is closed: what is left is a piece of a line that never ended (partial, not
        last, so ``docker logs`` prints it without a newline, as dockerd's)."""
        rest = self._buffered.pop(stream, b"")
        if rest:
            self._emit([self._entry(stream, rest, time.time_ns(), ends=False)])
        self._partials.pop(stream, None)

    def close(self) -> None:
        """Flush and close; a compression under way finishes on its own (the shim reaps it)."""
        for stream in list(self._buffered):
            self.end_stream(stream)
        super().close()

    def _entry(self, stream: str, line: bytes, now: int, ends: bool) -> tuple[int, bytes]:
        partial = self._partials.get(stream)
        if partial is None and ends:
            return now, encode_entry(LogEntry(stream, now, line, attrs=self.attrs))
        if partial is None:
            partial = self._partials[stream] = _Partial(now)
        partial.ordinal += 1
        if ends:
            del self._partials[stream]
        return partial.time_ns, encode_entry(LogEntry(stream, partial.time_ns, line, True, ends,
                                                      partial.id, partial.ordinal, self.attrs))

    def _emit(self, frames: list[tuple[int, bytes]]) -> None:
        batch: list[bytes] = []
        batch_size = 0
        for time_ns, frame in frames:
            # dockerd rotates before writing an entry once the file has reached max-size
            if self.max_size and self._size + batch_size >= self.max_size:
                self._write_all(b"".join(batch))
                batch, batch_size = [], 0
                self._rotate(format_time(self._last_time_ns))
            batch.append(frame)
            batch_size += len(frame)
            self._last_time_ns = time_ns
        if batch:
            self._write_all(b"".join(batch))
