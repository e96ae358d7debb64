"""Docker's ``local`` log driver: the file format and the writer (in the shim).

Each entry is framed as dockerd's ``daemon/logger/local`` frames it, so the files have the
same shape::

    [uint32 big-endian n][n bytes: protobuf LogEntry][uint32 big-endian n]

The length after the entry lets a reader walk the file backwards (``--tail``) without an
index. ``LogEntry`` (moby ``api/types/plugins/logdriver/entry.proto``)::

    1 source string ("stdout"/"stderr")    2 time_nano int64    3 line bytes (no newline)
    4 partial bool                          5 partial_log_metadata {1 last bool, 2 id string,
                                                                    3 ordinal int32}

A line longer than ``PARTIAL_LIMIT`` is written in pieces sharing one id and the first
piece's time (ordinal 1, 2, ...; the piece that ends the line has ``last``). Output that ends
without a newline ends with a partial piece that is not last, as dockerd's copier writes it.
A reader adds the newline to every entry that is not partial or is last, as dockerd does.

Rotation (``max-size``/``max-file``, default 20 MB x 5): when the current file has reached
``max_size``, ``<log>.N-1`` is dropped, ``<log>.i`` becomes ``<log>.i+1``, ``<log>`` becomes
``<log>.1`` and a new ``<log>`` is started (with one file, the old one is unlinked: a reader
keeps its inode). With ``compress`` (the default) a child process gzips ``<log>.1`` into
``<log>.1.gz`` (written to a temporary name, renamed, then ``<log>.1`` unlinked, so a reader
always finds one complete copy) with dockerd's header: the Extra field holds
``{"lastTime": <RFC3339Nano of the file's last entry>}`` so ``--since`` can skip whole files.
Compressing in a child keeps the shim's loop copying output; the next rotation waits for it,
as dockerd's does. Reading: ``dockyard.shim.locallog_reader``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

from dockyard.shim.jsonlog import PARTIAL_LIMIT, format_time

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

    @property
    def ends_line(self) -> bool:
        """Whether a reader adds the newline (dockerd: not partial, or the last piece)."""
        return not self.partial or self.partial_last


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
    """A ``LogEntry`` from its protobuf bytes (fields we do not know, e.g. attrs, are skipped);
    raises ValueError on bytes that are not one."""
    source, time_ns, line, partial = "", 0, b"", False
    last, pid, ordinal = False, "", 0
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
    except (IndexError, TypeError) as e:
        raise ValueError(f"not a log entry: {e}") from None
    return LogEntry(source, time_ns, line, partial, last, pid, ordinal)


# ---- gzip with dockerd's header --------------------------------------------------------------

def gzip_header(last_time_ns: int) -> bytes:
    """RFC 1952 header as Go's gzip writer makes it with only Extra set: FEXTRA, no name, no
    mtime, OS unknown (255); Extra is moby's rotateFileMetadata JSON."""
    extra = json.dumps({"lastTime": format_time(last_time_ns)}, separators=(",", ":")).encode()
    return b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", len(extra)) + extra


