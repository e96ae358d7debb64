"""Commit a container's snapshot into an image, and export its merged root filesystem."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from dockyard import errdefs
from dockyard.daemon.interfaces import CommitTarget
from dockyard.daemon.images.service import ImageService
from tests.integration.image_harness import BUSYBOX_ID, Harness


class Containers:
    def __init__(self, target: CommitTarget) -> None:
        self.target = target
        self.paused: list[tuple[str, bool]] = []

    def commit_target(self, ref: str) -> CommitTarget:
        if ref not in (self.target.id, self.target.id[:12]):
            raise errdefs.no_such_container(ref)
        return self.target

    @contextmanager
    def paused_for_commit(self, container_id: str, pause: bool):
        self.paused.append((container_id, pause))
        yield


def _container(h: Harness, key: str) -> Path:
    """A container's snapshot over busybox, changed: a new file, a deleted file (overlay whiteout)."""
    h.load("busybox-docker-save.tar")
    h.service.prepare_rootfs(key, h.service.resolve("busybox"))
    upper = h.service.rootfs_upper(key)
    (upper / "hello.txt").write_text("committed\n")
    (upper / "etc").mkdir()
    os.mknod(upper / "etc" / "group", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    return upper


def test_commit_container(h):
    cid = "c0ffee" + "0" * 58
    _container(h, cid)
    containers = Containers(CommitTarget(id=cid, image_id=BUSYBOX_ID, snapshot_key=cid, config={
        "Env": ["PATH=/bin", "FOO=bar"], "Cmd": ["sh", "-c", "echo hi"], "Labels": {"a": "1"}, "Hostname": "c0ffee"}))
    h.service = ImageService(h.config, h.db, h.content, h.layers, h.snapshotter, h.events, h.usage,
                             commit_source=containers)
    result = h.service.commit_container(cid[:12], repo="committed", tag_name="v1", author="me", comment="snap",
                                        changes=["EXPOSE 8080"], pause=True, overrides={"Labels": {"b": "2"}})
    assert containers.paused == [(cid, True)]
    body = msgspec.to_builtins(h.service.inspect("committed:v1"))
    assert body["Id"] == result.id and body["Parent"] == BUSYBOX_ID
    assert body["Author"] == "me" and body["Comment"] == "snap"
    config = body["Config"]
    assert config["Env"] == ["PATH=/bin", "FOO=bar"] and config["Cmd"] == ["sh", "-c", "echo hi"]
    assert config["Labels"] == {"a": "1", "b": "2"} and config["ExposedPorts"] == {"8080/tcp": {}}
    assert len(body["RootFS"]["Layers"]) == 2
    history = msgspec.to_builtins(h.service.history("committed:v1"))
    assert [item["Id"] for item in history] == [result.id, BUSYBOX_ID]
    assert history[0]["CreatedBy"] == "sh -c echo hi" and history[0]["Comment"] == "snap"
    top = h.service.layer_dirs(h.service.resolve("committed:v1"))[0]
    assert (top / "hello.txt").read_text() == "committed\n"
    assert stat.S_ISCHR((top / "etc" / "group").lstat().st_mode)  # the whiteout went through the layer
    assert ("container", "commit", cid, {"comment": "snap", "imageID": result.id, "imageRef": "committed:v1"}) \
        in h.events.seen
    # the parent cannot go while its child is there
    h.service.remove_rootfs(cid)
    with pytest.raises(errdefs.Conflict, match="image has dependent child images"):
        h.service.remove(BUSYBOX_ID, force=True)
    listed = {s.id: s for s in h.service.list()}
    assert listed[result.id].parent_id == BUSYBOX_ID
    with pytest.raises(errdefs.NotFound, match="No such container: nope"):
        h.service.commit_container("nope")


def test_export_merged_rootfs(h):
    key = "e" * 64
    _container(h, key)
    mounts = h.snapshotter.mounts(key)
    chunks = h.service.export(mounts)
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name.lstrip("./").rstrip("/") for m in tar.getmembers()}
        assert tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("hello.txt"))).read() \
            == b"committed\n"
    assert "bin/busybox" in names and "etc/passwd" in names
    assert "etc/group" not in names  # deleted in the container
    assert not any(name.startswith(".wh.") or "/.wh." in name for name in names)
    with open("/proc/self/mounts") as f:
        assert "dockyard-export-" not in f.read()
    h.service.remove_rootfs(key)


def test_forced_rmi_keeps_layers_of_a_stopped_container(h):
    key = "d" * 64
    _container(h, key)
    h.usage.by_image[BUSYBOX_ID] = [(key, False)]
    out = msgspec.to_builtins(h.service.remove("busybox", force=True))
    assert out == [{"Untagged": "busybox:latest"}]  # a used image's last tag: untag only
    out = msgspec.to_builtins(h.service.remove(BUSYBOX_ID, force=True))
    assert out == [{"Deleted": BUSYBOX_ID}]  # no layer deleted: the container sits on it
    assert h.rows("images") == 0 and h.rows("layers") == 1
    assert h.service.recover() == []  # not an orphan while the snapshot is there
    h.usage.by_image.clear()
    h.service.remove_rootfs(key)
    assert h.rows("layers") == 0 and h.layer_dirs() == []
