"""Docker's volume copy-up: fill a new, empty volume with what the image has at its mount path.

Reads the image's unpacked layers directly (top first), as overlayfs would merge
them: a whiteout (a 0/0 character device) hides the lower layers' entry of that
name, an opaque directory (xattr trusted.overlay.opaque=y) hides the lower
layers' content below it, and an upper entry wins over a lower one. Ownership,
mode, times, xattrs, symlinks, hard links, devices and fifos are kept.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

_OPAQUE = "trusted.overlay.opaque"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _hidden(rel: str, hidden: set[str]) -> bool:
    while True:
        if rel in hidden:
            return True
        if not rel:
            return False
        rel = rel.rpartition("/")[0]


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        for name in os.listxattr(src, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    except OSError:
        pass  # xattrs are best effort, as Docker's copy
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_entry(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(dst, 0o700)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dst)
            return
        shutil.copyfile(src, dst, follow_symlinks=False)
        links[key] = dst
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, st.st_rdev)
    else:
        return  # sockets are not content
    _copy_meta(src, dst, st)


def copy_up(layers: list[Path], path: str, dest: Path) -> bool:
    """Copy the merged content of ``path`` in ``layers`` (top first) into the empty ``dest``.

    Returns whether the image has a directory at ``path`` (then dest's owner and mode are the
    image directory's, as Docker sets them)."""
    parts = [p for p in path.split("/") if p]
    hidden: set[str] = set()  # paths relative to ``path`` hidden from lower layers
    present: dict[str, bool] = {}  # copied relative path -> is a directory
    links: dict[tuple[int, int], str] = {}
    dir_times: list[tuple[str, os.stat_result]] = []
    found = False
    for layer in layers:
        base, last_layer = str(layer), False
        for index, part in enumerate(parts):
            candidate = os.path.join(base, part)
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                base = ""
                break
            if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                return found  # the path is deleted or shadowed by a file here: lower layers add nothing
            if _is_opaque(candidate):
                last_layer = True
            base = candidate
        if base:
            if not found:
                st = os.lstat(base)
                _copy_meta(base, str(dest), st)
                dir_times.append((str(dest), st))
                found = True
            opaque_here: set[str] = set()
            stack = [""]
            while stack:
                rel = stack.pop()
                src_dir = os.path.join(base, rel) if rel else base
                with os.scandir(src_dir) as it:
                    entries = list(it)
                for entry in entries:
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    if _hidden(child, hidden):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if _is_whiteout(st):
                        hidden.add(child)
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    if child in present:
                        if is_dir and present[child]:
                            stack.append(child)
                            if _is_opaque(entry.path):
                                opaque_here.add(child)
                        continue
                    target = os.path.join(dest, child)
                    _copy_entry(entry.path, target, st, links)
                    present[child] = is_dir
                    if is_dir:
                        dir_times.append((target, st))
                        stack.append(child)
                        if _is_opaque(entry.path):
                            opaque_here.add(child)
                    else:
                        hidden.add(child)
            hidden |= opaque_here
        if last_layer:
            break
    for target, st in reversed(dir_times):  # children changed the times; set them last
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    return found
