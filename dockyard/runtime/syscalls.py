"""Thin ctypes wrappers over the Linux calls the runtime needs and Python's ``os`` lacks.

Each wrapper raises ``OSError(errno, message)`` naming the call and its object,
so a failure reads like "mount /proc: Operation not permitted". Constants are
the kernel's (x86_64). Nothing here decides policy.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

# the process's own symbols, libc's among them: ctypes.util.find_library would run ldconfig and
# import subprocess (and threading) into the zygote that every shim is forked from
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_fork = _libc.fork
_fork.restype = ctypes.c_int


def fork() -> int:
    """fork(2) without CPython's after-fork work in the child (its locks and thread state made
    anew, the at-fork hooks run), which a single-threaded caller's state does not need and which
    writes ~170 pages shared with the parent: ~0.6 ms and ~0.7 MB of every forked child here
    (measured from the zygote: 223 pages written before the child's first line vs 51). For the
    zygote and the processes it forks, all single-threaded; with other threads alive, os.fork."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return os.fork()
    pid = _fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), f"fork: {os.strerror(ctypes.get_errno())}")
    return pid


def fork_sibling() -> int:
    """``fork`` whose child is our parent's child, not ours (clone with CLONE_PARENT): our
    parent reaps it and hears of its exit, also while we are still alive. A raw clone, so
    only from a single-threaded process (no at-fork work runs, glibc's included)."""
    pid = _syscall(SYS_CLONE, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0)
    if pid < 0:
        raise OSError(ctypes.get_errno(), f"clone: {os.strerror(ctypes.get_errno())}")
    return pid

# namespaces (sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
}
# /proc/<pid>/ns/<file> for each OCI namespace type
NAMESPACE_FILES = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
}

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

# mount_setattr(2) (kernel 5.12+): attributes changed on a whole mount tree at once
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

# syscall numbers (x86_64) for calls glibc does not wrap
SYS_PIVOT_ROOT = 155
SYS_CLONE = 56
CLONE_PARENT = 0x00008000
SIGCHLD = 17
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_SECCOMP = 317
SYS_CLOSE_RANGE = 436
SYS_MOUNT_SETATTR = 442
SECCOMP_SET_MODE_FILTER = 1
CLOSE_RANGE_CLOEXEC = 1 << 2

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# tty ioctls
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0, what: str = "setns") -> None:
    _check(_libc.setns(fd, nstype), what)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount {target}",
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, attr_clr: int) -> None:
    """Set and clear MOUNT_ATTR_* on the mount at ``path`` and every mount below it (AT_RECURSIVE)."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_syscall(SYS_MOUNT_SETATTR, ctypes.c_int(AT_FDCWD), _b(path), ctypes.c_uint(AT_RECURSIVE),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {path}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(
            option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)
        ),
        f"prctl({option})",
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_syscall(SYS_CAPGET, ctypes.byref(header), data), "capget")
    join = lambda field: getattr(data[0], field) | (getattr(data[1], field) << 32)  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(SYS_CAPSET, ctypes.byref(header), data), "capset")


def setgroups(gids: list[int]) -> None:
    os.setgroups(gids)


def setresgid(gid: int) -> None:
    os.setresgid(gid, gid, gid)


def setresuid(uid: int) -> None:
    os.setresuid(uid, uid, uid)


def mknod(path: str, mode: int, major: int, minor: int) -> None:
    os.mknod(path, mode, os.makedev(major, minor))


def seccomp_filter(program: bytes) -> None:
    """Install a classic-BPF seccomp filter (``program`` is packed sock_filter structs)."""
    count = len(program) // 8
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", count, ctypes.addressof(buf))
    fprog_buf = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, fprog_buf), "seccomp")


def cloexec_from(first_fd: int) -> None:
    """Mark every fd >= first_fd close-on-exec, so only stdio reaches the container process."""
    _check(_syscall(SYS_CLOSE_RANGE, first_fd, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC), "close_range")


def ioctl_int(fd: int, request: int, value: int) -> None:
    arg = ctypes.c_int(value)
    _check(_libc.ioctl(fd, ctypes.c_ulong(request), ctypes.byref(arg)), f"ioctl({request:#x})")


def ioctl_get_int(fd: int, request: int) -> int:
    arg = ctypes.c_uint(0)
    _check(_libc.ioctl(fd, ctypes.c_ulong(request), ctypes.byref(arg)), f"ioctl({request:#x})")
    return arg.value


def set_controlling_tty(fd: int) -> None:
    _check(_libc.ioctl(fd, ctypes.c_ulong(TIOCSCTTY), 0), "ioctl(TIOCSCTTY)")


def set_winsize(fd: int, rows: int, cols: int) -> None:
    packed = ctypes.create_string_buffer(struct.pack("HHHH", rows, cols, 0, 0), 8)
    _check(_libc.ioctl(fd, ctypes.c_ulong(TIOCSWINSZ), packed), "ioctl(TIOCSWINSZ)")


def malloc_trim() -> None:
    """Give the free pages of the C heap back to the kernel (glibc's malloc_trim; a no-op on a
    libc without it): what imports, warm-ups and finished requests allocated and freed
    otherwise stays in the process's RSS. Takes well under a millisecond."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


MADV_POPULATE_WRITE = 23
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def populate_write(address: int, length: int) -> bool:
    """Fault ``length`` bytes at ``address`` in as if written (madvise MADV_POPULATE_WRITE,
    Linux 5.14): copy-on-write pages are copied now. False where the range is not mapped
    writable (or the kernel is older)."""
    return _libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), MADV_POPULATE_WRITE) == 0
