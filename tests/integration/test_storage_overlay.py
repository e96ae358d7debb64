"""Layers and snapshots on the real kernel: Docker-made layers stacked with a real overlay mount.

Runs as root. Every mount made here is unmounted in a finally, and everything lives under
pytest's tmp_path.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore, chain_id_of
from dockyard.storage.metadata import Database
from dockyard.storage import snapshotter
from dockyard.storage.snapshotter import OverlaySnapshotter

FIXTURES = Path("/work/shared/fixtures")
WHITEOUTS = FIXTURES / "whiteouts-docker-save.tar"
WHITEOUTS_OCI = FIXTURES / "whiteouts-oci.tar"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for overlay mounts")


@pytest.fixture
def stores(tmp_path):
    db = Database(tmp_path / "db.sqlite")
    content = ContentStore(tmp_path / "content")
    layers = LayerStore(tmp_path / "layers", content, db)
    snapshots = OverlaySnapshotter(tmp_path / "snapshots", layers)
    try:
        yield content, layers, snapshots, db
    finally:
        db.close()


@contextlib.contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    (mount,) = mounts
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", mount.type, "-o", mount.option_string(), mount.source, str(target)],
                   check=True)
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)]).returncode != 0:
            subprocess.run(["umount", "-l", str(target)])


@pytest.fixture(scope="module")
def docker_save(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The fixture archive unpacked: (dir, manifest entry, image config)."""
    root = tmp_path_factory.mktemp("whiteouts")
    with tarfile.open(WHITEOUTS) as tar:
        tar.extractall(root, filter="data")
    manifest = json.loads((root / "manifest.json").read_text())[0]
    config = json.loads((root / manifest["Config"]).read_text())
    return root, manifest, config


def register_all(layers: LayerStore, root: Path, paths: list[str]) -> str:
    top = None
    for path in paths:
        with open(root / path, "rb") as f:
            top = layers.register(f, top).chain_id
    assert top is not None
    return top


def test_docker_layers_stacked_show_what_docker_shows(stores, docker_save, tmp_path):
    content, layers, snapshots, _ = stores
    root, manifest, config = docker_save
    top = register_all(layers, root, manifest["Layers"])
    chain = layers.chain(top)
    assert [layer.diff_id for layer in reversed(chain)] == config["rootfs"]["diff_ids"]
    # the exact diffs are kept: save reproduces Docker's layer.tar byte for byte
    for layer, path in zip(reversed(chain), manifest["Layers"]):
        with layers.tar_stream(layer.chain_id) as f:
            assert f.read() == (root / path).read_bytes()

    with mounted(snapshots.prepare("fixture", top), tmp_path / "rootfs") as rootfs:
        assert os.listdir(rootfs / "opaque") == ["new"]
        assert not os.path.lexists(rootfs / "etc/removed-later")
        assert (rootfs / "etc/passwd").exists()
        assert os.stat(rootfs / "keep").st_nlink == 2
        assert os.stat(rootfs / "keep").st_ino == os.stat(rootfs / "hardlink").st_ino
        assert os.readlink(rootfs / "symlink") == "/keep"
        assert stat.S_ISFIFO(os.lstat(rootfs / "fifo").st_mode)
        assert (rootfs / "dir/sub/f").read_text().strip() == "deep"
        assert (rootfs / "two.txt").read_text().strip() == "layer two"
        assert os.path.islink(rootfs / "bin/sh")
        # Docker's init layer: mount points exist, and the image's /etc is still all there
        for mount_point in (".dockerenv", "etc/hosts", "etc/resolv.conf", "etc/hostname", "dev/console"):
            assert (rootfs / mount_point).is_file()
        assert (rootfs / "proc").is_dir() and (rootfs / "dev/pts").is_dir()
        assert os.readlink(rootfs / "etc/mtab") == "/proc/mounts"
        assert (rootfs / "etc/group").is_file()
    assert b"".join(snapshots.diff("fixture")) == bytes(1024)  # a fresh container has no changes
    snapshots.remove("fixture")


