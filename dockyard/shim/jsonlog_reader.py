"""Reading json-file logs for ``docker logs``: since/until/tail filtering and follow.

The format and the writer (in the shim) are in ``dockyard.shim.jsonlog``. Rotated
files are read oldest first (``<log>.N`` ... ``<log>.1``, ``<log>``), each plain or gzipped
(``.gz``, with ``compress=true``; the plain one is preferred: it exists while its compression
is under way).
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable, Iterator

from dockyard.shim import logread
from dockyard.shim.logcompress import gzip_extra_last_time
from dockyard.shim.logread import LogPosition, LogRecord, parse_time

__all__ = ["LogPosition", "LogRecord", "follow", "log_files", "parse_time", "read_logs"]


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

    def newest_first() -> Iterator[tuple[BinaryIO, bool, int | None]]:
        for p in reversed(files):
            with _open(p) as f:
                yield f, p.suffix == ".gz", end_of(p)

    return logread.last_records(_FORMAT, newest_first(), tail, keep), position


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


def _parse(buf: bytes) -> tuple[list[LogRecord], int]:
    """The records of the complete lines at the start of ``buf``, and the bytes they take."""
    used = buf.rfind(b"\n") + 1
    return [r for r in map(_decode_line, buf[:used].split(b"\n")) if r is not None], used


def _records(f: BinaryIO) -> Iterator[LogRecord]:
    return (r for r in map(_decode_line, _lines_forward([(f, None)])) if r is not None)


def _records_backwards(f: BinaryIO, end: int) -> Iterator[LogRecord]:
    return (r for r in map(_decode_line, _lines_backwards_fd(f, end, 65536)) if r is not None)


def _last_time_ns(f: BinaryIO, size: int) -> int | None:
    """The time of the last record in the first ``size`` bytes of an open plain file."""
    for line in _lines_backwards_fd(f, size):
        rec = _decode_line(line)
        if rec is not None:
            return rec.time_ns
    return None


_FORMAT = logread.LogFormat(parse=_parse, records=_records, backwards=_records_backwards,
                            last_time_ns=_last_time_ns, read_size=-1, truncates=True)


def follow(path: Path, position: LogPosition, stop: Callable[[], bool], until_ns: int | None = None,
           poll_interval: float = 0.1) -> AsyncIterator[list[LogRecord]]:
    """``logread.follow`` for json-file logs (``docker logs -f``)."""
    return logread.follow(_FORMAT, path, position, stop, until_ns, poll_interval)
