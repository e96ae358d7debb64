"""``--squash``: the layers a stage added since its FROM, merged into one overlay upper dir.

The layers are overlay upper dirs (whiteouts as char devices 0/0, opaque dirs by xattr), so
stacking them bottom first into one fresh upper dir gives what overlay would show over the
base: a later whiteout removes what earlier layers wrote, a file added and deleted again is
gone, an opaque (or replaced) directory hides everything below it. A whiteout is kept only
where the base itself has the path, so the merged layer is what moby's diff against the base
gives (``daemon/images/image_squash.go``: the parent's layers plus this one). The merged
files are hard links to the layers' own files, so squashing a big COPY copies nothing here.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterator

from dockyard.storage.archive import OVERLAY_OPAQUE_XATTR, is_opaque, is_whiteout
from dockyard.storage.fsutil import remove_tree

_OVERLAY_XATTRS = "trusted.overlay."


def merge_layers(layers: list[Path], upper: Path) -> None:
    """Apply each layer dir (bottom first) onto ``upper`` as overlay stacks them."""
    dir_stats: dict[str, os.stat_result] = {}
    for layer in layers:
        for rel, src, st in _entries(layer):
            dst = os.path.join(upper, rel)
            try:
                current: os.stat_result | None = os.lstat(dst)
            except FileNotFoundError:
                current = None
            if is_whiteout(st):
                if current is not None:
                    remove_tree(dst)
                os.mknod(dst, stat.S_IFCHR, os.makedev(0, 0))
                os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
                dir_stats.pop(rel, None)
            elif stat.S_ISDIR(st.st_mode):
                opaque = is_opaque(src)
                # a directory where a whiteout or a file was: nothing below it shows through
                replaced = current is not None and not stat.S_ISDIR(current.st_mode)
                if current is not None and (opaque or replaced):
                    remove_tree(dst)
                    current = None
                if current is None:
                    os.mkdir(dst)
                if opaque or replaced:
                    os.setxattr(dst, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
                os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
                os.chmod(dst, stat.S_IMODE(st.st_mode))
                _copy_xattrs(src, dst)
                dir_stats[rel] = st
            else:
                if current is not None:
                    remove_tree(dst)
                _link_or_copy(src, dst, st)
    # entries made inside a directory bump its times: set them last, deepest first
    for rel in sorted(dir_stats, key=lambda r: r.count("/"), reverse=True):
        st = dir_stats[rel]
        path = os.path.join(upper, rel)
        if os.path.isdir(path):
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def drop_foreign_whiteouts(upper: Path, in_base: Callable[[str], bool]) -> None:
    """Whiteouts of paths the base lacks (added, then deleted) go; so does the opaque mark
    of a directory the base lacks: neither hides anything, and moby's diff has neither."""
    for rel, path, st in list(_entries(upper)):
        if is_whiteout(st):
            if not in_base(rel):
                os.unlink(path)
        elif stat.S_ISDIR(st.st_mode) and is_opaque(path) and not in_base(rel):
            os.removexattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False)


def has_markers(upper: Path) -> bool:
    """Whether ``upper`` has a whiteout or an opaque dir (only then is the base consulted)."""
    return any(is_whiteout(st) or (stat.S_ISDIR(st.st_mode) and is_opaque(path))
               for _, path, st in _entries(upper))


def _entries(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) of everything under root, each directory before its
    contents; a stack, not recursion (trees can be deeper than Python's stack)."""
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            found = sorted(it, key=lambda e: e.name)
        for entry in found:
            child = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield child, entry.path, st
            if stat.S_ISDIR(st.st_mode):
                pending.append(child)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_OVERLAY_XATTRS):
            continue
        os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)


def _link_or_copy(src: str, dst: str, st: os.stat_result) -> None:
    """A hard link to the layer's own file (layers are never written again); a copy with
    the same metadata when the snapshot lives on another filesystem."""
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
            raise
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    else:
        os.mknod(dst, stat.S_IFMT(st.st_mode), st.st_rdev)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
