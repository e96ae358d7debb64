"""extract_copy (docker cp, build contexts, COPY of directories): a plain tar is checked by its
headers alone and its data read once (by the kernel when the tar is in a file); a compressed
one is checked in a first pass too; a refused tar writes nothing either way."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.storage.archive import extract_copy
from tests.unit.test_storage_archive import entry, make_tar

BIG = os.urandom(3 << 20)


class CountingBytes(io.BytesIO):
    """A tar in memory that counts the bytes read from it."""

    read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.read_bytes += len(data)
        return data


def _tar() -> bytes:
    return make_tar(entry("dir", tarfile.DIRTYPE, mode=0o750), entry("dir/big", data=BIG, mode=0o640),
                    entry("dir/small", data=b"small\n", uid=7, gid=8), entry("link", tarfile.LNKTYPE, linkname="dir/big"),
                    entry(".wh.kept", data=b"a plain file here"))


def _dest(tmp_path: Path) -> tuple[Path, int]:
    dest = tmp_path / "dest"
    dest.mkdir()
    return dest, os.open(dest, os.O_RDONLY | os.O_DIRECTORY)


def _check(dest: Path) -> None:
    assert (dest / "dir/big").read_bytes() == BIG
    assert (dest / "dir/small").read_bytes() == b"small\n"
    assert (dest / "dir/small").stat().st_uid == 7
    assert oct((dest / "dir").stat().st_mode & 0o7777) == oct(0o750)
    assert oct((dest / "dir/big").stat().st_mode & 0o7777) == oct(0o640)
    assert (dest / "link").stat().st_ino == (dest / "dir/big").stat().st_ino
    assert (dest / ".wh.kept").read_bytes() == b"a plain file here"
    assert int((dest / "dir/big").stat().st_mtime) == 1_700_000_000


@pytest.mark.parametrize("holder", ["file", "spooled-on-disk", "memory", "gzip"])
def test_every_holder_gives_the_same_tree(tmp_path, holder):
    data = _tar()
    if holder == "file":
        (tmp_path / "ctx.tar").write_bytes(data)
        source = open(tmp_path / "ctx.tar", "rb")
    elif holder == "spooled-on-disk":
        source = tempfile.SpooledTemporaryFile(max_size=1024)
        source.write(data)
    elif holder == "memory":
        source = CountingBytes(data)
    else:
        source = io.BytesIO(gzip.compress(data))
    dest, fd = _dest(tmp_path)
    try:
        with source:
            extract_copy(source, fd)  # type: ignore[arg-type]
            if holder == "memory":
                assert source.read_bytes < len(data) + (64 << 10)  # the data once, not twice
    finally:
        os.close(fd)
    _check(dest)


def test_a_spooled_tar_in_memory_stays_in_memory(tmp_path):
    spool = tempfile.SpooledTemporaryFile(max_size=len(_tar()) + 1)
    spool.write(_tar())
    dest, fd = _dest(tmp_path)
    try:
        extract_copy(spool, fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert not spool._rolled  # type: ignore[attr-defined]
    _check(dest)


def test_a_refused_plain_tar_is_refused_from_its_headers(tmp_path):
    data = make_tar(entry("big", data=BIG), entry("../escape", data=b"x"))
    source = CountingBytes(data)
    dest, fd = _dest(tmp_path)
    try:
        with pytest.raises(errdefs.InvalidParameter, match="nothing was copied"):
            extract_copy(source, fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert os.listdir(dest) == [] and not (tmp_path / "escape").exists()
    assert source.read_bytes < 64 << 10  # the big file's data was never read


@pytest.mark.parametrize("in_file", [True, False])
def test_a_truncated_plain_tar_is_invalid(tmp_path, in_file):
    data = make_tar(entry("big", data=BIG))[:1 << 20]
    if in_file:
        (tmp_path / "cut.tar").write_bytes(data)
        source = open(tmp_path / "cut.tar", "rb")
    else:
        source = io.BytesIO(data)
    dest, fd = _dest(tmp_path)
    try:
        with source, pytest.raises(errdefs.InvalidParameter):
            extract_copy(source, fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)
