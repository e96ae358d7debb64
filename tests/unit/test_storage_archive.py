"""archive: layer extraction (Docker semantics onto overlay lower dirs, never outside dest) and tar writing."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import secrets
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.storage.archive import extract_layer, tar_dir, tar_dir_changes

MTIME = 1_700_000_000


def entry(name: str, type: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, **attrs) -> tuple:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = type, mode, MTIME
    ti.uid, ti.gid = attrs.pop("uid", 0), attrs.pop("gid", 0)
    for key, value in attrs.items():
        setattr(ti, key, value)
    if type == tarfile.REGTYPE:
        ti.size = len(data)
    return ti, data


def make_tar(*entries: tuple) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def extract(data: bytes, dest: Path):
    dest.mkdir(exist_ok=True)
    return extract_layer(io.BytesIO(data), dest)


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "layer"


def test_file_kinds_and_metadata(dest):
    data = make_tar(
        entry("etc/", tarfile.DIRTYPE, mode=0o750, uid=12, gid=34),
        entry("etc/conf", data=b"hello", mode=0o4755, uid=1000, gid=1001,
              pax_headers={"SCHILY.xattr.user.note": "v1", "SCHILY.xattr.trusted.overlay.opaque": "y"}),
        entry("link", tarfile.SYMTYPE, linkname="/etc/conf", uid=5, gid=6),
        entry("hard", tarfile.LNKTYPE, linkname="etc/conf"),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        entry("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9),
        entry("pipe", tarfile.FIFOTYPE, mode=0o620),
        entry("deep/a/b/c", data=b"implicit parents"),
    )
    result = extract(data, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.tar_size == len(data)
    assert result.size == len(b"hello") + len(b"implicit parents")

    st = os.lstat(dest / "etc")
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (12, 34)
    assert st.st_mtime == MTIME  # directory times survive the entries written inside
    st = os.lstat(dest / "etc/conf")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime == MTIME and st.st_nlink == 2
    assert (dest / "etc/conf").read_bytes() == b"hello"
    assert os.getxattr(dest / "etc/conf", "user.note") == b"v1"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "etc/conf")  # never from a tar
    assert os.readlink(dest / "link") == "/etc/conf"
    assert os.lstat(dest / "link").st_uid == 5
    assert os.lstat(dest / "hard").st_ino == st.st_ino
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    st = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and os.minor(st.st_rdev) == 9 and stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_ISFIFO(os.lstat(dest / "pipe").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "deep/a").st_mode) == 0o755
    assert (dest / "deep/a/b/c").read_bytes() == b"implicit parents"


def test_whiteouts_become_overlay_whiteouts(dest):
    extract(make_tar(
        entry("etc/", tarfile.DIRTYPE),
        entry("etc/.wh.passwd", uid=3, gid=4),
        entry("opaque/", tarfile.DIRTYPE),
        entry("opaque/.wh..wh..opq"),
        entry("opaque/new", data=b"new"),
        entry(".wh..wh.plnk/", tarfile.DIRTYPE),  # aufs bookkeeping: ignored
    ), dest)
    st = os.lstat(dest / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (3, 4)
    assert not (dest / "etc/.wh.passwd").exists()
    assert os.getxattr(dest / "opaque", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "opaque")) == ["new"]
    assert sorted(os.listdir(dest)) == ["etc", "opaque"]


def test_later_entries_replace_earlier_ones(dest):
    extract(make_tar(
        entry("x", data=b"first"),
        entry("x", data=b"second"),
        entry("d/", tarfile.DIRTYPE),
        entry("d/f", data=b"in d"),
        entry("d", data=b"now a file"),
        entry("e/", tarfile.DIRTYPE, mode=0o700),
        entry("e/f", data=b"kept"),
        entry("e/", tarfile.DIRTYPE, mode=0o711),  # a dir over a dir keeps its contents
    ), dest)
    assert (dest / "x").read_bytes() == b"second"
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "e/f").read_bytes() == b"kept"
    assert stat.S_IMODE(os.lstat(dest / "e").st_mode) == 0o711


def test_replacing_a_nested_dir_keeps_its_parent_usable(dest):
    extract(make_tar(
        entry("a/d/", tarfile.DIRTYPE),
        entry("a/d/f", data=b"in d"),
        entry("a/d", data=b"file now"),
        entry("a/x", data=b"x"),
        entry("a/e/", tarfile.DIRTYPE),
        entry("a/.wh.e"),
        entry("a/y", tarfile.LNKTYPE, linkname="a/x"),
    ), dest)
    assert (dest / "a/d").read_bytes() == b"file now"
    assert os.lstat(dest / "a/e").st_rdev == 0
    assert os.lstat(dest / "a/y").st_ino == os.lstat(dest / "a/x").st_ino


def test_many_directories_and_late_hardlinks(dest):
    """More directories than the fd cache holds, hardlinks reaching back to early ones."""
    entries = [entry(f"d{i}/f", data=str(i).encode()) for i in range(600)]
    entries += [entry(f"d{i}/h", tarfile.LNKTYPE, linkname=f"d{599 - i}/f") for i in range(600)]
    extract(make_tar(*entries), dest)
    assert (dest / "d7/h").read_bytes() == b"592"
    assert len(os.listdir(dest)) == 600
    assert len(os.listdir("/proc/self/fd")) < 100  # nothing leaked


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, "zstd"],
                         ids=["gzip", "bzip2", "xz", "zstd"])
def test_compressed_layers(dest, compress):
    plain = make_tar(entry("f", data=b"compressed " * 1000))
    if compress == "zstd":
        zstandard = pytest.importorskip("zstandard")
        packed = zstandard.ZstdCompressor().compress(plain)
    else:
        packed = compress(plain)
    tee = io.BytesIO()
    dest.mkdir()
    result = extract_layer(io.BytesIO(packed), dest, tee=tee)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()  # of the uncompressed tar
    assert tee.getvalue() == plain
    assert (dest / "f").read_bytes() == b"compressed " * 1000


def test_multi_member_gzip(dest):
    plain = make_tar(entry("a", data=b"A" * 3000), entry("b", data=b"B" * 3000))
    packed = gzip.compress(plain[:1536]) + gzip.compress(plain[1536:])  # as pigz may write
    result = extract(packed, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (dest / "b").read_bytes() == b"B" * 3000


def test_corrupt_input_is_invalid_parameter(dest):
    with pytest.raises(errdefs.InvalidParameter):
        extract(gzip.compress(make_tar(entry("f", data=b"x" * 5000)))[:-40], dest)
    with pytest.raises(errdefs.InvalidParameter):
        extract(b"definitely not a tar" * 100, dest / "2")


# ---- hostile layers: nothing may be written outside dest ------------------------------

@pytest.fixture
def outside(tmp_path):
    """A directory next to dest that an evil layer tries to reach, with a file to protect."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret").write_bytes(b"untouched")
    return out


