"""Recursive read-only binds ("rro", bind-recursive=readonly) in the runtime's mount code.

Each case runs in a forked child that unshares its mount namespace, so every mount it
makes (the source tmpfs with a submount, the bind) goes away with the child.
"""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from dockyard.oci.runtime_spec import Mount
from dockyard.runtime import rootfs
from dockyard.runtime import syscalls as sc


def _writable(path: str) -> bool:
    try:
        fd = os.open(os.path.join(path, "probe"), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.EROFS:
            return False
        raise
    os.close(fd)
    return True


def _in_private_namespace(body) -> tuple[bool, ...]:
    """Run ``body(workdir)`` in a child with its own mount namespace; its tuple of bools back."""
    work = tempfile.mkdtemp(prefix="dy-rro-")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_fd)
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_PRIVATE | sc.MS_REC)
            answer = body(work)
            os.write(write_fd, "".join("1" if b else "0" for b in answer).encode())
            status = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent through the pipe
            os.write(write_fd, f"error {e!r}".encode())
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as f:
            out = f.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out
        return tuple(c == "1" for c in out)
    finally:
        # the child's mounts died with its namespace; only empty directories are left here
        for sub in ("src/sub", "src", "root/m", "root"):
            try:
                os.rmdir(os.path.join(work, sub))
            except OSError:
                pass
        os.rmdir(work)


def _bind_with_submount(options: list[str]):
    def body(work: str) -> tuple[bool, bool]:
        src, root = os.path.join(work, "src"), os.path.join(work, "root")
        os.makedirs(src)
        os.makedirs(root)
        sc.mount("tmpfs", src, "tmpfs", 0, "size=1m")
        os.mkdir(os.path.join(src, "sub"))
        sc.mount("tmpfs", os.path.join(src, "sub"), "tmpfs", 0, "size=1m")
        rootfs.mount_one(root, Mount(destination="/m", type="bind", source=src, options=options))
        dest = os.path.join(root, "m")
        return _writable(dest), _writable(os.path.join(dest, "sub"))
    return body


def test_rro_makes_submounts_read_only() -> None:
    top, sub = _in_private_namespace(_bind_with_submount(["rbind", "rprivate", "rro"]))
    assert (top, sub) == (False, False)


def test_ro_leaves_submounts_writable() -> None:
    """Docker's bind-recursive=writable (and every read-only bind before Docker 25)."""
    top, sub = _in_private_namespace(_bind_with_submount(["rbind", "rprivate", "ro"]))
    assert (top, sub) == (False, True)


def test_recursive_options_are_not_mount_data() -> None:
    flags, propagation, data = rootfs.parse_options(["rbind", "rro", "rnosuid", "size=1m"])
    assert data == "size=1m" and flags == sc.MS_BIND | sc.MS_REC and propagation == 0


def test_rro_on_a_tmpfs_mount() -> None:
    def body(work: str) -> tuple[bool]:
        root = os.path.join(work, "root")
        os.makedirs(root)
        rootfs.mount_one(root, Mount(destination="/m", type="tmpfs", source="tmpfs", options=["size=1m", "rro"]))
        return (_writable(os.path.join(root, "m")),)
    assert _in_private_namespace(body) == (False,)


def test_mount_setattr_names_the_path_on_failure() -> None:
    with pytest.raises(OSError) as info:
        sc.mount_setattr("/nonexistent-dy-rro", sc.MOUNT_ATTR_RDONLY, 0)
    assert info.value.errno == errno.ENOENT and "mount_setattr /nonexistent-dy-rro" in str(info.value)


def _fake_runc(tmp: str, features: str | None, name: str = "fake-runc") -> str:
    """A runc stand-in: ``features`` prints the given JSON (None: fails, as runc < 1.1); every
    call is logged to calls.log. Its answer is cached per path: each stand-in gets a name of its own."""
    path = os.path.join(tmp, name)
    answer = f"cat <<'JSON'\n{features}\nJSON\nexit 0" if features is not None else "echo 'no such command' >&2; exit 1"
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> {tmp}/calls.log\n'
                f'for a in "$@"; do if [ "$a" = features ]; then {answer}; fi; done\nexit 1\n')
    os.chmod(path, 0o755)
    return path


def _bundle(tmp: str, options: list[str]) -> str:
    import json
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({"mounts": [{"destination": "/m", "type": "bind", "source": "/x", "options": options}]}, f)
    return bundle


def test_runc_without_rro_is_a_clear_error() -> None:
    from pathlib import Path

    from dockyard import errdefs
    from dockyard.runtime.runc import RuncRuntime

    with tempfile.TemporaryDirectory(prefix="dy-rro-runc-") as tmp:
        old = RuncRuntime(_fake_runc(tmp, None), Path(tmp) / "state")
        with pytest.raises(errdefs.InvalidParameter, match=r'mount option "rro" for /m is not supported by runtime "fake-runc"'):
            old.create("c1", Path(_bundle(tmp, ["rbind", "rprivate", "rro"])))
        calls = open(os.path.join(tmp, "calls.log")).read()
        assert "features" in calls and "create" not in calls  # refused before runc create ran

        new = RuncRuntime(_fake_runc(tmp, '{"mountOptions": ["rbind", "ro", "rro"]}', "new-runc"), Path(tmp) / "state")
        new._check_recursive_options(Path(_bundle(tmp, ["rbind", "rro"])))  # listed: accepted
        os.unlink(os.path.join(tmp, "calls.log"))
        RuncRuntime(_fake_runc(tmp, None, "unasked-runc"), Path(tmp) / "state")._check_recursive_options(
            Path(_bundle(tmp, ["rbind", "ro"])))
        assert not os.path.exists(os.path.join(tmp, "calls.log"))  # no recursive option: runc not asked