def test_oci_archive_gzip_layers_give_the_same_chain(stores, docker_save, tmp_path):
    _, layers, _, _ = stores
    _, _, config = docker_save
    oci = tmp_path / "oci"
    with tarfile.open(WHITEOUTS_OCI) as tar:
        tar.extractall(oci, filter="data")
    index = json.loads((oci / "index.json").read_text())
    blob = lambda digest: oci / "blobs" / "sha256" / digest.split(":")[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    top = None
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        assert blob(desc["digest"]).read_bytes()[:2] == b"\x1f\x8b"  # really compressed
        with open(blob(desc["digest"]), "rb") as f:
            top = layers.register(f, top, expected_diff_id=diff_id).chain_id
    expected = None
    for diff_id in config["rootfs"]["diff_ids"]:
        expected = chain_id_of(expected, diff_id)
    assert top == expected


def test_register_is_once_per_chain(stores, docker_save):
    content, layers, _, _ = stores
    root, manifest, config = docker_save
    base = root / manifest["Layers"][0]
    with open(base, "rb") as f:
        first = layers.register(f, None)
    with open(base, "rb") as f:
        again = layers.register(f, None)
    assert again == first
    assert sorted(p.name for p in layers.root.iterdir()) == [first.path.name]
    # knowing the diff ID, an existing chain is found without reading the tar at all
    assert layers.register(io.BytesIO(b""), None, expected_diff_id=first.diff_id) == first
    with open(root / manifest["Layers"][1], "rb") as f, \
            pytest.raises(errdefs.InvalidParameter, match="diff ID mismatch"):
        layers.register(f, first.chain_id, expected_diff_id=config["rootfs"]["diff_ids"][2])
    assert sorted(p.name for p in layers.root.iterdir()) == [first.path.name]
    assert os.listdir(content.root / "ingest") == []
    with pytest.raises(errdefs.NotFound):
        layers.register(io.BytesIO(b""), "sha256:" + "0" * 64)


def test_concurrent_registers_of_one_chain(stores, docker_save):
    from concurrent.futures import ThreadPoolExecutor

    content, layers, _, _ = stores
    root, manifest, _ = docker_save

    def register(_: int):
        with open(root / manifest["Layers"][0], "rb") as f:
            return layers.register(f, None)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(register, range(4)))
    assert len(set(results)) == 1
    assert [p.name for p in layers.root.iterdir()] == [results[0].path.name]
    assert os.listdir(content.root / "ingest") == []


def test_release_and_gc(stores, docker_save):
    content, layers, _, db = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"][:2])
    base = layers.get(top).parent
    with db.transaction() as cur:  # an image on the base layer keeps it
        cur.execute("INSERT INTO images (id, config, top_chain_id, created) VALUES ('sha256:x', x'7b7d', ?, '')",
                    (base,))
    assert layers.release(base) == []  # referenced by the image and by its child
    top_diff = layers.get(top).diff_id
    assert layers.release(top) == [top]
    assert not content.has(top_diff)
    assert layers.exists(base)
    with db.transaction() as cur:
        cur.execute("DELETE FROM images")
    assert layers.release(base) == [base]
    assert list(layers.root.iterdir()) == []
    with pytest.raises(errdefs.NotFound):
        layers.chain(top)
    assert layers.release(base) == []
    # crash leftovers: an extraction in progress and a renamed dir whose row never came
    (layers.root / "tmp-deadbeef/etc").mkdir(parents=True)
    (layers.root / "0123456789").mkdir()
    layers.gc()
    assert list(layers.root.iterdir()) == []


def test_snapshot_lifecycle(stores, docker_save, tmp_path):
    _, layers, snapshots, _ = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"][:1])
    mounts = snapshots.prepare("c1", top)
    assert mounts == snapshots.mounts("c1")
    assert mounts[0].type == "overlay"
    assert f"lowerdir={layers.get(top).path}:{snapshots.root / '.init'}" in mounts[0].options
    assert snapshots.parent("c1") == top
    with pytest.raises(errdefs.Conflict):
        snapshots.prepare("c1", top)
    with pytest.raises(errdefs.InvalidParameter):
        snapshots.prepare("../escape", top)
    # an image without layers: only the init layer below
    with mounted(snapshots.prepare("empty", None), tmp_path / "empty") as rootfs:
        assert sorted(os.listdir(rootfs)) == [".dockerenv", "dev", "etc", "proc", "sys"]
        assert snapshots.parent("empty") is None
        (rootfs / "made").write_text("x")
    assert [m.name for m in tarfile.open(fileobj=io.BytesIO(b"".join(snapshots.diff("empty"))))] == ["made"]
    # no changes: Docker's well-known empty layer (1024 zero bytes)
    assert b"".join(snapshots.diff("c1")) == bytes(1024)
    assert layers.register(io.BytesIO(bytes(1024)), top).diff_id == \
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    snapshots.remove("c1")
    snapshots.remove("c1")  # idempotent
    snapshots.remove("empty")
    assert not snapshots.exists("c1")
    with pytest.raises(errdefs.NotFound):
        snapshots.mounts("c1")
    with pytest.raises(errdefs.NotFound):
        snapshots.parent("c1")
    assert [p.name for p in snapshots.root.iterdir()] == [".init"]


def test_snapshot_parent_is_an_xattr_with_a_file_where_refused(stores, docker_save, monkeypatch):
    """The parent chain id rides on the snapshot dir's metadata (no data to fsync); snapshots
    made before, and those on a filesystem refusing user xattrs, keep a ``parent`` file."""
    _, layers, snapshots, _ = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"][:1])
    snapshots.prepare("x1", top)
    assert os.getxattr(snapshots.root / "x1", snapshotter.PARENT_XATTR) == top.encode()
    assert not (snapshots.root / "x1" / "parent").exists()
    # an older snapshot: the file, no xattr
    os.removexattr(snapshots.root / "x1", snapshotter.PARENT_XATTR)
    (snapshots.root / "x1" / "parent").write_text(top)
    assert snapshots.parent("x1") == top and snapshots.exists("x1")

    def refuse(*args):
        raise OSError(errno.ENOTSUP, "Operation not supported")
    monkeypatch.setattr(snapshotter.os, "setxattr", refuse)
    snapshots.prepare("x2", None)
    assert (snapshots.root / "x2" / "parent").read_text() == ""
    assert snapshots.parent("x2") is None and snapshots.exists("x2")
    for key in ("x1", "x2"):
        snapshots.remove(key)
    assert not snapshots.exists("x1")
    with pytest.raises(errdefs.NotFound):
        snapshots.parent("x2")


