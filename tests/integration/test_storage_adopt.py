"""A snapshot's upper dir adopted (moved, ``register_dir``) or copied (``register_copy``) as a
layer (``OverlaySnapshotter.commit``): the same diff ID, tar and on-disk layer as the tar path
(``register`` of ``diff``), and a kill -9 at any step leaves either no layer or a whole one.

Runs as root on the real kernel; mounts are undone in a finally, everything is under tmp_path."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter
from tests.integration.test_storage_overlay import docker_save, mounted, register_all, stores, tree  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for overlay mounts")


def _make_changes(rootfs: Path) -> None:
    """Every kind of change a container or a COPY makes, over the whiteouts fixture's layers."""
    (rootfs / "two.txt").write_text("changed\n")  # copy-up of a lower file
    (rootfs / "keep").unlink()  # one of two hardlinks
    subprocess.run(["rm", "-rf", str(rootfs / "dir"), str(rootfs / "etc/group")], check=True)
    subprocess.run(["rm", "-rf", str(rootfs / "bin")], check=True)
    (rootfs / "bin").mkdir()  # over a deleted lower dir: opaque
    (rootfs / "bin/only").write_text("alone")
    (rootfs / "new/deeper").mkdir(parents=True)
    (rootfs / "new/deeper/file").write_bytes(os.urandom(3 << 20))  # more than one tar chunk
    os.link(rootfs / "new/deeper/file", rootfs / "new/link")
    os.symlink("../two.txt", rootfs / "new/sym")
    os.mkfifo(rootfs / "new/fifo")
    os.mknod(rootfs / "new/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(rootfs / "etc/passwd", 0o4600)
    os.chown(rootfs / "hardlink", 123, 456)
    os.setxattr(rootfs / "new/deeper/file", "user.origin", b"container")
    os.utime(rootfs / "new/deeper", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(rootfs / "new/sock"))  # not in a layer (Docker skips sockets too)
    finally:
        sock.close()
    os.utime(rootfs / "new", ns=(1_500_000_000_500_000_000, 1_500_000_000_500_000_000))


def _layer_state(root: Path) -> dict[str, tuple]:
    """Everything about a layer directory that overlay or a later tar could see: type, mode,
    owner, links and mtime in ns (not of whiteouts: extraction makes them, overlay links them
    to one inode), content, and every xattr, overlay's own included."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = st.st_rdev
            xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                      for k in os.listxattr(path, follow_symlinks=False)}
            times = None if whiteout else st.st_mtime_ns  # atime: reading a hardlink's twin moves it
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                st.st_gid, None if whiteout else st.st_nlink, what, xattrs, times)
    return out


def test_adopted_upper_dir_is_the_tar_paths_layer(stores, docker_save, tmp_path):
    content, layers, snapshots, _ = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"])
    with mounted(snapshots.prepare("work", top), tmp_path / "work") as rootfs:
        _make_changes(rootfs)
        expected_view = tree(rootfs)
    diff = b"".join(snapshots.diff("work"))
    with tarfile.open(fileobj=io.BytesIO(diff)) as tar:
        names = tar.getnames()
    assert {".wh.dir", "etc/.wh.group", "bin/.wh..wh..opq", "new/link"} <= set(names)
    assert "new/sock" not in names

    # the tar path, in a store of its own
    other_db = Database(tmp_path / "other.sqlite")
    try:
        other = LayerStore(tmp_path / "other-layers", ContentStore(tmp_path / "other-content"), other_db)
        other_top = register_all(other, root, manifest["Layers"])
        by_tar = other.register(io.BytesIO(diff), other_top)
        tar_state = _layer_state(by_tar.path)
    finally:
        other_db.close()

    # copied from the snapshot, still mounted (a running container's commit): the same layer
    with mounted(snapshots.mounts("work"), tmp_path / "work") as rootfs:
        copied = snapshots.commit("work", keep=True)
        assert tree(rootfs) == expected_view  # the container's view is untouched
    assert (copied.diff_id, copied.chain_id, copied.size) == (by_tar.diff_id, by_tar.chain_id, by_tar.size)
    assert _layer_state(copied.path) == tar_state
    assert not content.has(copied.diff_id)
    with layers.tar_stream(copied.chain_id) as f:
        assert f.read() == diff
    empty = chain_of_empty(layers, top)  # a child that keeps the parents when copied goes
    assert layers.release(copied.chain_id) == [copied.chain_id]
    assert not content.has(copied.diff_id)

    upper = snapshots.upper_dir("work")
    adopted = snapshots.commit("work")
    assert not snapshots.exists("work") and not upper.exists()
    assert adopted.diff_id == by_tar.diff_id == "sha256:" + hashlib.sha256(diff).hexdigest()
    assert (adopted.chain_id, adopted.parent, adopted.size) == (by_tar.chain_id, top, by_tar.size)
    assert layers.get(adopted.chain_id) == adopted
    assert _layer_state(adopted.path) == tar_state
    assert stat.S_IMODE(adopted.path.stat().st_mode) == 0o755 and os.listxattr(adopted.path) == []

    # no diff blob until one is asked for; then the exact tar, kept
    assert not content.has(adopted.diff_id)
    with layers.tar_stream(adopted.chain_id) as f:
        assert f.read() == diff
    assert content.has(adopted.diff_id)

    with mounted(snapshots.prepare("check", adopted.chain_id), tmp_path / "check") as rootfs:
        view = tree(rootfs)
        assert sorted(os.listdir(rootfs / "bin")) == ["only"]
    del expected_view["new/sock"]
    assert view == expected_view
    snapshots.remove("check")

    # the same changes again: the existing layer, and the second upper dir is gone too
    with mounted(snapshots.prepare("again", top), tmp_path / "again") as rootfs:
        pass
    assert snapshots.commit("again").chain_id == empty
    assert layers.release(adopted.chain_id) == [adopted.chain_id]
    assert not content.has(adopted.diff_id)
    assert [p.name for p in snapshots.root.iterdir()] == [".init"]


def chain_of_empty(layers: LayerStore, top: str) -> str:
    """The chain of Docker's empty layer (1024 zero bytes) on ``top``."""
    return layers.register(io.BytesIO(bytes(1024)), top).chain_id


def test_regenerated_diff_of_a_changed_layer_is_refused(stores, tmp_path):
    content, layers, snapshots, _ = stores
    snapshots.prepare("work", None)
    (snapshots.upper_dir("work") / "file").write_bytes(b"data")
    layer = snapshots.commit("work")
    (layer.path / "file").write_bytes(b"DATA")  # what no one may do to a layer
    with pytest.raises(errdefs.System, match="does not match its diff ID"):
        layers.tar_stream(layer.chain_id)
    assert not content.has(layer.diff_id)
    assert list((content.root / "ingest").iterdir()) == []


def test_failed_adoption_leaves_nothing(stores, monkeypatch):
    _, layers, snapshots, db = stores
    snapshots.prepare("work", None)
    (snapshots.upper_dir("work") / "file").write_bytes(b"data")

    def broken(path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dockyard.storage.layers.syncfs", broken)
    with pytest.raises(OSError):
        snapshots.commit("work")
    assert not snapshots.exists("work")
    assert list(layers.root.iterdir()) == []
    assert db.query("SELECT COUNT(*) FROM layers") == [(0,)]
    with pytest.raises(errdefs.NotFound):
        snapshots.commit("work")


_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from dockyard.storage import layers as layers_mod
    from dockyard.storage.content import ContentStore
    from dockyard.storage.layers import LayerStore
    from dockyard.storage.metadata import Database
    from dockyard.storage.snapshotter import OverlaySnapshotter

    base, how, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def stop_at(name, real):
        def wrapper(*args, **kwargs):
            if name == point:
                print("ready", flush=True)
                time.sleep(60)
            return real(*args, **kwargs)
        return wrapper

    layers_mod.adopt_changes = stop_at("adopt", layers_mod.adopt_changes)
    layers_mod.clone_changes = stop_at("clone", layers_mod.clone_changes)
    layers_mod.syncfs = stop_at("syncfs", layers_mod.syncfs)
    layers_mod.fsync_dir = stop_at("fsync_dir", layers_mod.fsync_dir)
    db = Database(base / "db.sqlite")
    store = LayerStore(base / "layers", ContentStore(base / "content"), db)
    snapshots = OverlaySnapshotter(base / "snapshots", store)
    snapshots.prepare("work", None)
    (snapshots.upper_dir("work") / "file").write_bytes(b"x" * 100000)
    snapshots.commit("work", keep=how == "copy")
    print("done", flush=True)
""")


@pytest.mark.parametrize("how, point", [("move", "adopt"), ("move", "syncfs"), ("move", "fsync_dir"), ("move", "none"),
                                        ("copy", "clone"), ("copy", "syncfs"), ("copy", "none")])
def test_kill_9_during_adoption_leaves_no_half_layer(tmp_path, how, point):
    """Killed while copying or adopting, before the layer is durable, after the rename into
    place, or not at all: after the start-up gc there is either no trace or a whole layer with
    its row (and a copied snapshot is untouched)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), how, point], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parents[2])
    try:
        line = child.stdout.readline().strip()  # type: ignore[union-attr]
        assert line == ("done" if point == "none" else "ready"), line
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()  # type: ignore[union-attr]
    db = Database(tmp_path / "db.sqlite")
    try:
        store = LayerStore(tmp_path / "layers", ContentStore(tmp_path / "content"), db)
        snapshots = OverlaySnapshotter(tmp_path / "snapshots", store)
        store.gc()
        snapshots.gc()
        rows = db.query("SELECT chain_id, cache_id FROM layers")
        dirs = sorted(p.name for p in store.root.iterdir())
        if point == "none":
            (chain_id, cache_id), = rows
            assert dirs == [cache_id]
            assert (store.root / cache_id / "file").read_bytes() == b"x" * 100000
            with store.tar_stream(chain_id) as f:
                assert hashlib.sha256(f.read()).hexdigest() == chain_id.removeprefix("sha256:")
        else:
            assert rows == [] and dirs == []
        if how == "copy":
            assert (snapshots.upper_dir("work") / "file").read_bytes() == b"x" * 100000
        for key in [p.name for p in snapshots.root.iterdir() if p.name != ".init"]:
            snapshots.remove(key)  # a snapshot left by the killed build: its owner removes it at start
    finally:
        db.close()


def test_upper_dir_on_another_filesystem_goes_through_the_tar(stores, monkeypatch):
    content, layers, snapshots, _ = stores
    snapshots.prepare("work", None)
    upper = snapshots.upper_dir("work")
    (upper / "file").write_bytes(b"data")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))  # a whiteout
    expected = hashlib.sha256(b"".join(snapshots.diff("work"))).hexdigest()
    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):
        if Path(src) == upper:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr("dockyard.storage.layers.os.rename", rename)
    layer = snapshots.commit("work")
    assert layer.diff_id == "sha256:" + expected
    assert content.has(layer.diff_id)  # the tar path keeps its blob
    assert (layer.path / "file").read_bytes() == b"data"
    assert not snapshots.exists("work") and not upper.exists()
