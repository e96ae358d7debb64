"""Docker's json-file log driver: the shim writes it, ``docker logs`` reads it.

One JSON object per line, as dockerd writes::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-29T00:00:00.123456789Z"}

With log-opts tag/labels/env (``dockyard.daemon.containers.logdrivers.log_attrs``) each record
carries them, between stream and time as dockerd's marshaller puts them:
``{"log":"hi\\n","stream":"stdout","attrs":{"tag":"web"},"time":"..."}``.

Output is split at newlines; a line without a newline is written as it is when it
reaches ``PARTIAL_LIMIT`` bytes or when its stream ends. With ``max_size`` the file
rotates: ``<log>`` -> ``<log>.1`` -> ... -> ``<log>.<max_files-1>`` (Docker's
``max-size``/``max-file``; one file means truncate in place). With ``compress`` the rotated
files are ``<log>.1.gz`` ... (``dockyard.shim.logcompress``, gzipped in a child process, as
dockerd's). Reading (``docker logs``): ``dockyard.shim.jsonlog_reader``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from dockyard.shim.logrotate import RotatingLogFile

PARTIAL_LIMIT = 16 * 1024  # dockerd's copier flushes a line without newline at its 16K buffer
# what JSON escapes (controls, quote, backslash) or what needs decoding first (non-ASCII)
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')


def format_time(ns: int) -> str:
    """RFC3339Nano in UTC as Go prints it: trailing zeros of the fraction dropped."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def attrs_json(attrs: tuple[tuple[str, str], ...]) -> bytes:
    """The attrs object as Go's json.Marshal of a map writes it: keys sorted, <>& and the line
    separators escaped, raw UTF-8 otherwise."""
    text = json.dumps(dict(attrs), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


# ---- writing (in the shim) ----------------------------------------------------

class JsonLogWriter(RotatingLogFile):
    """Appends records for one container; not thread-safe (the shim is single-threaded)."""

    def __init__(self, path: Path, max_size: int | None = None, max_files: int = 1,
                 compress: bool = False, attrs: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(path, max_size, max_files, compress, truncates=True)
        self._attrs = b',"attrs":' + attrs_json(attrs) if attrs else b""
        self._partial: dict[str, bytes] = {}
        # the time of the file's last record, for the gzip header once it rotates (a file from an
        # earlier start of the container has one already)
        self._last_stamp = self._last_record_time() if self._size else ""

    def _last_record_time(self) -> str:
        """From the file's last line; if that is torn or foreign, now: no earlier than any
        record in the file, so a reader's --since never skips the file wrongly."""
        tail = os.pread(self._fd, 4096, max(0, self._size - 4096))
        try:
            return str(json.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])["time"])
        except (ValueError, KeyError, TypeError):
            return format_time(time.time_ns())

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` read from ``stream`` ("stdout"/"stderr"): whole lines now, the rest later."""
        buf = self._partial.pop(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        pieces = [line + b"\n" for line in lines]
        while len(rest) >= PARTIAL_LIMIT:
            pieces.append(rest[:PARTIAL_LIMIT])
            rest = rest[PARTIAL_LIMIT:]
        if rest:
            self._partial[stream] = rest
        self._emit(stream, pieces)

    def end_stream(self, stream: str) -> None:
        rest = self._partial.pop(stream, b"")
        if rest:
            self._emit(stream, [rest])

    def close(self) -> None:
        for stream in list(self._partial):
            self.end_stream(stream)
        super().close()

    def _emit(self, stream: str, pieces: list[bytes]) -> None:
        if not pieces:
            return
        stamp = format_time(time.time_ns())
        batch = []
        batch_size = 0
        # a piece of plain ASCII needs no escaping but its newline: the record is made directly,
        # several times faster than json.dumps and the same bytes
        tail = (b'","stream":"' + stream.encode() + b'"' + self._attrs + b',"time":"'
                + stamp.encode() + b'"}\n')
        for piece in pieces:
            ends_line = piece.endswith(b"\n")
            if _NEEDS_ESCAPE.search(piece, 0, len(piece) - ends_line) is None:
                record = b'{"log":"' + (piece[:-1] + b"\\n" if ends_line else piece) + tail
            else:
                text = json.dumps(piece.decode("utf-8", "replace"), ensure_ascii=False)
                # raw UTF-8 as Go writes it, but the two JSON-legal line separators escaped as Go does
                record = (b'{"log":' + text.replace("\u2028", "\\u2028").replace(
                    "\u2029", "\\u2029").encode()[:-1] + tail)
            if self.max_size and self._size + batch_size + len(record) > self.max_size \
                    and self._size + batch_size > 0:
                self._write_all(b"".join(batch))
                batch, batch_size = [], 0
                self._rotate(self._last_stamp)
            batch.append(record)
            batch_size += len(record)
            self._last_stamp = stamp  # of the file's last record, once it is rotated
        self._write_all(b"".join(batch))
