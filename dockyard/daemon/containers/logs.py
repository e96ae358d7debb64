"""``docker logs`` (and attach's ``logs=1``) from the log the shim writes.

Reading and following the files is the driver's reader's job (``dockyard.shim.jsonlog_reader``
for json-file, ``dockyard.shim.locallog_reader`` for local; both give the same records);
this module turns the API's options into their arguments and records into (stream, bytes).
The readers (with the shim's log modules, ~0.25 MB of the daemon's RSS) load at the first read:
a daemon that nobody asks for logs never needs them.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable, Iterator

from dockyard import errdefs
from dockyard.daemon.containers import logdrivers
from dockyard.daemon.containers.record import ContainerRecord

if TYPE_CHECKING:
    from dockyard.shim.logread import LogRecord


CHUNK = 64 * 1024


@dataclass(frozen=True)
class LogOptions:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since: str = ""  # unix seconds "1700000000.123456789" or RFC 3339, as the CLI sends
    until: str = ""
    timestamps: bool = False
    tail: str = "all"
    details: bool = False  # each line after its attrs (log-opts tag/labels/env), as dockerd


def _time_ns(value: str) -> int | None:
    if not value:
        return None
    seconds, _, frac = value.partition(".")
    if seconds.lstrip("-").isdigit() and (not frac or frac.isdigit()):
        return int(seconds) * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)
    from dockyard.shim.logread import parse_time  # at the first read (module docstring)
    try:
        return parse_time(value)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid value for time: {value!r}") from None


def _tail(value: str) -> int | None:
    if value in ("", "all"):
        return None
    if value.lstrip("-").isdigit():
        n = int(value)
        return None if n < 0 else n
    raise errdefs.InvalidParameter(f"invalid value for tail: {value!r}")


def read(rec: ContainerRecord, options: LogOptions,
         stopped: Callable[[], bool]) -> AsyncIterator[tuple[int, bytes]]:
    """(1 stdout | 2 stderr, line) oldest first; with ``follow`` until ``stopped()`` and drained.
    Bad options raise here, before the caller has sent anything."""
    since = _time_ns(options.since) or 0
    until = _time_ns(options.until)
    tail = _tail(options.tail)
    log = rec.host_config.log_config
    return _records(_reader(log.type), Path(rec.log_path), logdrivers.max_files(log), options, since, until,
                    tail, stopped)


def _reader(log_type: str) -> ModuleType:
    """The driver's reader, loaded at the first read (module docstring)."""
    if log_type == logdrivers.LOCAL:
        from dockyard.shim import locallog_reader
        return locallog_reader
    from dockyard.shim import jsonlog_reader
    return jsonlog_reader


def details_prefix(attrs: tuple[tuple[str, str], ...]) -> bytes:
    """``logs --details``: ``key=value,key2=value2 `` sorted by key, each side query-escaped as
    Go's url.QueryEscape (space as +); a lone space when there are none, as dockerd."""
    quote = urllib.parse.quote_plus
    return (",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(attrs))
            + " ").encode()


def fixed_time(ns: int) -> bytes:
    """Go's RFC3339NanoFixed in UTC (always nine digits), as dockerd prefixes ``logs -t`` lines."""
    secs, frac = divmod(ns, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(secs))}.{frac:09d}Z".encode()


async def _records(reader: ModuleType, path: Path, max_files: int, options: LogOptions, since: int,
                   until: int | None, tail: int | None,
                   stopped: Callable[[], bool]) -> AsyncIterator[tuple[int, bytes]]:
    records, position = reader.read_logs(path, max_files, since_ns=since, until_ns=until, tail=tail)

    def frame(r: LogRecord) -> tuple[int, bytes] | None:
        stream = 2 if r.stream == "stderr" else 1
        if (stream == 1 and not options.stdout) or (stream == 2 and not options.stderr):
            return None
        data = r.data
        if options.details:
            data = details_prefix(r.attrs) + data
        if options.timestamps:
            data = fixed_time(r.time_ns) + b" " + data
        return stream, data

    def chunks(batch: Iterable[LogRecord]) -> Iterator[tuple[int, bytes]]:
        """Consecutive records of one stream in chunks: one frame and one socket write per chunk
        instead of per line (the client sees the same bytes)."""
        chunk: list[bytes] = []
        chunk_stream = chunk_size = 0
        for r in batch:
            item = frame(r)
            if item is None:
                continue
            stream, data = item
            if chunk and (stream != chunk_stream or chunk_size >= CHUNK):
                yield chunk_stream, b"".join(chunk)
                chunk, chunk_size = [], 0
            chunk_stream = stream
            chunk.append(data)
            chunk_size += len(data)
        if chunk:
            yield chunk_stream, b"".join(chunk)

    for item in chunks(records):
        yield item
    if options.follow and (until is None or until > 0):
        async for batch in reader.follow(path, position, stopped, until_ns=until):
            for item in chunks(r for r in batch if r.time_ns >= since):
                yield item
