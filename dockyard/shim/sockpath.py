"""Unix socket paths that fit in sun_path (108 bytes) wherever the state dir lives.

A container's state dir is ``<exec-root>/containers/<64 hex id>``, which with a
longer exec root (tests, users' own) passes the limit. Through an O_PATH handle on
the directory, ``/proc/<pid>/fd/<n>/<name>`` names the same socket in a few bytes,
and works for other processes too (runc connecting to a console socket).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LIMIT = 100  # sun_path holds 108 bytes with the NUL; keep a margin


@contextmanager
def short_path(path: Path) -> Iterator[str]:
    """A path to use for bind/connect while the context is open."""
    full = str(path)
    if len(full.encode()) < _LIMIT:
        yield full
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
