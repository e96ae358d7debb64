"""Copy-up from unpacked layers: upper wins, whiteouts and opaque dirs hide, metadata kept."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from dockyard.volume.copyup import copy_up


@pytest.fixture
def tmp():
    path = Path(tempfile.mkdtemp(prefix="dy-vol-copyup-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, 0)


def test_merge(tmp):
    lower, upper, dest = tmp / "lower", tmp / "upper", tmp / "dest"
    dest.mkdir()
    _write(lower / "data/a", "lower a")
    _write(lower / "data/b", "lower b")
    _write(lower / "data/sub/c", "lower c")
    _write(lower / "data/gone/d", "lower d")
    _write(lower / "data/op/old", "old")
    os.link(lower / "data/a", lower / "data/a-link")
    os.symlink("a", lower / "data/sym")
    os.chown(lower / "data/b", 1234, 5678)
    _write(upper / "data/a", "upper a", 0o600)
    _whiteout(upper / "data/gone")
    _write(upper / "data/op/new", "new")
    os.setxattr(upper / "data/op", "trusted.overlay.opaque", b"y")
    _write(upper / "data/sub/e", "upper e")
    os.chmod(upper / "data", 0o750)  # the top layer's directory gives the volume root its owner and mode
    os.chown(upper / "data", 42, 43)

    assert copy_up([upper, lower], "/data", dest)
    assert (dest / "a").read_text() == "upper a" and stat.S_IMODE(os.stat(dest / "a").st_mode) == 0o600
    assert (dest / "b").read_text() == "lower b" and os.stat(dest / "b").st_uid == 1234
    assert sorted(os.listdir(dest / "sub")) == ["c", "e"]
    assert not (dest / "gone").exists()
    assert os.listdir(dest / "op") == ["new"]
    assert os.readlink(dest / "sym") == "a"
    assert (dest / "a-link").read_text() == "lower a"
    st = os.stat(dest)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 42, 43)


def test_path_deleted_or_missing(tmp):
    lower, upper, dest = tmp / "lower", tmp / "upper", tmp / "dest"
    dest.mkdir()
    _write(lower / "data/a", "x")
    _whiteout(upper / "data")
    assert not copy_up([upper, lower], "/data", dest)
    assert os.listdir(dest) == []
    assert not copy_up([lower], "/nothing/here", dest)


def test_opaque_ancestor(tmp):
    lower, upper, dest = tmp / "lower", tmp / "upper", tmp / "dest"
    dest.mkdir()
    _write(lower / "var/data/a", "lower")
    (upper / "var").mkdir(parents=True)
    os.setxattr(upper / "var", "trusted.overlay.opaque", b"y")
    assert not copy_up([upper, lower], "/var/data", dest)
    assert os.listdir(dest) == []
