"""The container's filesystem view, built inside its new mount namespace.

Runs in the container init before pivot_root (``prepare``) and after it
(``finalize``): propagation, the rootfs bind, the spec's mounts (with a cgroup
v1 mount expanded into one mount per hierarchy), /dev nodes and symlinks,
pivot_root, then masked and read-only paths and a read-only root. Every
destination is resolved inside the rootfs without following a symlink out of it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from dockyard.oci.runtime_spec import Device, Mount, Spec
from dockyard.runtime import syscalls as sc
from dockyard.runtime.cgroups import is_unified
from dockyard.runtime.cgroups.v1 import hierarchies

# OCI mount option -> (flags to set, flags to clear)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "sync": (sc.MS_SYNCHRONOUS, 0),
    "async": (0, sc.MS_SYNCHRONOUS),
    "dirsync": (sc.MS_DIRSYNC, 0),
    "remount": (sc.MS_REMOUNT, 0),
    "mand": (sc.MS_MANDLOCK, 0),
    "nomand": (0, sc.MS_MANDLOCK),
    "noatime": (sc.MS_NOATIME, 0),
    "atime": (0, sc.MS_NOATIME),
    "nodiratime": (sc.MS_NODIRATIME, 0),
    "diratime": (0, sc.MS_NODIRATIME),
    "relatime": (sc.MS_RELATIME, 0),
    "norelatime": (0, sc.MS_RELATIME),
    "strictatime": (sc.MS_STRICTATIME, 0),
    "nostrictatime": (0, sc.MS_STRICTATIME),
    "nosymfollow": (sc.MS_NOSYMFOLLOW, 0),
    "bind": (sc.MS_BIND, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0),
}
PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# runc's recursive options: (MOUNT_ATTR_* to set, to clear) on the mount and all its submounts,
# applied with mount_setattr(2) once the mount is made ("rro": a read-only bind whose submounts
# are read-only too, which a remount with MS_REC cannot do)
RECURSIVE_ATTRS: dict[str, tuple[int, int]] = {
    "rro": (sc.MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (sc.MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (sc.MOUNT_ATTR_NODEV, 0),
    "rdev": (0, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (sc.MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (sc.MOUNT_ATTR_NODIRATIME, 0),
    "rdiratime": (0, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (sc.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rrelatime": (sc.MOUNT_ATTR_RELATIME, sc.MOUNT_ATTR__ATIME),
    "rnoatime": (sc.MOUNT_ATTR_NOATIME, sc.MOUNT_ATTR__ATIME),
    "rstrictatime": (sc.MOUNT_ATTR_STRICTATIME, sc.MOUNT_ATTR__ATIME),
}
# Options that are runtime instructions, not mount data.
_IGNORED = {"tmpcopyup", "defaults"}
# statvfs flags a bind mount inherits and an unprivileged remount may not clear
_LOCKED = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, data string) from OCI mount options."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            set_bits, clear_bits = _FLAGS[option]
            flags = (flags | set_bits) & ~clear_bits
        elif option in PROPAGATION:
            propagation = PROPAGATION[option]
        elif option not in _IGNORED and option not in RECURSIVE_ATTRS:
            data.append(option)
    return flags, propagation, ",".join(data)


def set_recursive_attrs(dest: str, options: list[str]) -> None:
    """Apply the recursive options (``RECURSIVE_ATTRS``) among ``options`` to the mount tree at dest."""
    attr_set = attr_clr = 0
    for option in options:
        if option in RECURSIVE_ATTRS:
            set_bits, clear_bits = RECURSIVE_ATTRS[option]
            attr_set = (attr_set & ~clear_bits) | set_bits
            attr_clr = (attr_clr & ~set_bits) | clear_bits
    if attr_set or attr_clr:
        sc.mount_setattr(dest, attr_set, attr_clr)


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with symlinks resolved as if ``root`` were "/" (never escapes it)."""
    pending = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {unsafe} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _locked_flags(path: str) -> int:
    return os.statvfs(path).f_flag & _LOCKED


def _ensure_target(path: str, as_dir: bool) -> None:
    if os.path.lexists(path):
        return
    if as_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def bind(source: str, dest: str, flags: int, propagation: int) -> None:
    """Bind ``source`` at ``dest``; other flags need a remount (the kernel ignores them on the bind)."""
    sc.mount(source, dest, None, flags & (sc.MS_BIND | sc.MS_REC))
    extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | extra | (_locked_flags(dest) & ~sc.MS_RDONLY))
    if propagation:
        sc.mount(None, dest, None, propagation)


