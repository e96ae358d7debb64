"""Writable container root filesystems as overlay snapshots over image layers.

Layout under ``root``::

    .init/        the init layer, shared by every snapshot (read-only to overlay)
    <key>/upper   the container's changes (overlay upperdir)
    <key>/work    overlay workdir
    <key>         its xattr user.dockyard.parent: the parent chain id (empty: no layers), so
                  mounts survive a restart (a ``parent`` file on filesystems without user
                  xattrs, and in snapshots made before)

The init layer is Docker's: the mount points the runtime binds over (``/etc/hosts``,
``/etc/resolv.conf``, ``/etc/hostname``, ``/dev/console``, ``/proc``, ``/sys``, ...) plus
``/.dockerenv``. They exist before the container starts, so creating them never lands in
the upper dir, and ``docker diff`` / ``commit`` of a fresh container are empty, as on
Docker. Its content never depends on the image, so one copy serves all snapshots. Unlike
Docker it is the *bottom* lower dir: the image's own entries (an /etc/hosts it ships, the
mode of its /etc) win, and the image's top layer stays the first lower dir.

Like containerd's snapshotters this module never mounts: ``prepare`` and ``mounts``
return ``dockyard.mount.Mount`` values that the shim (or a daemon helper) performs.

Overlay takes all its lower dirs in one mount option and mount(2) copies at most one
page of options: the layer store keeps layer paths short (about 42 bytes each), which
gives room for roughly 90 layers under /var/lib/dockyard; beyond the page ``prepare``
refuses with a clear error instead of failing at container start.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.storage.archive import tar_dir_changes
from dockyard.storage.fsutil import remove_tree, syncfs
from dockyard.storage.layers import Layer, LayerStore

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # never ".init" nor ".tmp-*"
_INIT_DIRS = ("dev/pts", "dev/shm", "proc", "sys", "etc")
_INIT_FILES = (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console")
_INIT_SYMLINKS = (("etc/mtab", "/proc/mounts"),)
_MOUNT_DATA_MAX = os.sysconf("SC_PAGESIZE") - 1  # mount(2) copies one page, NUL included
_SPARE = ".tmp-spare"  # a snapshot's dirs made ahead (OverlaySnapshotter.make_spare)


class OverlaySnapshotter:
    def __init__(self, root: Path, layers: LayerStore) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._layers = layers
        self._init = self.root / ".init"
        if not self._init.is_dir():
            self._make_init_layer()

    def _make_init_layer(self) -> None:
        tmp = self.root / f".tmp-init-{secrets.token_hex(4)}"
        try:
            for d in ("",) + _INIT_DIRS:
                (tmp / d).mkdir(parents=True, exist_ok=True)
                os.chmod(tmp / d, 0o755)
            for f in _INIT_FILES:
                (tmp / f).touch()
                os.chmod(tmp / f, 0o755)  # Docker's mode for these mount points
            for link, target in _INIT_SYMLINKS:
                os.symlink(target, tmp / link)
            syncfs(tmp)
            os.rename(tmp, self._init)
        except OSError:
            remove_tree(tmp)
            if not self._init.is_dir():  # not made by a concurrent daemon start either
                raise

    def _dir(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise errdefs.InvalidParameter(f"invalid snapshot key {key!r}")
        return self.root / key

    def prepare(self, key: str, parent_chain_id: str | None) -> list[Mount]:
        """Create the snapshot ``key`` over the chain and return its mounts (one overlay,
        target empty: the caller picks it). Raises errdefs.Conflict if ``key`` exists,
        errdefs.NotFound for an unknown chain."""
        final = self._dir(key)
        if final.exists():
            raise errdefs.Conflict(f"snapshot {key} already exists")
        lowers = self._layers.lower_dirs(parent_chain_id) if parent_chain_id else []
        # built in a temp dir and renamed, so a half-made snapshot never carries the key
        tmp = self.root / f".tmp-{key}-{secrets.token_hex(4)}"
        try:
            os.rename(self.root / _SPARE, tmp)  # the dirs made ahead: a rename takes them
        except FileNotFoundError:
            _make_dirs(tmp)
        try:
            _record_parent(tmp, (parent_chain_id or "").encode())
            mounts = [self._overlay(final, lowers)]
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise
        return mounts

    def make_spare(self) -> None:
        """Blocking, off a create's path (after its answer): a snapshot's dirs made ahead, which
        the next ``prepare`` takes with one rename. Making three directories costs 0.25-0.7 ms
        of a create on an ext4 root, a rename ~0.03 ms. A spare is a temp dir: ``gc`` removes
        it at the next start."""
        if (self.root / _SPARE).exists():
            return
        tmp = self.root / f".tmp-spare-{secrets.token_hex(4)}"
        try:
            _make_dirs(tmp)
            os.rename(tmp, self.root / _SPARE)  # ENOTEMPTY when a concurrent call made one
        except OSError:
            remove_tree(tmp)

    def _overlay(self, snapshot_dir: Path, lowers: list[Path]) -> Mount:
        lower = ":".join(str(p) for p in [*lowers, self._init])
        options = (f"lowerdir={lower}", f"upperdir={snapshot_dir / 'upper'}",
                   f"workdir={snapshot_dir / 'work'}")
        if len(",".join(options)) > _MOUNT_DATA_MAX:
            raise errdefs.InvalidParameter(
                f"max depth exceeded: the image's {len(lowers)} layers do not fit in one overlay "
                f"mount (options longer than {_MOUNT_DATA_MAX} bytes)")
        return Mount(type="overlay", source="overlay", options=options)

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an existing snapshot; raises errdefs.NotFound."""
        parent = self.parent(key)
        lowers = self._layers.lower_dirs(parent) if parent else []
        return [self._overlay(self._dir(key), lowers)]

    def parent(self, key: str) -> str | None:
        """The chain id the snapshot sits on (None: an image without layers); NotFound."""
        directory = self._dir(key)
        try:
            return os.getxattr(directory, PARENT_XATTR).decode() or None
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise errdefs.NotFound(f"snapshot {key} does not exist") from None
        try:
            return (directory / "parent").read_text() or None
        except FileNotFoundError:
            raise errdefs.NotFound(f"snapshot {key} does not exist") from None

    def upper_dir(self, key: str) -> Path:
        return self._dir(key) / "upper"

    def exists(self, key: str) -> bool:
        try:
            self.parent(key)
        except errdefs.NotFound:
            return False
        return True

    def remove(self, key: str) -> None:
        """Delete the snapshot's directories (idempotent). The caller unmounts first."""
        directory = self._dir(key)
        if not directory.exists():
            return
        # rename first: a crash mid-delete leaves a .tmp- dir for gc(), never a broken snapshot
        doomed = self.root / f".tmp-{key}-{secrets.token_hex(4)}"
        os.rename(directory, doomed)
        remove_tree(doomed)

    def commit(self, key: str, keep: bool = False) -> Layer:
        """Turn the snapshot's changes into a layer on its parent. By default the upper dir is
        moved into the layer store, not copied (``LayerStore.register_dir``: the caller has
        unmounted it) and the snapshot is removed, also when that fails. ``keep``: the snapshot
        stays as it is, mounted or not, and its upper dir is copied (``register_copy``; a
        running container is held paused by the caller). Raises errdefs.NotFound."""
        parent = self.parent(key)
        if keep:
            return self._layers.register_copy(self.upper_dir(key), parent)
        try:
            return self._layers.register_dir(self.upper_dir(key), parent)
        finally:
            self.remove(key)

    def diff(self, key: str) -> Iterator[bytes]:
        """The snapshot's changes as a Docker layer tar (for commit)."""
        upper = self.upper_dir(key)
        if not upper.is_dir():
            raise errdefs.NotFound(f"snapshot {key} does not exist")
        return tar_dir_changes(upper)

    def gc(self) -> None:
        """At start-up: remove snapshots a crash left half made or half removed."""
        for entry in self.root.iterdir():
            if entry.name.startswith(".tmp-"):
                remove_tree(entry)


