"""The container's root filesystem mounts, done by the shim in the host mount namespace.

The snapshotter hands ``dockyard.mount.Mount`` values (an overlay over the image's
layers); the shim mounts them at the spec's ``root.path`` before ``runtime create``
and unmounts them at shutdown. Thin ctypes seam over mount(2)/umount2(2).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from dockyard.mount import Mount

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

# mount(8) option words that are flags, not filesystem data
_FLAGS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "noatime": (MS_NOATIME, True),
    "bind": (MS_BIND, True), "rbind": (MS_BIND | MS_REC, True),
}


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def split_options(options: tuple[str, ...]) -> tuple[int, str]:
    flags = 0
    data = []
    for option in options:
        if option in _FLAGS:
            bit, on = _FLAGS[option]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(option)
    return flags, ",".join(data)


def mount_target(root: Path, m: Mount) -> Path:
    return root / m.target.lstrip("/") if m.target else root


def mount_all(mounts: tuple[Mount, ...], root: Path) -> None:
    """Mount each of ``mounts`` below ``root`` (an empty target means ``root`` itself); on failure
    undo the ones already made and raise."""
    done: list[Mount] = []
    try:
        for m in mounts:
            target = mount_target(root, m)
            flags, data = split_options(m.options)
            _check(_libc.mount(m.source.encode(), str(target).encode(), m.type.encode(), flags,
                               data.encode() if data else None),
                   f"mount {m.type} {m.source} on {target}")
            if flags & MS_BIND and flags & MS_RDONLY:  # a bind mount ignores ro until remounted
                _check(_libc.mount(None, str(target).encode(), None, flags | MS_REMOUNT, None),
                       f"remount {target} read-only")
            done.append(m)
    except OSError:
        unmount_all(tuple(done), root)
        raise


def unmount_all(mounts: tuple[Mount, ...], root: Path) -> None:
    """Unmount in reverse order; a busy mount is detached (lazily unmounted) rather than left."""
    for m in reversed(mounts):
        target = str(mount_target(root, m)).encode()
        if _libc.umount2(target, 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EBUSY:
                _check(_libc.umount2(target, MNT_DETACH), f"unmount {target.decode()}")
            elif err not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
                raise OSError(err, f"unmount {target.decode()}: {os.strerror(err)}")