def snapshot(path: Path) -> list:
    return sorted((str(p), p.lstat().st_mode, p.lstat().st_nlink,
                   p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                  for p in path.rglob("*"))


EVIL = {
    "dotdot": lambda out: [entry("../outside/pwned", data=b"evil")],
    "dotdot-nested": lambda out: [entry("a/../../outside/pwned", data=b"evil")],
    "absolute": lambda out: [entry(f"{out}/pwned", data=b"evil")],
    "symlink-to-root-then-file": lambda out: [
        entry("root", tarfile.SYMTYPE, linkname="/"),
        entry(f"root{out}/pwned", data=b"evil")],
    "symlink-relative-escape": lambda out: [
        entry("up", tarfile.SYMTYPE, linkname="../outside"),
        entry("up/pwned", data=b"evil")],
    "symlink-then-dir": lambda out: [
        entry("up", tarfile.SYMTYPE, linkname=str(out)),
        entry("up/sub/", tarfile.DIRTYPE)],
    "symlink-then-whiteout": lambda out: [
        entry("up", tarfile.SYMTYPE, linkname=str(out)),
        entry("up/.wh.secret")],
    "symlink-then-opaque": lambda out: [
        entry("up", tarfile.SYMTYPE, linkname=str(out)),
        entry("up/.wh..wh..opq")],
    "hardlink-dotdot": lambda out: [entry("hl", tarfile.LNKTYPE, linkname="../outside/secret")],
    "hardlink-absolute": lambda out: [entry("hl", tarfile.LNKTYPE, linkname=f"{out}/secret")],
    "hardlink-through-symlink": lambda out: [
        entry("up", tarfile.SYMTYPE, linkname=str(out)),
        entry("hl", tarfile.LNKTYPE, linkname="up/secret")],
    "whiteout-dotdot": lambda out: [entry(".wh..")],
    "hardlink-to-dir": lambda out: [entry("d/", tarfile.DIRTYPE), entry("hl", tarfile.LNKTYPE, linkname="d")],
}


@pytest.mark.parametrize("name", list(EVIL))
def test_evil_layers_refused(tmp_path, dest, outside, name):
    before = snapshot(tmp_path / "outside")
    with pytest.raises(errdefs.InvalidParameter, match="invalid layer tar"):
        extract(make_tar(*EVIL[name](outside)), dest)
    assert snapshot(tmp_path / "outside") == before
    assert sorted(os.listdir(tmp_path)) == ["layer", "outside"]


def test_refusal_names_the_entry(dest):
    with pytest.raises(errdefs.InvalidParameter, match=r"'\.\./x'"):
        extract(make_tar(entry("../x")), dest)
    with pytest.raises(errdefs.InvalidParameter, match="'/abs'"):
        extract(make_tar(entry("/abs")), dest / "2")


def test_symlink_planted_in_dest_is_not_followed(dest, outside):
    dest.mkdir()
    os.symlink(outside, dest / "planted")
    with pytest.raises(errdefs.InvalidParameter, match="planted"):
        extract(make_tar(entry("planted/pwned", data=b"evil")), dest)
    assert os.listdir(outside) == ["secret"]


def test_file_over_symlink_replaces_the_symlink(dest, outside):
    """An entry named like an existing symlink replaces the link; it never writes through it."""
    extract(make_tar(
        entry("f", tarfile.SYMTYPE, linkname=str(outside / "secret")),
        entry("f", data=b"replaced"),
    ), dest)
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"replaced"
    assert (outside / "secret").read_bytes() == b"untouched"


def test_hardlink_to_symlink_links_the_symlink(dest, outside):
    extract(make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(outside / "secret")),
        entry("h", tarfile.LNKTYPE, linkname="s"),
    ), dest)
    assert os.readlink(dest / "h") == str(outside / "secret")
    assert os.lstat(outside / "secret").st_nlink == 1


