"""Named network namespaces as files, the way ``ip netns add`` makes them.

A namespace is kept alive by bind-mounting a thread's ``/proc/thread-self/ns/net`` onto a file
in the daemon's netns directory. ``unshare``/``setns`` act on the calling thread only, so the
daemon creates namespaces from one dedicated worker thread and always moves it back to the host
namespace before returning.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, flags: int) -> None:
    _check(_libc.mount(source.encode(), target.encode(), None, flags, None), f"mount {source} on {target}")


def unshare_net() -> None:
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def setns_net(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def prepare_dir(netns_dir: Path) -> None:
    """Make the netns directory a shared mount point (as iproute2 does for /run/netns).

    Mount namespaces copied later (containers) then see our unmounts, so a released
    namespace is not pinned by a stale copy of its bind mount.
    """
    netns_dir.mkdir(parents=True, exist_ok=True)
    path = os.path.realpath(netns_dir)
    if not _is_mount_point(path):
        _mount(path, path, MS_BIND | MS_REC)
    _mount("none", path, MS_SHARED | MS_REC)


def _is_mount_point(path: str) -> bool:
    """From mountinfo: a bind mount of a directory onto itself has the same st_dev as its
    parent, so ``os.path.ismount`` cannot see it."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split(" ", 5)[4]
            if mount_point.replace("\\040", " ") == path:
                return True
    return False


def create_here(path: Path) -> None:
    """Move the calling thread into a fresh network namespace and pin it at ``path``.

    The caller must move the thread back (``setns_net(host_fd)``) whatever happens.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        unshare_net()
        _mount("/proc/thread-self/ns/net", str(path), MS_BIND)
    except BaseException:
        os.unlink(path)
        raise


def bind(source: Path, path: Path) -> None:
    """Pin the namespace pinned at source at path too (a bind mount of the nsfs file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        _mount(str(source), str(path), MS_BIND)
    except BaseException:
        os.unlink(path)
        raise


def remove(path: Path) -> None:
    """Unpin a namespace: lazy unmount and unlink. The kernel frees it (and its veth end)
    once the last process inside exits. Idempotent."""
    result = _libc.umount2(str(path).encode(), MNT_DETACH)
    if result != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted / already gone
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_pinned(path: Path) -> bool:
    """True when ``path`` is a mounted namespace file (a plain leftover file is not)."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev  # nsfs, not the dir's fs
    except FileNotFoundError:
        return False
