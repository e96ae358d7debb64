"""COPY and ADD: sources found in the context (or a stage's rootfs), written into a rootfs.

Sources are resolved inside their root (``openat2`` with RESOLVE_IN_ROOT), so a symlink in
the context can never pull in a host file; wildcards are Go's ``filepath.Match`` (dot files
included). The copy is a tar of the sources, named as they land, unpacked by the storage
layer's safe extraction at the destination (resolved inside the image's rootfs), owned by
root or ``--chown`` and with ``--chmod`` applied, as Docker does. ``checksum`` is the cache's
view of the sources: every file's name, mode, owner, size, link target and content.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dockyard import errdefs
from dockyard.apitypes import dockerignore
from dockyard.mount import Mount
from dockyard.runtime import syscalls as sc
from dockyard.storage import fsroot
from dockyard.storage.archive import extract_copy
from dockyard.storage.fsutil import remove_tree

_WILDCARD = set("*?[")
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass(frozen=True)
class Source:
    path: str  # absolute host path, inside its root
    name: str  # the name it lands under when copied into a directory
    is_dir: bool
    unpack: bool = False  # ADD of a local archive: extracted at the destination


def _excluded(rel: str, exclude: list[dockerignore.Pattern]) -> bool:
    return bool(exclude) and rel not in ("", ".") and dockerignore.excluded(rel, exclude)


def _forbidden(cmd: str, src: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"{cmd} failed: forbidden path outside the build context: {src} ()")


def resolve_sources(cmd: str, root: Path, patterns: list[str], in_context: bool) -> list[Source]:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        found: list[Source] = []
        for pattern in patterns:
            rel = posixpath.normpath(pattern) if in_context else posixpath.normpath("/" + pattern)
            if in_context and (rel == ".." or rel.startswith("../")):
                raise _forbidden(cmd, pattern)
            rel = rel.lstrip("/") or "."
            names = [rel]
            if _WILDCARD & set(rel):
                names = sorted(glob.glob(rel, root_dir=root, include_hidden=True))
                if not names:
                    raise errdefs.InvalidParameter(
                        f"{cmd} failed: no source files were specified" if in_context else
                        f"{cmd} failed: no source files were specified (pattern {pattern})")
            for name in names:
                try:
                    fd = fsroot.open_in_root(root_fd, name, os.O_PATH)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENOTDIR):
                        where = "build context or excluded by .dockerignore" if in_context else "the stage or image"
                        raise errdefs.InvalidParameter(
                            f"{cmd} failed: file not found in {where}: stat {pattern}: file does not exist") from None
                    raise
                try:
                    real = fsroot.fd_path(fd)
                    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
                finally:
                    os.close(fd)
                # the name as written (a symlink source lands under its own name, with its target's content)
                base = posixpath.basename(name.rstrip("/")) if name != "." else ""
                found.append(Source(path=real, name=base, is_dir=is_dir))
        return found
    finally:
        os.close(root_fd)


def _walk(path: str, rel: str, exclude: list[dockerignore.Pattern]) -> Iterator[tuple[str, str, os.stat_result]]:
    if _excluded(rel, exclude):
        return
    st = os.lstat(path)
    yield path, rel, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(path)):
            yield from _walk(os.path.join(path, name), posixpath.join(rel, name) if rel else name, exclude)


def checksum(sources: list[Source], exclude: list[dockerignore.Pattern]) -> str:
    h = hashlib.sha256()
    for source in sources:
        for path, rel, st in _walk(source.path, "" if source.is_dir else source.name, exclude):
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size  # a directory's size is the filesystem's
            h.update(f"{source.name}/{rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0{size}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            h.update(b"\n")
    return h.hexdigest()


def is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if any(head.startswith(m) for m in _ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


@contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    """The rootfs mounted at ``target`` for the time of the block."""
    target.mkdir(parents=True, exist_ok=True)
    mount = mounts[0]
    sc.mount(mount.source, str(target), mount.type, 0, ",".join(mount.options))
    try:
        yield target
    finally:
        sc.umount2(str(target), sc.MNT_DETACH)
        target.rmdir()


def unmount(target: str) -> None:
    sc.umount2(target, sc.MNT_DETACH)


def _is_dir_in_root(root_fd: int, path: str) -> bool:
    try:
        fd = fsroot.open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def _make_dirs(root_fd: int, path: str, owner: tuple[int, int] | None) -> int:
    """An O_RDONLY fd of the directory ``path`` inside the root, made as needed (0755)."""
    parts = [p for p in path.split("/") if p and p != "."]
    current = fsroot.open_in_root(root_fd, "/", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                nxt = fsroot.open_in_root(current, part, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=current)
                os.chmod(part, 0o755, dir_fd=current)  # whatever the umask
                if owner is not None:
                    os.chown(part, owner[0], owner[1], dir_fd=current, follow_symlinks=False)
                nxt = fsroot.open_in_root(current, part, os.O_PATH | os.O_DIRECTORY)
            except NotADirectoryError:
                raise errdefs.InvalidParameter(f"cannot copy to {path}: a path component is not a directory") from None
            os.close(current)
            current = nxt
        result = os.open(f"/proc/self/fd/{current}", os.O_RDONLY | os.O_DIRECTORY)
    finally:
        os.close(current)
    return result


def make_dir(rootfs: Path, path: str) -> bool:
    """Make the directory ``path`` in the rootfs; False when it was there already."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        if _is_dir_in_root(root_fd, path):
            return False
        os.close(_make_dirs(root_fd, path, None))
        return True
    finally:
        os.close(root_fd)