def tree(root: Path) -> dict[str, tuple]:
    """What a container sees: type, mode, owner, link count, content or link target, xattrs."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                what = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = st.st_rdev
            xattrs = {} if stat.S_ISLNK(st.st_mode) else {
                k: os.getxattr(path, k) for k in os.listxattr(path) if k.startswith("user.")}
            mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                st.st_uid, st.st_gid, st.st_nlink, what, xattrs, mtime)
    return out


def test_container_changes_round_trip(stores, docker_save, tmp_path):
    """Changes in a container become a layer (tar_dir_changes) that recreates the same view."""
    _, layers, snapshots, _ = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"])
    with mounted(snapshots.prepare("work", top), tmp_path / "work") as rootfs:
        (rootfs / "two.txt").write_text("changed\n")
        (rootfs / "keep").unlink()  # one of two hardlinks
        subprocess.run(["rm", "-rf", str(rootfs / "dir"), str(rootfs / "etc/group")], check=True)
        subprocess.run(["rm", "-rf", str(rootfs / "bin")], check=True)
        (rootfs / "bin").mkdir()  # over a deleted lower dir: an opaque dir
        (rootfs / "bin/only").write_text("alone")
        (rootfs / "new/deeper").mkdir(parents=True)
        (rootfs / "new/deeper/file").write_bytes(os.urandom(100_000))
        os.link(rootfs / "new/deeper/file", rootfs / "new/link")
        os.symlink("../two.txt", rootfs / "new/sym")
        os.mkfifo(rootfs / "new/fifo")
        os.chmod(rootfs / "etc/passwd", 0o600)
        os.chown(rootfs / "hardlink", 123, 456)
        os.setxattr(rootfs / "new/deeper/file", "user.origin", b"container")
        expected = tree(rootfs)
    diff = b"".join(snapshots.diff("work"))
    with tarfile.open(fileobj=io.BytesIO(diff)) as tar:
        names = tar.getnames()
    assert ".wh.dir" in names and "etc/.wh.group" in names and "bin/.wh..wh..opq" in names
    assert b"".join(snapshots.diff("work")) == diff  # deterministic

    committed = layers.register(io.BytesIO(gzip.compress(diff)), top)
    assert committed.parent == top
    with layers.tar_stream(committed.chain_id) as f:
        assert f.read() == diff
    with mounted(snapshots.prepare("check", committed.chain_id), tmp_path / "check") as rootfs:
        assert tree(rootfs) == expected
        assert sorted(os.listdir(rootfs / "bin")) == ["only"]
    for key in ("work", "check"):
        snapshots.remove(key)


@pytest.mark.slow
def test_extraction_throughput(stores, tmp_path, capsys):
    """A layer holding one big file: report MB/s of register (extract + hash + keep the diff)."""
    _, layers, _, _ = stores
    size = 256 << 20
    src = tmp_path / "big.tar"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        ti = tarfile.TarInfo("big.bin")
        ti.size, ti.mode = size, 0o644
        f.write(ti.tobuf(tarfile.PAX_FORMAT))
        for _ in range(size >> 20):
            f.write(block)
        f.write(bytes(1024))
    os.sync()  # time our own writes, not the flush of the source file
    start = time.perf_counter()
    with open(src, "rb") as f:
        layer = layers.register(f, None)
    elapsed = time.perf_counter() - start
    assert (layer.path / "big.bin").stat().st_size == size
    with capsys.disabled():
        print(f"\nregister of a {size >> 20} MiB single-file layer: {size / elapsed / 1e6:.0f} MB/s "
              f"({elapsed:.2f} s, plain tar, including syncfs and the diff blob)")


def test_prepare_takes_the_dirs_made_ahead(stores, docker_save):
    _, layers, snapshots, _ = stores
    root, manifest, _ = docker_save
    top = register_all(layers, root, manifest["Layers"][:1])
    spare = snapshots.root / snapshotter._SPARE
    snapshots.prepare("s1", top)  # none made ahead: its own dirs
    snapshots.make_spare()
    inode = spare.stat().st_ino
    snapshots.make_spare()  # one is enough
    assert spare.stat().st_ino == inode
    snapshots.prepare("s2", top)
    assert not spare.exists() and (snapshots.root / "s2").stat().st_ino == inode
    assert oct((snapshots.root / "s2" / "upper").stat().st_mode & 0o777) == "0o755"
    assert (snapshots.root / "s2" / "work").is_dir() and snapshots.parent("s2") == top
    snapshots.make_spare()
    snapshots.gc()  # a spare is a temp dir: gone at the next start
    assert not spare.exists()
    for key in ("s1", "s2"):
        snapshots.remove(key)
