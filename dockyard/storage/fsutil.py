"""Small filesystem helpers the storage modules share: durable writes and tree removal."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path``: one call instead of an fsync per file of a tree."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(path.parent)


def _clear(fd: int) -> list[str]:
    """Unlink everything in the directory ``fd`` except subdirectories, which it returns."""
    subdirs = []
    with os.scandir(fd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
    return subdirs


def remove_tree(name: str | Path, dir_fd: int | None = None) -> None:
    """``rm -rf name`` (relative to ``dir_fd`` if given); no error if it is gone.

    Never follows symlinks, and walks with one open directory at a time and no recursion:
    a container can build a tree deeper than Python's stack (shutil.rmtree then fails)
    and longer than PATH_MAX."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=dir_fd)
        return
    below: list[str] = []  # the path from the top to the directory fd is open on
    pending = [_clear(fd)]  # per level: subdirectories still to remove
    try:
        while pending:
            if pending[-1]:
                child = pending[-1].pop()
                new = os.open(child, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = new
                below.append(child)
                pending.append(_clear(fd))
                continue
            pending.pop()
            if not below:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(below.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
