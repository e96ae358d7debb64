"""fsutil: tree removal that neither recurses nor follows symlinks; atomic writes."""

from __future__ import annotations

import os

from dockyard.storage.fsutil import remove_tree, write_atomic


def test_remove_tree_deeper_than_the_python_stack(tmp_path):
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(1500):
            os.mkdir("d", dir_fd=fd)
            (open(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd), "wb")).close()
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    remove_tree(top)
    assert not top.exists()


def test_remove_tree_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a/b").mkdir(parents=True)
    os.symlink(outside, tree / "a/link")
    os.symlink(outside, tmp_path / "toplink")
    remove_tree(tree)
    remove_tree(tmp_path / "toplink")  # a symlink given as the tree is unlinked, not followed
    assert sorted(os.listdir(tmp_path)) == ["outside"]
    assert (outside / "keep").read_text() == "x"


def test_remove_tree_missing_or_file(tmp_path):
    remove_tree(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    assert os.listdir(tmp_path) == []


def test_write_atomic(tmp_path):
    write_atomic(tmp_path / "f", b"one")
    write_atomic(tmp_path / "f", b"two")
    assert (tmp_path / "f").read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]
