"""docker cp: stat, read (tar out) and write (tar in) paths inside a container's filesystem.

Each operation runs in a thread of its own that first unshares its mount namespace (the
rest of the daemon never sees what it mounts) and there builds the view dockerd builds for
cp: the container's root filesystem (its live overlay while it runs, else its snapshot
mounted for the moment) with its volumes, bind mounts and /etc/hosts, /etc/hostname,
/etc/resolv.conf bound over it. /proc, /dev and tmpfs mounts are not part of it, as in
Docker. When the thread ends, its namespace and every mount in it go away.

Every path is resolved by the kernel with the container's root as "/" (storage.fsroot,
openat2 RESOLVE_IN_ROOT), and trees are walked and written by directory fd without following
symlinks (storage.archive), so no symlink in the container, planted or raced, can make the
daemon read or write a host file (the class of CVE-2018-15664 and CVE-2019-14271).
"""

from __future__ import annotations

import datetime
import errno
import os
import posixpath
import queue
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import MountPoint
from dockyard.mount import Mount
from dockyard.runtime import syscalls as sc
from dockyard.shim import rootfs
from dockyard.storage import fsroot
from dockyard.storage.archive import extract_copy, tar_at

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

# Go's os.FileMode type bits, as the X-Docker-Container-Path-Stat header carries them
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class PathStat(msgspec.Struct):
    """Docker's ContainerPathStat (base64 JSON in the X-Docker-Container-Path-Stat header)."""
    name: str
    size: int
    mode: int  # Go os.FileMode
    mtime: str  # RFC 3339 with nanoseconds
    link_target: str = msgspec.field(default="", name="linkTarget")


@dataclass(frozen=True)
class Bind:
    source: str  # host path
    destination: str  # path in the container
    writable: bool
    beneath: str = ""  # when set, ``source`` is this directory plus a part a container may shape


@dataclass(frozen=True)
class View:
    """What to mount to see a container's files as dockerd's cp does."""
    live_root: Path | None  # the running container's rootfs mount
    rootfs_mounts: tuple[Mount, ...]  # a stopped container's snapshot, mounted for the operation
    binds: tuple[Bind, ...]
    scratch: Path  # where a stopped container's snapshot is mounted (a fresh dir below it)


def view_binds(mounts: list[MountPoint], network_files: dict[str, str],
               volume_path: Callable[[str], str]) -> tuple[Bind, ...]:
    """The bind mounts of the view, shallowest destination first (as the runtime mounts them).
    ``volume_path(name)`` is a volume's content directory on the host (the volume service's
    VolumeMounter.volume_path): a volume-subpath source must stay beneath it."""
    binds = []
    for m in mounts:
        if m.type not in ("bind", "volume") or not m.source:
            continue  # tmpfs, or a plugin volume never mounted: nothing on the host to show
        beneath = ""
        if m.type == "volume" and m.name:
            content = volume_path(m.name).rstrip("/")
            if content and (m.source == content or m.source.startswith(f"{content}/")):
                beneath = content
        binds.append(Bind(m.source, m.destination, m.rw, beneath))
    for destination, source in network_files.items():
        if source and os.path.exists(source):
            binds.append(Bind(source, destination, True))
    return tuple(sorted(binds, key=lambda b: posixpath.normpath(b.destination).count("/")))


def go_mode(st_mode: int) -> int:
    mode = stat.S_IMODE(st_mode) & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET}.get(kind, 0)
    for bit, go_bit in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID), (stat.S_ISVTX, _GO_STICKY)):
        if st_mode & bit:
            mode |= go_bit
    return mode


def _go_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC: fraction without trailing zeros."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _go_base(path: str) -> str:
    """Go's filepath.Base: trailing slashes dropped, "/" for the root."""
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def not_found(path: str, container: str) -> errdefs.NotFound:
    return errdefs.NotFound(f"Could not find the file {path} in container {container}")


# ---- the view thread ---------------------------------------------------------------------

class _Stopped(Exception):
    """The consumer went away: unwind the worker."""


_DONE = object()


class _Worker:
    """One thread in a private mount namespace holding the view; ``work(root_fd, emit)`` runs
    there and hands items (a result, tar chunks) to the caller through a small queue."""

    def __init__(self, view: View, work: Callable[[int, Callable[[object], None]], None]) -> None:
        self._view = view
        self._work = work
        self._items: queue.Queue[object] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="container-fs", daemon=True)
        self._thread.start()

    def _emit(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _main(self) -> None:
        try:
            _enter_private_namespace()
            with _mounted(self._view) as root_fd:
                self._work(root_fd, self._emit)
            self._emit(_DONE)
        except _Stopped:
            pass
        except BaseException as err:
            if isinstance(err, OSError):  # what the kernel refused, said without host paths
                err = errdefs.System(f"copying files of the container failed: {err.strerror}")
            try:
                self._emit(err)
            except _Stopped:
                pass

    def get(self) -> object:
        """The next item (blocking); None at the end; a worker's error is raised here."""
        item = self._items.get()
        if isinstance(item, BaseException):
            self._stop.set()
            raise item
        if item is _DONE:
            self._stop.set()
            return None
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._items.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


def _enter_private_namespace() -> None:
    # unshare(CLONE_NEWNS) also unshares this thread's fs (root, cwd): the rest of the daemon
    # keeps the host's namespace. Slave, so nothing mounted here propagates back to the host.
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)


