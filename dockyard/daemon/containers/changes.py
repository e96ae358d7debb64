"""``docker diff``: what a container changed, read from its snapshot's upper directory.

Kind 0 = modified (the path exists in the image too), 1 = added, 2 = deleted
(an overlay whiteout: a 0:0 character device). Paths come sorted, as dockerd
lists them; a directory the container wrote into shows as modified.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec


class Change(msgspec.Struct, rename="pascal"):
    path: str
    kind: int


def _in_lower(rel: str, lower: list[Path]) -> bool:
    return any(os.path.lexists(layer / rel) for layer in lower)


def changes(upper: Path, lower: list[Path]) -> list[Change]:
    out: list[Change] = []
    for root, dirs, files in os.walk(upper):
        for name in sorted(dirs) + sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, upper)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(Change(path="/" + rel, kind=2))
            else:
                out.append(Change(path="/" + rel, kind=0 if _in_lower(rel, lower) else 1))
    out.sort(key=lambda c: c.path)
    return out
