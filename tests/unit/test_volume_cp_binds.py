"""docker cp's view of a container's volumes: the host paths come from the volume service."""

from __future__ import annotations

from dockyard.apitypes.container import MountPoint
from dockyard.daemon.containers.archive import Bind, view_binds


def test_volume_sources_are_kept_beneath_the_volume_content() -> None:
    paths = {"loc": "/data/volumes/loc/_data", "plug": "/plugins/plug/mnt", "never": ""}
    mounts = [
        MountPoint(type="volume", name="loc", source="/data/volumes/loc/_data/a/b", destination="/deep/sub", rw=True),
        MountPoint(type="volume", name="plug", source="/plugins/plug/mnt", destination="/p", rw=False),
        MountPoint(type="volume", name="never", source="", destination="/n", rw=True),
        MountPoint(type="bind", source="/host/dir", destination="/b", rw=True),
        MountPoint(type="tmpfs", source="", destination="/t", rw=True),
    ]
    binds = view_binds(mounts, {}, lambda name: paths[name])
    assert binds == (Bind("/plugins/plug/mnt", "/p", False, "/plugins/plug/mnt"),
                     Bind("/host/dir", "/b", True, ""),
                     Bind("/data/volumes/loc/_data/a/b", "/deep/sub", True, "/data/volumes/loc/_data"))


def test_a_source_outside_the_volume_content_is_not_trusted_as_beneath_it() -> None:
    mounts = [MountPoint(type="volume", name="v", source="/data/volumes/v/_data-other", destination="/x", rw=True)]
    assert view_binds(mounts, {}, lambda name: "/data/volumes/v/_data")[0].beneath == ""
