"""--squash: overlay upper dirs (whiteouts, opaque dirs) merged bottom first into one."""

import os
import stat

from dockyard.daemon.build import squash
from dockyard.storage.archive import OVERLAY_OPAQUE_XATTR


def _whiteout(path):
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _opaque(path):
    os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y")


def _tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode):
                out[rel] = "whiteout"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "opaque" if _is_opaque(path) else "dir"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "->" + os.readlink(path)
            else:
                out[rel] = open(path).read()
    return out


def _is_opaque(path):
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def test_layers_merge_as_overlay_stacks_them(tmp_path):
    l1, l2, l3, upper = (tmp_path / n for n in ("l1", "l2", "l3", "upper"))
    for d in (l1, l2, l3, upper):
        d.mkdir()
    (l1 / "added").write_text("1")
    (l1 / "temp").write_text("t")
    (l1 / "d").mkdir()
    (l1 / "d" / "x").write_text("x")
    os.symlink("added", l1 / "link")
    _whiteout(l1 / "basefile")  # a base file deleted in the first layer
    (l2 / "d").mkdir()
    _whiteout(l2 / "temp")
    _whiteout(l2 / "d" / "x")
    (l2 / "d" / "y").write_text("y")
    (l2 / "added").write_text("2")  # rewritten
    (l3 / "d").mkdir()  # a directory made anew over a deleted one: nothing below shows
    _opaque(l3 / "d")
    (l3 / "d" / "z").write_text("z")
    (l3 / "basefile").mkdir()  # a directory where a whiteout was
    (l3 / "basefile" / "in").write_text("i")
    os.chmod(l2 / "d", 0o700)

    squash.merge_layers([l1, l2, l3], upper)
    assert _tree(upper) == {
        "added": "2", "temp": "whiteout", "link": "->added", "d": "opaque", "d/z": "z",
        "basefile": "opaque", "basefile/in": "i"}
    assert stat.S_IMODE(os.lstat(upper / "d").st_mode) == 0o755  # the last layer's directory mode
    assert os.lstat(upper / "added").st_ino == os.lstat(l2 / "added").st_ino  # linked, not copied

    base = {"d", "basefile"}
    squash.drop_foreign_whiteouts(upper, lambda rel: rel in base)
    # temp was added then deleted: no whiteout; d and basefile are in the base: still opaque
    assert _tree(upper) == {
        "added": "2", "link": "->added", "d": "opaque", "d/z": "z", "basefile": "opaque", "basefile/in": "i"}
    squash.drop_foreign_whiteouts(upper, lambda rel: False)
    assert _tree(upper)["d"] == "dir"  # over scratch an opaque mark hides nothing


def test_has_markers(tmp_path):
    (tmp_path / "a").write_text("a")
    assert not squash.has_markers(tmp_path)
    _whiteout(tmp_path / "gone")
    assert squash.has_markers(tmp_path)
