"""Resolve ``--user`` (name|uid[:group|gid]) and supplementary groups from the image.

The image's ``/etc/passwd`` and ``/etc/group`` are read straight from its
unpacked layers, top layer first, without mounting: the first layer that has
the file wins; a whiteout (overlay char device 0:0 or a Docker ``.wh.`` file)
hides it; an opaque directory stops the search below. Semantics follow runc's
``user.GetExecUser``: a numeric uid needs no passwd entry, a name does; the
groups are the user's primary group plus every group that lists the user.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dockyard import errdefs

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _is_whiteout(path: Path) -> bool:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(directory: Path) -> bool:
    if (directory / ".wh..wh..opq").exists():
        return True
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(directory, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def read_image_file(layer_dirs: list[Path], rel_path: str) -> str | None:
    """Text of ``rel_path`` (e.g. "etc/passwd") as the merged rootfs would show it, or None."""
    parts = Path(rel_path.lstrip("/")).parts
    for layer in layer_dirs:
        # A whiteout or opaque dir on any ancestor in this layer ends the search.
        hidden = False
        for depth in range(1, len(parts)):
            ancestor = layer.joinpath(*parts[:depth])
            if _is_whiteout(ancestor) or (layer.joinpath(*parts[:depth - 1]) / f".wh.{parts[depth - 1]}").exists():
                hidden = True
                break
        if hidden:
            return None
        target = layer.joinpath(*parts)
        if _is_whiteout(target) or (target.parent / f".wh.{target.name}").exists():
            return None
        if target.is_file():
            return target.read_text(errors="replace")
        if any(_is_opaque(layer.joinpath(*parts[:depth])) for depth in range(1, len(parts))):
            return None
    return None


def _entries(text: str | None, fields: int) -> list[list[str]]:
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = line.split(":")
        if len(cols) >= fields:
            out.append(cols)
    return out


def _read_entries(layer_dirs: tuple[Path, ...]) -> tuple[list[list[str]], list[list[str]]]:
    return (_entries(read_image_file(list(layer_dirs), "etc/passwd"), 7),
            _entries(read_image_file(list(layer_dirs), "etc/group"), 4))


# an image's layers never change: their passwd and group files are read once (~0.2 ms of a start)
_image_entries = functools.lru_cache(maxsize=64)(_read_entries)


def resolve(user: str, layer_dirs: list[Path], group_add: list[str] | None = None, *,
            image_layers: bool = False) -> ExecUser:
    """uid, gid, supplementary gids and home for ``user`` ("" means root) in this image.
    ``image_layers``: ``layer_dirs`` are an image's (immutable) layers, not a container's root."""
    user = user or "0"
    user_part, _, group_part = user.partition(":")
    passwd, groups = (_image_entries if image_layers else _read_entries)(tuple(layer_dirs))

    uid: int | None = None
    gid = 0
    home = "/"
    name = ""
    for cols in passwd:
        if cols[0] == user_part or (user_part.isdigit() and cols[2] == user_part):
            name, uid, home = cols[0], int(cols[2]), cols[5] or "/"
            gid = int(cols[3]) if cols[3].isdigit() else 0
            break
    if uid is None:
        if not user_part.isdigit():
            raise errdefs.InvalidParameter(
                f"unable to find user {user_part}: no matching entries in passwd file")
        uid = int(user_part)

    if group_part:
        gid = _group_id(group_part, groups)
        additional: list[int] = []
    else:
        # runc: a user's supplementary groups come from /etc/group membership.
        additional = [int(cols[2]) for cols in groups
                      if name and name in cols[3].split(",") and cols[2].isdigit()]
    for extra in group_add or []:
        additional.append(_group_id(extra, groups))
    unique: list[int] = []
    for g in additional:
        if g not in unique:
            unique.append(g)
    return ExecUser(uid=uid, gid=gid, additional_gids=unique, home=home)


def _group_id(group: str, groups: list[list[str]]) -> int:
    for cols in groups:
        if cols[0] == group and cols[2].isdigit():
            return int(cols[2])
    if group.isdigit():
        return int(group)
    raise errdefs.InvalidParameter(f"unable to find group {group}: no matching entries in group file")
