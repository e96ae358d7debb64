"""Who the container process runs as: rlimits, groups, uid/gid, umask, HOME.

Rlimits are set while still root; note that without CAP_SYS_RESOURCE (the case
on some hosts) a hard limit cannot be raised above the runtime's own, and the
error says so. The uid switch keeps capabilities (PR_SET_KEEPCAPS) so that the
spec's sets can be applied afterwards; execve then recomputes them for a
non-root user exactly as the kernel does for runc.
"""

from __future__ import annotations

import errno
import os
import resource
import stat

from dockyard.oci.runtime_spec import Rlimit, User
from dockyard.runtime import syscalls


def set_rlimits(rlimits: list[Rlimit]) -> None:
    for limit in rlimits:
        number = getattr(resource, limit.type, None)
        if number is None:
            raise OSError(0, f"unknown rlimit type {limit.type}")
        try:
            resource.setrlimit(number, (limit.soft, limit.hard))
        except (ValueError, OSError) as err:
            raise OSError(1, f"error setting rlimit type {limit.type} to {limit.soft}:{limit.hard}: {err}") from None


def give_stdio_to(uid: int, gid: int) -> None:
    """Make fds 0-2 (the pty slave or the shim's pipes) the user's, as runc does, so a
    non-root process can still reopen /dev/stdout or /proc/self/fd/1. /dev/null stays root's."""
    for fd in (0, 1, 2):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if info.st_uid == uid or (stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)):
            continue
        try:
            os.fchown(fd, uid, gid)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise


def switch_user(user: User) -> None:
    """setgroups + setresgid + setresuid, keeping capabilities across the uid change."""
    if user.uid != 0:
        give_stdio_to(user.uid, user.gid)
    syscalls.setgroups(list(user.additional_gids or []))
    syscalls.setresgid(user.gid)
    if user.uid != 0:
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
        syscalls.setresuid(user.uid)
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
    if user.umask is not None:
        os.umask(user.umask)
    else:
        os.umask(0o022)


def home_of(uid: int, passwd_path: str = "/etc/passwd") -> str:
    """HOME for ``uid`` from the container's /etc/passwd, "/" if unknown (runc's rule)."""
    try:
        with open(passwd_path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"
