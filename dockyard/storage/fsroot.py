"""Opening paths inside a directory treated as "/": openat2(2) with RESOLVE_IN_ROOT.

A container's filesystem is hostile input to the daemon: any component of a path in it may be
a symlink (absolute, relative, or swapped in by a process racing the daemon) pointing at the
host's / or /etc (the class of CVE-2018-15664 and CVE-2019-14271). With RESOLVE_IN_ROOT the
kernel resolves the whole path as if the directory were the root: absolute symlinks restart at
it, ".." stops at it, and a rename racing the walk makes the call fail with EAGAIN (retried)
instead of letting it out. RESOLVE_NO_MAGICLINKS also refuses /proc/<pid>/fd-style links a
container could plant. (Kernel 5.6 or later.)
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # the same number on every architecture (added after the syscall tables merged)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_EAGAIN_RETRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """An fd of ``path`` (absolute or relative, it does not matter) resolved inside the directory
    ``root_fd`` as its root. Raises OSError as open(2) would (ENOENT, ENOTDIR, ELOOP, ...)."""
    return _openat2(root_fd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def open_beneath_no_symlinks(dir_fd: int, path: str, flags: int) -> int:
    """An fd of the relative ``path`` below ``dir_fd``, refusing (ELOOP / EXDEV) any symlink or
    ".." on the way: for paths a container may have shaped (a volume's subpath)."""
    return _openat2(dir_fd, path, flags, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)


def _openat2(dir_fd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path) or b"."
    for _ in range(_EAGAIN_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, raw, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:  # EAGAIN: a rename raced the lookup; the kernel asks to retry
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def clean_path(path: str) -> str:
    """Docker's view of a container path: absolute, lexically cleaned (Go's filepath.Clean), with
    a trailing "/" or "/." the caller wrote kept, since it changes what cp means."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):  # POSIX lets normpath keep exactly two leading slashes; Go does not
        cleaned = "/" + cleaned.lstrip("/")
    if posixpath.basename(path) == "." and posixpath.basename(cleaned) != ".":
        cleaned = cleaned.rstrip("/") + "/."
    elif path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def fd_path(fd: int) -> str:
    """Where an fd points, as the kernel names it in this mount namespace."""
    return os.readlink(f"/proc/self/fd/{fd}")


def path_in_root(root_fd: int, fd: int) -> str:
    """The path of ``fd`` as seen from inside ``root_fd`` (``fd`` must lie below it)."""
    root, inner = fd_path(root_fd), fd_path(fd)
    if inner == root:
        return "/"
    if not inner.startswith(root.rstrip("/") + "/"):
        raise OSError(errno.EXDEV, "path lies outside the root", inner)
    return inner[len(root.rstrip("/")):]