# ---- writing tars ---------------------------------------------------------------------

def read_tar(chunks) -> dict[str, tarfile.TarInfo]:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_tar_dir_changes_converts_overlay_markers(tmp_path):
    upper = tmp_path / "upper"
    (upper / "opaque").mkdir(parents=True)
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    (upper / "opaque/new").write_bytes(b"new")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "file").write_bytes(b"data")
    os.setxattr(upper / "file", "user.k", b"\xff\x00binary")
    os.link(upper / "file", upper / "hl")
    os.symlink("/file", upper / "sym")
    members = read_tar(tar_dir_changes(upper))
    assert list(members) == ["file", ".wh.gone", "hl", "opaque", "opaque/.wh..wh..opq",
                             "opaque/new", "sym"]
    assert members[".wh.gone"].isreg() and members[".wh.gone"].size == 0
    assert members["hl"].islnk() and members["hl"].linkname == "file"
    assert members["sym"].linkname == "/file"
    assert "SCHILY.xattr.trusted.overlay.opaque" not in members["opaque"].pax_headers
    assert members["file"].pax_headers["SCHILY.xattr.user.k"].encode("utf-8", "surrogateescape") \
        == b"\xff\x00binary"
    # deterministic: the same tree gives the same bytes
    assert b"".join(tar_dir_changes(upper)) == b"".join(tar_dir_changes(upper))
    # and extracting it gives the overlay markers back
    back = tmp_path / "back"
    back.mkdir()
    extract_layer(io.BytesIO(b"".join(tar_dir_changes(upper))), back)
    assert os.getxattr(back / "opaque", "trusted.overlay.opaque") == b"y"
    assert os.lstat(back / "gone").st_rdev == 0 and stat.S_ISCHR(os.lstat(back / "gone").st_mode)
    assert os.getxattr(back / "file", "user.k") == b"\xff\x00binary"
    assert os.lstat(back / "hl").st_ino == os.lstat(back / "file").st_ino


def test_tar_dir_keeps_device_nodes_and_big_files(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    big = secrets.token_bytes(3 << 20) + b"tail"
    (root / "big").write_bytes(big)
    data = b"".join(tar_dir(root))
    assert len(data) % 512 == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_layer(io.BytesIO(data), dest)
    assert (dest / "big").read_bytes() == big
    assert os.lstat(dest / "null").st_rdev == os.makedev(1, 3)
