"""The container's root filesystem mounts, done by the shim in the host mount namespace.

The snapshotter hands ``dockyard.mount.Mount`` values (an overlay over the image's
layers); the shim mounts them at the spec's ``root.path`` before ``runtime create``
and unmounts them at shutdown (also used by the daemon to mount a stopped container's
rootfs for export). The kernel calls are the runtime's syscalls module.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.runtime import syscalls as sc
from dockyard.runtime.rootfs import parse_options, secure_join


def split_options(options: tuple[str, ...]) -> tuple[int, str]:
    """(mount flags incl. propagation, data) as mount(2) takes them, from mount(8)-style words."""
    flags, propagation, data = parse_options(list(options))
    return flags | propagation, data


def mount_target(root: Path, m: Mount) -> Path:
    return root / m.target.lstrip("/") if m.target else root


def mount_all(mounts: tuple[Mount, ...], root: Path) -> None:
    """Mount each of ``mounts`` below ``root`` (an empty target means ``root`` itself); on failure
    undo the ones already made and raise System with what failed."""
    done: list[Mount] = []
    try:
        for m in mounts:
            target = str(mount_target(root, m))
            flags, data = split_options(m.options)
            try:
                sc.mount(m.source, target, m.type, flags, data or None)
                if flags & sc.MS_BIND and flags & sc.MS_RDONLY:  # bind ignores ro until remounted
                    sc.mount(None, target, None, flags | sc.MS_REMOUNT, None)
            except OSError as err:
                raise errdefs.System(f"mount {m.type} {m.source} on {target} "
                                     f"({m.option_string()}): {os.strerror(err.errno)}") from None
            done.append(m)
    except errdefs.System:
        unmount_all(tuple(done), root)
        raise


def unmount_all(mounts: tuple[Mount, ...], root: Path) -> None:
    """Unmount in reverse order; a busy mount is detached (lazily unmounted) rather than left."""
    for m in reversed(mounts):
        target = str(mount_target(root, m))
        try:
            sc.umount2(target, 0)
        except OSError as err:
            if err.errno == errno.EBUSY:
                sc.umount2(target, sc.MNT_DETACH)
            elif err.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
                raise


def make_working_dir(root: Path, cwd: str) -> None:
    """The process's working directory inside the mounted rootfs, made if missing (root's, 0755),
    as moby's SetupWorkingDirectory does for any runtime: ``docker run -w /new`` starts there."""
    if cwd in ("", "/"):
        return
    path = secure_join(str(root), cwd)
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as err:
        if os.path.exists(path) and not os.path.isdir(path) or err.errno in (errno.EEXIST, errno.ENOTDIR):
            raise errdefs.InvalidParameter(f"Cannot mkdir: {os.path.normpath(cwd)} is not a directory") from None
        raise errdefs.System(f"mkdir {cwd} in the container's rootfs: {err.strerror}") from None