def gzip_extra_last_time(path: Path) -> str | None:
    """The ``lastTime`` a compressed log file's header records, or None."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:2] != b"\x1f\x8b" or not head[3] & 0x04:
            return None
        (size,) = struct.unpack("<H", head[10:12])
        try:
            return json.loads(f.read(size)).get("lastTime")
        except (ValueError, AttributeError):
            return None


def compress_file(source: Path, last_time_ns: int) -> None:
    """``<source>`` -> ``<source>.gz`` (temp name, fsync, rename), then ``<source>`` unlinked."""
    target = Path(f"{source}.gz")
    tmp = Path(f"{source}.gz.tmp")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)  # Go's default level
    crc = size = 0
    with open(source, "rb") as src, open(tmp, "wb") as out:
        os.fchmod(out.fileno(), 0o640)
        out.write(gzip_header(last_time_ns))
        while chunk := src.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            out.write(deflate.compress(chunk))
        out.write(deflate.flush())
        out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, target)
    os.unlink(source)


# ---- writing (in the shim) ---------------------------------------------------------------

class _Partial:
    """A line being written in pieces on one stream."""

    __slots__ = ("id", "ordinal", "time_ns")

    def __init__(self, time_ns: int) -> None:
        self.id = os.urandom(32).hex()  # dockerd's copier: a random 64-hex id per long line
        self.ordinal = 0
        self.time_ns = time_ns  # every piece carries the first piece's time, as dockerd's copier


class LocalLogWriter:
    """Appends entries for one container; not thread-safe (the shim is single-threaded).
    Same interface as ``JsonLogWriter``: ``write``, ``end_stream``, ``close``."""

    def __init__(self, path: Path, max_size: int | None = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, compress: bool = True) -> None:
        self.path = path
        self.max_size = max_size if max_size and max_size > 0 else None
        self.max_files = max(1, max_files)
        self.compress = compress and self.max_files > 1
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        st = os.fstat(self._fd)
        self._size = st.st_size
        self._buffered: dict[str, bytes] = {}  # the start of a line not yet ended, per stream
        self._partials: dict[str, _Partial] = {}
        # the time of the file's last entry, for the gzip header once it rotates (a file from an
        # earlier start of the container has one already)
        self._last_time_ns = self._last_entry_time() if st.st_size else 0
        self._compressor: int | None = None  # pidfd of the child gzipping <log>.1

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
        for line in lines:
            body = head + b"\x1a" + _varint(len(line)) + line if line else head
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
        os.close(self._fd)
        if self._compressor is not None:
            os.close(self._compressor)
            self._compressor = None

    def wait_compressed(self) -> None:
        """Block until the last rotation's compression is done (tests; the next rotation)."""
        if self._compressor is None:
            return
        poller = select.poll()  # a pidfd is readable once its process has exited
        poller.register(self._compressor, select.POLLIN)
        poller.poll()
        try:  # reap it if no one else has (in the shim, the SIGCHLD handler may be first)
            os.waitid(os.P_PIDFD, self._compressor, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            pass
        os.close(self._compressor)
        self._compressor = None

    def _entry(self, stream: str, line: bytes, now: int, ends: bool) -> tuple[int, bytes]:
        partial = self._partials.get(stream)
        if partial is None and ends:
            return now, encode_entry(LogEntry(stream, now, line))
        if partial is None:
            partial = self._partials[stream] = _Partial(now)
        partial.ordinal += 1
        if ends:
            del self._partials[stream]
        return partial.time_ns, encode_entry(LogEntry(stream, partial.time_ns, line, True, ends,
                                                      partial.id, partial.ordinal))

    def _emit(self, frames: list[tuple[int, bytes]]) -> None:
        batch: list[bytes] = []
        batch_size = 0
        for time_ns, frame in frames:
            # dockerd rotates before writing an entry once the file has reached max-size
            if self.max_size and self._size + batch_size >= self.max_size:
                self._write_all(b"".join(batch))
                batch, batch_size = [], 0
                self._rotate()
            batch.append(frame)
            batch_size += len(frame)
            self._last_time_ns = time_ns
        if batch:
            self._write_all(b"".join(batch))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._size += len(data)

    def _rotate(self) -> None:
        self.wait_compressed()
        os.close(self._fd)
        if self.max_files == 1:
            os.unlink(self.path)
        else:
            ext = ".gz" if self.compress else ""
            try:
                os.unlink(f"{self.path}.{self.max_files - 1}{ext}")
            except FileNotFoundError:
                pass
            for index in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{index - 1}{ext}", f"{self.path}.{index}{ext}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0
        if self.compress:
            self._start_compression(Path(f"{self.path}.1"))

    def _start_compression(self, source: Path) -> None:
        pid = os.fork()
        if pid == 0:  # the child: compress and leave, touching nothing of the shim's
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # the shim's fds (the container's stdin, its output pipes, the listener) must not
                # stay open here: an EOF the shim gives the container would wait for this child
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                compress_file(source, self._last_time_ns)
                code = 0
            except BaseException:
                traceback.print_exc()  # to shim.log; <log>.1 stays, readers still find it
            finally:
                os._exit(code)
        # a pidfd names this child even once it is reaped and its pid reused
        self._compressor = os.pidfd_open(pid)
