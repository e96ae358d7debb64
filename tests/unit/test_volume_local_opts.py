"""The local driver's ``o=``/``type``/``device`` options, as Docker's: what reaches mount(2).

No NFS or CIFS server here: the kernel seam (volume.kernel's libc) is replaced by a recorder
for those, and the real kernel answers the cases it can (``o=loop``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.volume import kernel, local
from dockyard.volume.local import LocalDriver


class RecordingLibc:
    """Stands in for libc's mount/umount2 in volume.kernel: records, succeeds."""

    def __init__(self) -> None:
        self.mounts: list[tuple[bytes, bytes, bytes | None, int, bytes | None]] = []

    def mount(self, source, target, fstype, flags, data) -> int:
        self.mounts.append((source, target, fstype, flags, data))
        return 0

    def umount2(self, target, flags) -> int:
        return 0


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="dy-vol-opts-"))
    try:
        yield path
    finally:
        subprocess.run(["sh", "-c", f"grep -o ' {path}[^ ]*' /proc/self/mountinfo | sort -r | "
                                    "xargs -r -n1 umount -l"], check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def libc(monkeypatch):
    fake = RecordingLibc()
    monkeypatch.setattr(kernel, "_libc", fake)
    return fake


def _mount(root: Path, options: dict[str, str]) -> str:
    driver = LocalDriver(root / "volumes")
    driver.create("vol", options)
    return driver.mount("vol", "m1")


def test_nfs_addr_host_name_is_resolved(root, libc, monkeypatch):
    asked = []
    monkeypatch.setattr(local, "resolve_ip", lambda host: asked.append(host) or "192.0.2.7")
    path = _mount(root, {"type": "nfs", "device": ":/export/data", "o": "addr=nfs.example,rw,nfsvers=4,nosuid"})
    assert asked == ["nfs.example"]
    assert libc.mounts == [(b":/export/data", path.encode(), b"nfs", kernel.MS_NOSUID,
                            b"addr=192.0.2.7,nfsvers=4")]


def test_nfs_addr_ipv4_is_kept_and_localhost_resolves_for_real(root, libc):
    _mount(root, {"type": "nfs", "device": ":/x", "o": "addr=10.1.2.3"})
    assert libc.mounts[-1][4] == b"addr=10.1.2.3"
    device, fstype, opts = local.mount_arguments({"type": "nfs", "device": ":/x", "o": "addr=localhost,ro"},
                                                 local.resolve_ip)
    assert (device, fstype, opts) == (":/x", "nfs", "addr=127.0.0.1,ro")


def test_cifs_device_host_is_resolved_unless_addr_is_given(monkeypatch):
    resolve = {"fileserver": "192.0.2.9", "other": "192.0.2.10"}.__getitem__
    assert local.mount_arguments({"type": "cifs", "device": "//fileserver/share/dir", "o": "username=u"},
                                 resolve) == ("//192.0.2.9/share/dir", "cifs", "username=u")
    assert local.mount_arguments({"type": "cifs", "device": "//fileserver/share", "o": "addr=other"},
                                 resolve) == ("//fileserver/share", "cifs", "addr=192.0.2.10")


def test_cifs_port_in_device_is_refused_at_create(root):
    driver = LocalDriver(root / "volumes")
    with pytest.raises(errdefs.InvalidParameter, match="port not allowed in CIFS device URL, include 'port' in 'o='"):
        driver.create("cv", {"type": "cifs", "device": "//host:445/share"})
    assert not (root / "volumes/cv").exists()


def test_unresolvable_address_is_docker_s_error(root, libc):
    with pytest.raises(errdefs.System, match=r"^error while mounting volume '.*/vol/_data': error resolving passed in "
                                             r"network volume address: lookup no-such-host\.invalid: no such host$"):
        _mount(root, {"type": "nfs", "device": ":/x", "o": "addr=no-such-host.invalid"})
    assert libc.mounts == []


def test_loop_is_mount8_s_and_the_kernel_refuses_it(root):
    """Docker passes mount(8)-only words to the kernel as data; so do we, with its message."""
    image = root / "disk.img"
    image.write_bytes(b"\0" * 65536)
    with pytest.raises(errdefs.System) as info:
        _mount(root, {"type": "ext4", "device": str(image), "o": "loop,ro"})
    data = root / "volumes/vol/_data"
    assert str(info.value) == (f"error while mounting volume '{data}': failed to mount local volume: "
                               f"mount {image}:{data}, flags: 0x1, data: loop: invalid argument")
    assert not kernel.is_mountpoint(str(data))


def test_password_is_masked_in_errors(root, monkeypatch):
    class Failing(RecordingLibc):
        def mount(self, *args) -> int:
            import ctypes
            ctypes.set_errno(13)
            return -1
    monkeypatch.setattr(kernel, "_libc", Failing())
    with pytest.raises(errdefs.System) as info:
        _mount(root, {"type": "cifs", "device": "//10.0.0.1/s", "o": "username=u,password=hunter2"})
    assert "hunter2" not in str(info.value)
    assert str(info.value).endswith("data: username=u,password=********: permission denied")
