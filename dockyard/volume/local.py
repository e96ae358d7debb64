"""The local volume driver: a directory per volume under ``<data-root>/volumes``.

Layout (Docker's)::

    volumes/<name>/_data       the volume's content, or the mountpoint of its device
    volumes/<name>/opts.json   {"type", "device", "o"} when the volume mounts something

A volume with options (``type``/``device``/``o``: tmpfs, a bind of a host
directory, any filesystem mount(8) accepts) is mounted on ``_data`` when its
first user mounts it and unmounted when its last one unmounts. As Docker's
driver, an NFS/CIFS ``addr=`` host name (and a CIFS device's host) is resolved
to an address first, since the kernel takes no names; mount(8)-only words such
as ``loop`` reach the kernel as data and fail there, with Docker's message. Removal never
follows a symlink: the tree is removed relative to a descriptor of the volumes
directory with O_NOFOLLOW at every step, after the device is unmounted.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from dockyard import errdefs
from dockyard.storage import fsutil
from dockyard.volume import kernel
from dockyard.volume.driver import DriverVolume
from dockyard.volume.names import validate_local

_VALID_OPTS = ("type", "device", "o")
# option -> the options it needs (Docker's mandatoryOpts)
_REQUIRED = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def validate_options(options: dict[str, str]) -> None:
    for key in options:
        if key == "size":
            raise errdefs.InvalidParameter("quota size requested but no quota support")
        if key not in _VALID_OPTS:
            raise errdefs.InvalidParameter(f'invalid option: "{key}"')
    if options.get("type") == "cifs" and options.get("device"):
        try:
            port = urlsplit(options["device"]).port
        except ValueError as e:
            raise errdefs.InvalidParameter(f"error parsing mount device url: {e}") from None
        if port is not None:
            raise errdefs.InvalidParameter("port not allowed in CIFS device URL, include 'port' in 'o='")
    for key, needs in _REQUIRED.items():
        if key in options:
            for need in needs:
                if need not in options:
                    raise errdefs.InvalidParameter(f'missing required option: "{need}"')


def resolve_ip(host: str) -> str:
    """Go's net.ResolveIPAddr("ip", host): the first address, an IPv4 one preferred."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise errdefs.System(f"error resolving passed in network volume address: lookup {host}: no such host") from None
    addresses = [str(info[4][0]) for info in infos]
    return next((a for a in addresses if ":" not in a), addresses[0])


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _option_value(opts: str, key: str) -> str:
    return next((word.split("=", 1)[1] for word in opts.split(",") if word.startswith(f"{key}=")), "")


def mount_arguments(options: dict[str, str], resolve: Callable[[str], str]) -> tuple[str, str, str]:
    """(device, type, o) for the mount, as Docker's getMountOptions: NFS and CIFS get ``addr=``
    as an address (the kernel takes no host names), or else a CIFS device's host resolved."""
    device, fstype, opts = options.get("device", ""), options.get("type", ""), options.get("o", "")
    if not device:
        raise errdefs.System("missing device in volume options")
    if fstype in ("nfs", "cifs"):
        addr = _option_value(opts, "addr")
        if addr and not _is_ipv4(addr):
            opts = opts.replace(f"addr={addr}", f"addr={resolve(addr)}", 1)
        elif fstype == "cifs":
            url = urlsplit(device)
            if url.hostname and url.netloc == url.hostname:  # a port is refused at create
                try:
                    ipaddress.ip_address(url.hostname)
                except ValueError:
                    device = urlunsplit(url._replace(netloc=resolve(url.hostname)))
    return device, fstype, opts


class LocalDriver:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o701)  # as Docker: users cannot list volume names, containers still traverse
        self._lock = threading.Lock()
        self._active: dict[str, set[str]] = {}  # volume name -> mount ids using its device mount

    def scope(self) -> str:
        return "local"

    def data_path(self, name: str) -> Path:
        return self.root / name / "_data"

    def options(self, name: str) -> dict[str, str]:
        try:
            return json.loads((self.root / name / "opts.json").read_bytes())
        except FileNotFoundError:
            return {}

    def create(self, name: str, options: dict[str, str]) -> None:
        validate_local(name)
        validate_options(options)
        data = self.data_path(name)
        if data.parent.is_symlink():
            raise errdefs.Conflict(f"create {name}: {data.parent} is a symbolic link")
        data.mkdir(parents=True, exist_ok=True)
        if options:
            fsutil.write_atomic(self.root / name / "opts.json", json.dumps(options).encode())

    def mount(self, name: str, mount_id: str) -> str:
        data = self.data_path(name)
        options = self.options(name)
        with self._lock:
            users = self._active.setdefault(name, set())
            if options and not users and not kernel.is_mountpoint(str(data)):
                try:
                    device, fstype, opts = mount_arguments(options, resolve_ip)
                except errdefs.DockyardError as e:
                    raise type(e)(f"error while mounting volume '{data}': {e.message}") from None
                if fstype == "none" and "bind" not in opts.split(","):
                    opts = ",".join(filter(None, [opts, "bind"]))
                try:
                    kernel.mount(device, str(data), "" if fstype == "none" else fstype, opts)
                except OSError as e:
                    why = e.strerror or str(e)
                    password = _option_value(options.get("o", ""), "password")
                    if password:
                        why = why.replace(f"password={password}", "password=********")
                    raise errdefs.System(
                        f"error while mounting volume '{data}': failed to mount local volume: {why}") from None
            users.add(mount_id)
        return str(data)

    def unmount(self, name: str, mount_id: str) -> None:
        with self._lock:
            users = self._active.get(name, set())
            users.discard(mount_id)
            if not users:
                self._active.pop(name, None)
                data = self.data_path(name)
                if self.options(name) and kernel.is_mountpoint(str(data)):
                    try:
                        kernel.unmount(str(data))
                    except OSError as e:
                        raise errdefs.System(f"error while unmounting volume {name}: {e}") from None

    def remove(self, name: str) -> None:
        validate_local(name)  # a name from the database still never walks out of the root
        with self._lock:
            self._active.pop(name, None)
            data = self.data_path(name)
            if not data.parent.is_symlink() and kernel.is_mountpoint(str(data)):
                try:
                    kernel.unmount(str(data))
                except OSError as e:
                    raise errdefs.System(f"remove {name}: unmounting its device: {e}") from None
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fsutil.remove_tree(name, dir_fd=root_fd)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise errdefs.System(f"remove {name}: {e}") from None
            finally:
                os.close(root_fd)

    def path(self, name: str) -> str:
        return str(self.data_path(name))

    def get(self, name: str) -> DriverVolume:
        if not (self.root / name).is_dir():
            raise errdefs.NotFound(f"get {name}: no such volume")
        return DriverVolume(name=name, mountpoint=str(self.data_path(name)))

    def list(self) -> list[DriverVolume]:
        out = []
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False):
                out.append(DriverVolume(name=entry.name, mountpoint=str(self.data_path(entry.name))))
        return out


def tree_size(path: Path) -> int:
    """Bytes of regular files below ``path`` (hard links counted once), without following symlinks
    or crossing into other filesystems."""
    total, seen = 0, set()
    try:
        top_dev = os.lstat(path).st_dev
    except OSError:
        return 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                if st.st_dev == top_dev:
                    stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
