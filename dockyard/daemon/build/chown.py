"""``--chown=user[:group]``: names looked up in the image's own /etc/passwd and /etc/group
(read inside the rootfs, never through a symlink that leaves it), numbers taken as they are."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard import errdefs
from dockyard.storage import fsroot


def _entry(rootfs: Path, file: str, name: str) -> list[str] | None:
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = fsroot.open_in_root(root_fd, file, os.O_RDONLY)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    with os.fdopen(fd, "r", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if len(fields) > 3 and fields[0] == name and fields[2].isdigit():
                return fields
    return None


def owner(rootfs: Path, chown: str) -> tuple[int, int]:
    user, _, group = chown.partition(":")
    passwd = None if user.isdigit() else _entry(rootfs, "/etc/passwd", user)
    if not user.isdigit() and passwd is None:
        raise errdefs.InvalidParameter(f"unable to convert uid/gid chown string to host mapping: "
                                       f"can't find uid for user {user}: no such user: {user}")
    uid = int(user) if passwd is None else int(passwd[2])
    if not group:  # the user's primary group (a bare number: the same number)
        return uid, int(passwd[3]) if passwd is not None and passwd[3].isdigit() else uid
    if group.isdigit():
        return uid, int(group)
    entry = _entry(rootfs, "/etc/group", group)
    if entry is None:
        raise errdefs.InvalidParameter(f"unable to convert uid/gid chown string to host mapping: "
                                       f"can't find gid for group {group}: no such group: {group}")
    return uid, int(entry[2])