def copy_into(rootfs: Path, sources: list[Source], dest: str, owner: tuple[int, int] | None,
              chmod: int | None, exclude: list[dockerignore.Pattern]) -> None:
    """Write the sources at ``dest`` (absolute, cleaned; a trailing "/" kept) under ``rootfs``."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        dest_is_dir = dest.endswith("/") or len(sources) > 1 or _is_dir_in_root(root_fd, dest)
        if len(sources) > 1 and not dest.endswith("/"):
            raise errdefs.InvalidParameter(
                "When using COPY with more than one source file, the destination must be a directory and end with a /")
        for source in sources:
            if source.is_dir or source.unpack:
                target_dir, rename = dest, None
            elif dest_is_dir:
                target_dir, rename = dest, source.name
            else:
                target_dir, rename = posixpath.dirname(dest.rstrip("/")) or "/", posixpath.basename(dest.rstrip("/"))
            dest_fd = _make_dirs(root_fd, target_dir, owner)
            try:
                if source.unpack:
                    with open(source.path, "rb") as archive:
                        extract_copy(archive, dest_fd, owner=owner, any_symlink_target=True)
                    continue
                if not source.is_dir and stat.S_ISREG(os.stat(source.path).st_mode):
                    if not _excluded(source.name, exclude):
                        _copy_file(source.path, dest_fd, rename or source.name, owner or (0, 0), chmod)
                    continue
                with tempfile.TemporaryFile() as spool:
                    _tar(spool, source, rename, owner or (0, 0), chmod, exclude)
                    spool.seek(0)
                    extract_copy(spool, dest_fd, owner=owner or (0, 0), any_symlink_target=True)
            finally:
                os.close(dest_fd)
    finally:
        os.close(root_fd)


def _copy_file(path: str, dest_fd: int, name: str, owner: tuple[int, int], chmod: int | None) -> None:
    """One regular file (or a symlink's target: a source lands with its target's content),
    copied in the kernel: the common big COPY never goes through a tar. What is at ``name``
    goes first, never followed, as the tar extraction of the directory case replaces it."""
    src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(src)
        try:
            existing = os.lstat(name, dir_fd=dest_fd)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(existing.st_mode):
                remove_tree(name, dir_fd=dest_fd)
            else:
                os.unlink(name, dir_fd=dest_fd)
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dest_fd)
        try:
            _kernel_copy(src, dst, st.st_size)
            # chown clears set-id bits: owner first, then the mode
            os.fchown(dst, *owner)
            os.fchmod(dst, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _kernel_copy(src: int, dst: int, size: int) -> None:
    """copy_file_range (reflinks or in-kernel copy on one filesystem), else sendfile."""
    offset = 0
    use_range = True
    while offset < size:
        if use_range:
            try:
                sent = os.copy_file_range(src, dst, size - offset, offset, offset)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                use_range = False
                continue
        else:
            os.lseek(dst, offset, os.SEEK_SET)
            sent = os.sendfile(dst, src, offset, size - offset)
        if sent == 0:
            break  # the file shrank while we copied: what there was is copied
        offset += sent


def _tar(out: tempfile._TemporaryFileWrapper, source: Source, rename: str | None, owner: tuple[int, int],
         chmod: int | None, exclude: list[dockerignore.Pattern]) -> None:
    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if _excluded(info.name if source.is_dir else source.name, exclude):
            return None
        info.uid, info.gid = owner
        info.uname = info.gname = ""
        if chmod is not None and not info.issym():
            info.mode = chmod
        return info

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if source.is_dir:
            for name in sorted(os.listdir(source.path)):
                tar.add(os.path.join(source.path, name), arcname=name, filter=fix)
        else:
            tar.add(source.path, arcname=rename or source.name, filter=fix)