def _mount_cgroup(dest: str, flags: int) -> None:
    if is_unified():
        sc.mount("cgroup2", dest, "cgroup2", flags)
        return
    # cgroup v1: a tmpfs with one cgroupfs per hierarchy; inside the cgroup namespace each shows
    # the container's own cgroup as its root
    sc.mount("tmpfs", dest, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
    by_mountpoint: dict[str, list[str]] = {}
    for controller, mountpoint in hierarchies().items():
        by_mountpoint.setdefault(mountpoint, []).append(controller)
    for mountpoint, controllers in by_mountpoint.items():
        target = os.path.join(dest, os.path.basename(mountpoint))
        os.makedirs(target, exist_ok=True)
        sc.mount("cgroup", target, "cgroup", flags, ",".join(controllers))
    if flags & sc.MS_RDONLY:
        sc.mount(None, dest, None, sc.MS_REMOUNT | flags)


def mount_one(rootfs: str, mount: Mount) -> None:
    flags, propagation, data = parse_options(mount.options)
    dest = secure_join(rootfs, mount.destination)
    kind = mount.type or ""
    if flags & sc.MS_BIND or kind == "bind":
        source = mount.source or ""
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind mount source {source} for {mount.destination} does not exist")
        _ensure_target(dest, os.path.isdir(source))
        bind(source, dest, flags | sc.MS_BIND, propagation)
        set_recursive_attrs(dest, mount.options)
        return
    _ensure_target(dest, True)
    if kind == "cgroup":
        _mount_cgroup(dest, flags)
    else:
        sc.mount(mount.source or kind, dest, kind, flags, data or None)
    if propagation:
        sc.mount(None, dest, None, propagation)
    set_recursive_attrs(dest, mount.options)


def _needs_dev_setup(spec: Spec) -> bool:
    """runc's rule: populate /dev unless the user bind-mounts their own."""
    for mount in spec.mounts:
        if mount.destination == "/dev":
            return "bind" not in mount.options and "rbind" not in mount.options and mount.type != "bind"
    return False


def create_device(rootfs: str, device: Device) -> None:
    dest = secure_join(rootfs, device.path)
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    if device.type not in kinds:
        raise OSError(errno.EINVAL, f"device {device.path}: unknown type {device.type!r}")
    mode = device.file_mode if device.file_mode is not None else 0o666
    try:
        sc.mknod(dest, kinds[device.type] | (mode & 0o7777), device.major, device.minor)
    except FileExistsError:
        return
    except PermissionError:
        # no CAP_MKNOD here: bind the host's node instead, as runc does
        _ensure_target(dest, False)
        sc.mount(device.path, dest, None, sc.MS_BIND)
        return
    os.chown(dest, device.uid or 0, device.gid or 0)


def _dev_symlinks(rootfs: str, spec: Spec) -> None:
    links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ]
    if any(m.destination == "/dev/pts" for m in spec.mounts):
        links.append(("pts/ptmx", "/dev/ptmx"))
    for target, name in links:
        path = os.path.join(rootfs, name.lstrip("/"))
        try:
            os.symlink(target, path)
        except FileExistsError:
            pass


def prepare(spec: Spec, rootfs: str, enter_cgroup_ns: Callable[[], None]) -> None:
    """Everything before pivot_root: propagation, rootfs bind, mounts, /dev.

    ``enter_cgroup_ns`` runs once, as late as possible: just before the first cgroup mount
    (which must see the container's cgroup namespace), else after the other mounts."""
    propagation = PROPAGATION.get(spec.linux.rootfs_propagation or "", sc.MS_SLAVE | sc.MS_REC)
    sc.mount(None, "/", None, propagation)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    in_cgroup_ns = False
    for mount in spec.mounts:
        if mount.type == "cgroup" and not in_cgroup_ns:
            enter_cgroup_ns()
            in_cgroup_ns = True
        mount_one(rootfs, mount)
    if not in_cgroup_ns:
        enter_cgroup_ns()
    if _needs_dev_setup(spec):
        for device in spec.linux.devices:
            create_device(rootfs, device)
        _dev_symlinks(rootfs, spec)


def pivot(rootfs: str) -> None:
    """pivot_root(".", ".") then lazily detach the old root stacked underneath (runc's trick)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        # keep host mount events from propagating into the detached tree while it goes
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.fchdir(new_root)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def mask_path(path: str) -> None:
    """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    try:
        if is_dir:
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
    except FileNotFoundError:
        return


def readonly_path(path: str) -> None:
    if not os.path.lexists(path):
        return
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | _locked_flags(path))


def write_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise OSError(err.errno, f"write sysctl {key}={value}: {err.strerror}") from None


def finalize(spec: Spec) -> None:
    """After pivot_root: sysctls, masked and read-only paths, read-only root."""
    write_sysctls(spec.linux.sysctl)
    for path in spec.linux.readonly_paths:
        readonly_path(path)
    for path in spec.linux.masked_paths:
        mask_path(path)
    if spec.root.readonly:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags("/"))
