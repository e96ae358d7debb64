"""Progress lines of pull and push, as dockerd writes them (``status``/``id``/``progressDetail``).

A ``Progress`` is handed to the pull/push code; every message goes to ``emit`` (the router's
queue). Byte counts are throttled per layer (one line per 100 ms, plus the last), like
Docker's progress reader. When the client went away, ``emit`` raises (an errdefs error),
so the worker stops at its next line.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from dockyard.apitypes.distribution import JSONMessage, ProgressDetail

_INTERVAL = 0.1
_BAR = 50


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, 4 significant digits (``1.23MB``, ``527B``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    text = f"{size:.4g}"
    return f"{text}{units[i]}"


def bar(current: int, total: int, start: float) -> str:
    """The ``progress`` text of a line (JSONProgress.String at the daemon's width)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    percent = min(int(current / total * 100) // 2, _BAR)
    box = "[" + "=" * percent + ">" + " " * (_BAR - percent) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else f"{human_size(current):>8}"
    left = ""
    elapsed = time.time() - start
    if current > 0 and percent < _BAR and elapsed > 0:
        seconds = int((total - current) * elapsed / current)
        left = " " + _go_duration(seconds)
    return box + numbers + left


def _go_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def short(digest: str) -> str:
    """The 12 hex digits Docker shows per layer."""
    return digest.partition(":")[2][:12]


class Progress:
    def __init__(self, emit: Callable[[JSONMessage], None]) -> None:
        self._emit = emit
        self._lock = threading.Lock()

    def send(self, message: JSONMessage) -> None:
        with self._lock:
            self._emit(message)

    def status(self, text: str, id: str | None = None) -> None:
        self.send(JSONMessage(status=text, id=id))

    def layer(self, id: str, text: str) -> None:
        """A per-layer state line (``Pulling fs layer``, ``Pull complete``): ``progressDetail`` ``{}``."""
        self.send(JSONMessage(status=text, id=id, progressDetail=ProgressDetail()))

    def aux(self, data: dict) -> None:
        self.send(JSONMessage(progressDetail=ProgressDetail(), aux=data))

    def meter(self, id: str, action: str, total: int) -> Meter:
        return Meter(self, id, action, total)


class Meter:
    """Byte progress of one layer action (``Downloading``, ``Extracting``, ``Pushing``)."""

    def __init__(self, progress: Progress, id: str, action: str, total: int) -> None:
        self._progress = progress
        self.id = id
        self.action = action
        self.total = total
        self.current = 0
        self._start = time.time()
        self._last = 0.0
        self._sent = -1  # the count of the last line sent: no line twice for the same count

    def add(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now - self._last >= _INTERVAL or (self.total and self.current >= self.total):
            self._last = now
            self.flush()

    def status(self, text: str) -> None:
        """A state line of this layer (``Verifying Checksum``, ``Retrying in 2 seconds``)."""
        self._progress.layer(self.id, text)

    def reset(self, current: int = 0) -> None:
        self.current = current

    def flush(self) -> None:
        if self.current == self._sent:
            return
        self._sent = self.current
        self._progress.send(JSONMessage(
            status=self.action, id=self.id,
            progressDetail=ProgressDetail(current=self.current, total=self.total or None, start=int(self._start)),
            progress=bar(self.current, self.total, self._start)))
