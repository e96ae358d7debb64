"""daemon/containers/archive.py on a plain directory standing for a running container's root:
Docker's stat and naming, and no way out through symlinks or tar entries."""

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import msgspec
import pytest

from dockyard import errdefs
from dockyard.daemon.containers import archive as cp


@pytest.fixture
def box():
    base = Path(tempfile.mkdtemp(prefix="dockyard-cpunit-"))
    root = base / "root"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("a\n")
    (root / "data" / "sub" / "b").write_text("b\n")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("container\n")
    (base / "host").mkdir()
    (base / "host" / "sentinel").write_text("host\n")
    os.symlink("/", root / "rootlink")
    os.symlink("/etc", root / "etclink")
    os.symlink(str(base / "host"), root / "hostlink")
    view = cp.View(live_root=root, rootfs_mounts=(), binds=(), scratch=base / "scratch")
    try:
        yield base, root, view
    finally:
        shutil.rmtree(base)


def tar_of(view, path):
    reader = cp.ArchiveReader(view, path, "c")
    data = b""
    try:
        while (chunk := reader.next_chunk()) is not None:
            data += chunk
    finally:
        reader.close()
    return reader.stat, tarfile.open(fileobj=io.BytesIO(data))


def tar_bytes(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_stat_in_dockers_shape(box):
    _, _, view = box
    st = cp.stat_path(view, "/data/a.txt", "c")
    assert (st.name, st.size, st.mode, st.link_target) == ("a.txt", 2, 0o644, "")
    assert cp.stat_path(view, "/data/", "c").mode & (1 << 31)
    link = cp.stat_path(view, "/etclink", "c")
    assert link.mode & (1 << 27) and link.link_target == "/etc"
    assert b'"linkTarget":"/etc"' in msgspec.json.encode(link)  # Docker's JSON name
    with pytest.raises(errdefs.NotFound, match="Could not find the file /nope in container c"):
        cp.stat_path(view, "/nope", "c")


@pytest.mark.parametrize("path, names", [
    ("/data", ["data", "data/a.txt", "data/sub", "data/sub/b"]),
    ("/data/", ["data", "data/a.txt", "data/sub", "data/sub/b"]),
    ("/data/.", [".", "./a.txt", "./sub", "./sub/b"]),
    ("/rootlink/data/sub", ["sub", "sub/b"]),
    ("/data/a.txt", ["a.txt"]),
])
def test_tar_names_as_dockerd(box, path, names):
    _, _, view = box
    _, tar = tar_of(view, path)
    assert [m.name for m in tar] == names


def test_reads_stay_in_the_container(box):
    base, _, view = box
    _, tar = tar_of(view, "/rootlink/etc/passwd")
    assert tar.extractfile("passwd").read() == b"container\n"
    _, tar = tar_of(view, "/etclink/passwd")
    assert tar.extractfile("passwd").read() == b"container\n"
    with pytest.raises(errdefs.NotFound):  # the host's directory does not exist in the container
        tar_of(view, "/hostlink/sentinel")


def test_writes_stay_in_the_container(box):
    base, root, view = box
    (root / str(base).lstrip("/") / "host").mkdir(parents=True)
    cp.extract(view, "/hostlink", "c", tar_bytes(("sentinel", b"overwritten\n")), None, True)
    assert (base / "host" / "sentinel").read_text() == "host\n"
    assert (root / str(base).lstrip("/") / "host" / "sentinel").read_text() == "overwritten\n"


@pytest.mark.parametrize("entries", [
    [("ok.txt", b"ok"), ("../escape", b"x")],
    [("ok.txt", b"ok"), ("/../../../escape", b"x")],
    [("ok.txt", b"ok"), ("sub/../../escape", b"x")],
])
def test_escaping_tar_changes_nothing(box, entries):
    base, root, view = box
    before = sorted(os.listdir(root / "data"))
    with pytest.raises(errdefs.InvalidParameter, match="outside the destination"):
        cp.extract(view, "/data", "c", tar_bytes(*entries), None, True)
    assert sorted(os.listdir(root / "data")) == before
    assert not (root / "escape").exists() and not (base / "escape").exists()


def test_no_overwrite_dir_non_dir(box):
    _, root, view = box
    with pytest.raises(errdefs.InvalidParameter, match="cannot overwrite directory"):
        cp.extract(view, "/data", "c", tar_bytes(("new", b"n"), ("sub", b"file now")), None, True)
    assert not (root / "data" / "new").exists()
    cp.extract(view, "/data", "c", tar_bytes(("sub", b"file now")), None, False)
    assert (root / "data" / "sub").read_text() == "file now"


def test_extract_errors(box):
    _, _, view = box
    with pytest.raises(errdefs.NotFound):
        cp.extract(view, "/nope", "c", tar_bytes(("x", b"x")), None, True)
    with pytest.raises(errdefs.InvalidParameter, match="extraction point is not a directory"):
        cp.extract(view, "/data/a.txt", "c", tar_bytes(("x", b"x")), None, True)


def test_check_writable():
    from dockyard.apitypes.container import MountPoint
    mounts = [MountPoint(destination="/ro", rw=False), MountPoint(destination="/rw", rw=True)]
    cp.check_writable("/rw/x", mounts, readonly_rootfs=True)
    with pytest.raises(errdefs.InvalidParameter, match="mounted volume is marked read-only"):
        cp.check_writable("/ro/x", mounts, readonly_rootfs=False)
    with pytest.raises(errdefs.InvalidParameter, match="container rootfs is marked read-only"):
        cp.check_writable("/etc", mounts, readonly_rootfs=True)
