"""mount(2)/umount2(2) for volume drivers, with mount(8)'s option words split into flags and data.

The local driver mounts a volume's device (tmpfs, a bind of a host directory, any
filesystem) over its ``_data`` directory on the host; containers then bind that in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 1, 2, 4, 8, 16
MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 32, 64, 128
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MNT_DETACH = 2

# word -> (clear?, flag): mount(8)'s option words that are flags, not filesystem data.
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID), "dev": (True, MS_NODEV),
    "nodev": (False, MS_NODEV), "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS), "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT), "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME), "noatime": (False, MS_NOATIME), "diratime": (True, MS_NODIRATIME),
    "nodiratime": (False, MS_NODIRATIME), "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
}
_PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
                "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
                "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC}


def parse_options(options: str) -> tuple[int, int, str]:
    """"size=64m,ro,rshared" -> (flags, propagation flags, "size=64m")."""
    flags, propagation, data = 0, 0, []
    for word in filter(None, options.split(",")):
        if word in _FLAGS:
            clear, flag = _FLAGS[word]
            flags = flags & ~flag if clear else flags | flag
        elif word in _PROPAGATION:
            propagation |= _PROPAGATION[word]
        else:
            data.append(word)
    return flags, propagation, ",".join(data)


def _call(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _go_error(err: int) -> str:
    """The errno's text as Go's syscall.Errno prints it (what Docker's messages carry)."""
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def _mount_call(op: str, source: str, target: str, fstype: str | None, flags: int, data: str) -> None:
    """mount(2); a failure reads as moby/sys/mount's: "mount src:target, flags: 0x.., data: ..: why"."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) == 0:
        return
    err = ctypes.get_errno()
    where = f"{source}:{target}" if source else target
    text = f"{op} {where}" + (f", flags: 0x{flags:x}" if flags else "") + (f", data: {data}" if data else "")
    raise OSError(err, f"{text}: {_go_error(err)}")


def mount(device: str, target: str, fstype: str, options: str) -> None:
    """Mount as ``mount -t fstype -o options device target`` would (a bind's read-only takes a remount).

    Option words mount(2) has no flag for ("loop", "user", "noauto", "_netdev", ...: mount(8)'s
    own) go to the filesystem as data, as Docker's local driver passes them, and the kernel
    answers for them."""
    flags, propagation, data = parse_options(options)
    _mount_call("mount", device, target, fstype or None, flags, data)
    if flags & MS_BIND and flags & MS_RDONLY:
        _mount_call("remount-ro", "", target, None, flags | MS_REMOUNT, "")
    if propagation:
        _mount_call("remount", "", target, None, propagation, "")


def supports_recursive_readonly() -> str:
    """"" when this kernel can make a mount tree read-only (mount_setattr(2), Linux 5.12), else why not."""
    release = os.uname().release
    try:
        version = tuple(int(part) for part in release.split("-")[0].split(".")[:2])
    except ValueError:
        return f"cannot tell the kernel version from {release!r}"
    if version < (5, 12):
        return f"recursive read-only mounts need Linux 5.12 or later (mount_setattr), this kernel is {release}"
    return ""


def unmount(target: str) -> None:
    """Detach ``target`` (lazily, so a busy file in it does not block the daemon)."""
    _call(_libc.umount2(target.encode(), MNT_DETACH), f"unmount {target}")


def is_mountpoint(path: str) -> bool:
    """Whether ``path`` is the target of a mount (mountinfo, since a bind of a same-device dir fools st_dev)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split(" ", 5)[4].replace("\\040", " ")
            if target == real:
                return True
    return False
