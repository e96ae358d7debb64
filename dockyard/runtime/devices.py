"""Host device nodes as OCI data, for ``--device`` and ``--privileged`` (the daemon builds the spec).

``device_from_path`` reads one host node (following symlinks, as Docker does)
into the ``Device`` to create in the container and the ``DeviceCgroup`` rule
that lets the container use it. ``host_devices`` lists every node under /dev
for a privileged container, skipping what Docker skips (/dev/pts, /dev/shm,
/dev/mqueue, the console-ish nodes the runtime makes itself).
"""

from __future__ import annotations

import os
import stat

from dockyard import errdefs
from dockyard.oci.runtime_spec import Device, DeviceCgroup

_SKIP_DIRS = {"pts", "shm", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_SKIP_NODES = {"/dev/console", "/dev/ptmx"}


def _device(host_path: str, container_path: str) -> Device | None:
    info = os.stat(host_path)
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        return None
    return Device(
        path=container_path,
        type=kind,
        major=os.major(info.st_rdev),
        minor=os.minor(info.st_rdev),
        file_mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
    )


def device_from_path(host_path: str, container_path: str = "", permissions: str = "rwm") -> tuple[Device, DeviceCgroup]:
    """``--device host[:container[:perms]]`` -> (node to create, cgroup rule)."""
    try:
        device = _device(host_path, container_path or host_path)
    except FileNotFoundError:
        raise errdefs.InvalidParameter(f"error gathering device information while adding custom device {host_path!r}: no such file or directory") from None
    if device is None:
        raise errdefs.InvalidParameter(f"error gathering device information while adding custom device {host_path!r}: not a device node")
    if not permissions or set(permissions) - set("rwm"):
        raise errdefs.InvalidParameter(f"invalid device permissions {permissions!r}: only r, w, m allowed")
    rule = DeviceCgroup(allow=True, type=device.type, major=device.major, minor=device.minor, access=permissions)
    return device, rule


def host_devices(root: str = "/dev") -> list[Device]:
    """Every char/block node under ``root`` (for --privileged), by its host path."""
    found: list[Device] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not (directory == root and d in _SKIP_DIRS)]
        for name in names:
            path = os.path.join(directory, name)
            if path in _SKIP_NODES or os.path.islink(path):
                continue
            try:
                device = _device(path, path)
            except OSError:
                continue
            if device is not None:
                found.append(device)
    return found