PARENT_XATTR = "user.dockyard.parent"


def _make_dirs(directory: Path) -> None:
    """A snapshot's dirs, without its parent; removed again if one fails."""
    directory.mkdir(mode=0o700)
    try:
        (directory / "upper").mkdir()
        os.chmod(directory / "upper", 0o755)  # the container's "/": exactly, whatever the umask
        (directory / "work").mkdir(mode=0o700)
    except BaseException:
        remove_tree(directory)
        raise


def _record_parent(directory: Path, chain_id: bytes) -> None:
    """The parent of a snapshot still in its temp dir, as an xattr of the dir: metadata, which
    the journal commits in order with the dirs and the rename that publishes them, at the latest
    with the fsync of the container's row that follows (a file's data would need its own fsync:
    delayed allocation could leave it empty after a crash; ~0.8 ms of every create here). Where
    user xattrs are refused (tmpfs before Linux 6.6), a synced file as before."""
    try:
        os.setxattr(directory, PARENT_XATTR, chain_id)
    except OSError as err:
        if err.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        _write_synced(directory / "parent", chain_id)


def _write_synced(path: Path, data: bytes) -> None:
    """A new file of a snapshot still in its temp dir: no temp file of its own (the dir's rename
    publishes it whole) and one fsync, for its data: delayed allocation could leave it empty
    after a crash. The entries themselves (the dirs, this file, the rename) are metadata, which
    the journal commits in order, at the latest with the fsync of the container's row that
    follows, so fsyncs of the temp dir and of the root would buy nothing (~0.4 ms each)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