class _mounted:
    """Context manager: the view mounted in this thread's namespace; yields the root's fd."""

    def __init__(self, view: View) -> None:
        self._view = view
        self._tmp: str | None = None
        self._root_fd = -1

    def __enter__(self) -> int:
        view = self._view
        if view.live_root is not None:
            root = str(view.live_root)
        else:
            view.scratch.mkdir(parents=True, exist_ok=True)
            self._tmp = root = tempfile.mkdtemp(prefix="cp-", dir=view.scratch)
            rootfs.mount_all(view.rootfs_mounts, Path(root))
        try:
            # opened after unshare: the fd is this namespace's copy of the mount, so the binds
            # made below are seen through it
            self._root_fd = os.open(root, _DIR | os.O_NOFOLLOW)
            for bind in view.binds:
                _bind(self._root_fd, bind)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self._root_fd

    def __exit__(self, *exc: object) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
        if self._tmp is not None:
            sc.umount2(self._tmp, sc.MNT_DETACH)  # with the binds on it
            os.rmdir(self._tmp)
            self._tmp = None


def _bind(root_fd: int, bind: Bind) -> None:
    source_fd = _open_source(bind)
    try:
        is_dir = stat.S_ISDIR(os.fstat(source_fd).st_mode)
        target_fd = _mount_point(root_fd, bind.destination, is_dir)
        if target_fd is None:
            return
        try:
            # both ends through /proc/self/fd: the kernel mounts exactly the inodes resolved
            # above, whatever a racing process renames in between
            sc.mount(f"/proc/self/fd/{source_fd}", f"/proc/self/fd/{target_fd}", None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(target_fd)
        if not bind.writable:
            top = fsroot.open_in_root(root_fd, bind.destination, os.O_PATH)
            try:
                sc.mount(None, f"/proc/self/fd/{top}", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
            finally:
                os.close(top)
    finally:
        os.close(source_fd)


def _open_source(bind: Bind) -> int:
    if not bind.beneath:
        return os.open(bind.source, os.O_PATH | os.O_CLOEXEC)
    base_fd = os.open(bind.beneath, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rest = bind.source[len(bind.beneath):].strip("/")
        return fsroot.open_beneath_no_symlinks(base_fd, rest, os.O_PATH) if rest else os.dup(base_fd)
    finally:
        os.close(base_fd)


def _mount_point(root_fd: int, destination: str, is_dir: bool) -> int | None:
    """An O_PATH fd of ``destination`` in the container, made (as dockerd does) when missing;
    None when it cannot be (a file where a directory is needed: the runtime fails there too)."""
    try:
        return fsroot.open_in_root(root_fd, destination, os.O_PATH)
    except FileNotFoundError:
        pass
    parent = posixpath.dirname(posixpath.normpath("/" + destination))
    name = posixpath.basename(posixpath.normpath("/" + destination))
    try:
        parent_fd = _make_dirs(root_fd, parent)
    except OSError:
        return None
    try:
        if is_dir:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=parent_fd))
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError:
        return None
    finally:
        os.close(parent_fd)


def _make_dirs(root_fd: int, path: str) -> int:
    """mkdir -p inside the root (each level resolved from the root again); an fd of the last."""
    fd = os.dup(root_fd)
    done = ""
    try:
        for part in [p for p in path.split("/") if p]:
            done += "/" + part
            try:
                child = fsroot.open_in_root(root_fd, done, _DIR)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                child = fsroot.open_in_root(root_fd, done, _DIR)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---- the operations (run in the worker, given the root's fd) -------------------------------

@dataclass
class _Target:
    """A requested path: the fd of its resolved directory and the entry in it ("" for the
    directory itself), with Docker's cleaned form of the path."""
    clean: str
    dir_fd: int
    base: str
    st: os.stat_result


def _resolve(root_fd: int, path: str, container: str) -> _Target:
    """Docker's ResolvePath + lstat: every component but the last is followed (in the root)."""
    clean = fsroot.clean_path(path)
    parent, base = clean.rsplit("/", 1)
    try:
        dir_fd = fsroot.open_in_root(root_fd, parent or "/", _DIR)
    except (FileNotFoundError, NotADirectoryError):
        raise not_found(path, container) from None
    except OSError as err:
        raise errdefs.System(f"resolving {path} in container {container}: {err.strerror}") from None
    try:
        base = "" if base == "." else base
        st = os.stat(dir_fd) if not base else os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
    except BaseException as err:
        os.close(dir_fd)
        if isinstance(err, (FileNotFoundError, NotADirectoryError)):
            raise not_found(path, container) from None
        raise
    return _Target(clean, dir_fd, base, st)


def _link_target(root_fd: int, target: _Target) -> str:
    """Where a symlink leads, fully resolved in the container, as an absolute container path."""
    try:
        fd = fsroot.open_in_root(root_fd, target.clean, os.O_PATH)
    except OSError:  # dangling: follow it by name only, as Docker's FollowSymlinkInScope would
        link = os.readlink(target.base, dir_fd=target.dir_fd)
        return posixpath.normpath(posixpath.join(posixpath.dirname(target.clean.rstrip("/")) or "/", link))
    try:
        return fsroot.path_in_root(root_fd, fd)
    finally:
        os.close(fd)


def _path_stat(root_fd: int, target: _Target) -> PathStat:
    link = _link_target(root_fd, target) if stat.S_ISLNK(target.st.st_mode) else ""
    return PathStat(name=_go_base(target.clean), size=target.st.st_size, mode=go_mode(target.st.st_mode),
                    mtime=_go_time(target.st.st_mtime_ns), link_target=link)


def stat_path(view: View, path: str, container: str) -> PathStat:
    """HEAD /containers/{id}/archive (blocking: call from a worker thread)."""
    def work(root_fd: int, emit: Callable[[object], None]) -> None:
        target = _resolve(root_fd, path, container)
        try:
            emit(_path_stat(root_fd, target))
        finally:
            os.close(target.dir_fd)

    worker = _Worker(view, work)
    try:
        result = worker.get()
    finally:
        worker.close()
    assert isinstance(result, PathStat)
    return result


class ArchiveReader:
    """GET /containers/{id}/archive: ``stat`` first, then ``next_chunk`` until None; ``close``
    stops the worker early. Blocking calls: run them in a worker thread."""

    def __init__(self, view: View, path: str, container: str) -> None:
        def work(root_fd: int, emit: Callable[[object], None]) -> None:
            target = _resolve(root_fd, path, container)
            try:
                emit(_path_stat(root_fd, target))
                # dockerd's rebase: the top entry takes the requested name ("foo" for /foo and
                # /foo/, "." for /foo/., nothing for /), whatever a symlink on the way resolved to
                name = _go_base(target.clean)
                name = "" if name == "/" else name
                if target.base:
                    chunks = tar_at(target.dir_fd, target.base, name)
                else:
                    chunks = tar_at(-1, "", name, top_fd=target.dir_fd)
                for chunk in chunks:
                    emit(chunk)
            finally:
                os.close(target.dir_fd)

        self._worker = _Worker(view, work)
        try:
            first = self._worker.get()
        except BaseException:
            self._worker.close()
            raise
        assert isinstance(first, PathStat)
        self.stat = first

    def next_chunk(self) -> bytes | None:
        chunk = self._worker.get()
        assert chunk is None or isinstance(chunk, bytes)
        return chunk

    def close(self) -> None:
        self._worker.close()


def extract(view: View, path: str, container: str, spool: BinaryIO, owner: tuple[int, int] | None,
            no_overwrite_dir_non_dir: bool) -> None:
    """PUT /containers/{id}/archive: unpack ``spool`` (a seekable tar) into the directory
    ``path``, following every symlink of it in the container (as dockerd: one may point to the
    directory to fill). Blocking: call from a worker thread."""
    def work(root_fd: int, emit: Callable[[object], None]) -> None:
        try:
            dest_fd = fsroot.open_in_root(root_fd, fsroot.clean_path(path), _DIR)
        except FileNotFoundError:
            raise not_found(path, container) from None
        except NotADirectoryError:
            raise errdefs.InvalidParameter("extraction point is not a directory") from None
        try:
            extract_copy(spool, dest_fd, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
        except errdefs.System as err:
            if isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EROFS:
                raise errdefs.InvalidParameter("container rootfs is marked read-only") from None
            raise
        finally:
            os.close(dest_fd)
        emit(True)

    worker = _Worker(view, work)
    try:
        worker.get()
    finally:
        worker.close()


def check_writable(path: str, mounts: list[MountPoint], readonly_rootfs: bool) -> None:
    """dockerd's rule, by the path as written: inside a volume, the volume must be writable;
    elsewhere, the root filesystem. dockerd answers both with 400 (InvalidParameter)."""
    clean = posixpath.normpath("/" + path)
    best: MountPoint | None = None
    for m in mounts:
        dest = posixpath.normpath("/" + m.destination)
        if clean == dest or clean.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(posixpath.normpath("/" + best.destination)):
                best = m
    if best is not None:
        if not best.rw:
            raise errdefs.InvalidParameter("mounted volume is marked read-only")
    elif readonly_rootfs:
        raise errdefs.InvalidParameter("container rootfs is marked read-only")
