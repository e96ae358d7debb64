"""storage.fsroot: paths resolved with a directory as "/" never leave it, whatever symlinks say."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dockyard.storage import fsroot


@pytest.fixture
def tree():
    base = Path(tempfile.mkdtemp(prefix="dockyard-fsroot-"))
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("container\n")
    (base / "outside").write_text("host\n")
    os.symlink("/", root / "to-root")
    os.symlink("/etc", root / "to-etc")
    os.symlink("../../../../outside", root / "climb")
    os.symlink(str(base / "outside"), root / "abs-host")
    os.symlink("/proc/self/root/etc/passwd", root / "magic")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield base, root, fd
    finally:
        os.close(fd)
        shutil.rmtree(base)


def read(root_fd, path):
    fd = fsroot.open_in_root(root_fd, path, os.O_RDONLY)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_symlinks_resolve_inside_the_root(tree):
    _, _, fd = tree
    assert read(fd, "/to-etc/passwd") == b"container\n"
    assert read(fd, "to-root/to-root/etc/passwd") == b"container\n"
    assert read(fd, "/../../../etc/passwd") == b"container\n"  # ".." stops at the root
    with pytest.raises(FileNotFoundError):
        read(fd, "/climb")  # -> /outside inside the root: absent, never the host's file
    with pytest.raises(FileNotFoundError):
        read(fd, "/abs-host")


def test_magic_links_are_refused(tree):
    _, _, fd = tree
    with pytest.raises(OSError):
        read(fd, "/magic")


def test_path_in_root(tree):
    _, _, fd = tree
    inner = fsroot.open_in_root(fd, "/to-etc", os.O_PATH)
    try:
        assert fsroot.path_in_root(fd, inner) == "/etc"
    finally:
        os.close(inner)


def test_beneath_without_symlinks(tree):
    _, root, _ = tree
    dir_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        os.close(fsroot.open_beneath_no_symlinks(dir_fd, "etc/passwd", os.O_RDONLY))
        for path in ("to-etc/passwd", "../outside", "climb"):
            with pytest.raises(OSError):
                fsroot.open_beneath_no_symlinks(dir_fd, path, os.O_RDONLY)
    finally:
        os.close(dir_fd)


@pytest.mark.parametrize("given, clean", [
    ("/foo", "/foo"), ("foo", "/foo"), ("/foo/", "/foo/"), ("/foo/.", "/foo/."), ("/", "/"),
    (".", "/."), ("//x//y/../z", "/x/z"), ("/a/b/../../..", "/"), ("/foo/bar/./", "/foo/bar/"),
])
def test_clean_path_as_docker(given, clean):
    assert fsroot.clean_path(given) == clean
