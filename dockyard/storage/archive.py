"""Layer tars in and out: Docker layer semantics over overlayfs directories.

In: ``extract_layer`` unpacks a (gzip / zstd / bzip2 / xz / plain) layer tar into an
empty overlay lower directory, turning Docker's ``.wh.<name>`` entries into overlay
whiteouts (char device 0/0) and ``.wh..wh..opq`` into the opaque xattr, and refusing
(errdefs.InvalidParameter) any entry that would write outside the directory: absolute
names, ``..`` escapes, paths through symlinks, hardlinks to outside.

Every path is created relative to a directory file descriptor that was opened with
O_NOFOLLOW, one component at a time, so a symlink met on the way (one the tar made
earlier, or one planted in dest) is refused instead of followed.

Out: ``tar_dir_changes`` turns an overlay upper directory back into a Docker layer tar
(for commit / container diff); ``tar_dir`` tars a whole tree (export).

docker cp uses the same two halves on a directory fd inside a container: ``extract_copy``
(plain tar semantics, no whiteouts; every entry checked before anything is written) and
``tar_at`` (walks by fd, never following a symlink).
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import lzma
import os
import queue
import stat
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from dockyard import errdefs
from dockyard.storage.fsutil import remove_tree

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX_PREFIX = "SCHILY.xattr."
# Overlay's own bookkeeping (opaque, redirect, origin, ...) must never come from or go into a
# layer tar: a tar that set them could make overlayfs show paths the layer does not hold.
_PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")

_CHUNK = 1 << 20
_TAR_BUFSIZE = 1 << 20
_DIR_FD_CACHE_MAX = 512


@dataclass(frozen=True)
class ExtractResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar stream
    size: int  # bytes of file content unpacked (Docker's layer size)
    tar_size: int  # length of the uncompressed tar stream


# ---- decompression ----------------------------------------------------------------------

class _Prefixed:
    """A reader that first returns bytes already read (to sniff the magic), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data + self._rest.read(n - len(data)) if len(data) < n else data
        return self._rest.read(n)


class _GzipStream:
    """gzip members back to back (as pigz and some registries write them), inflated from
    1 MiB input slices: far fewer Python round trips than gzip.GzipFile's 8 KiB reads."""

    def __init__(self, src: _Prefixed) -> None:
        self._src = src
        self._inflate = zlib.decompressobj(wbits=31)
        self._started = False  # has the current member been fed any input?
        self._input = b""

    def read(self, n: int = -1) -> bytes:
        while True:
            if not self._input:
                self._input = self._src.read(_CHUNK)
                if not self._input:
                    if self._started:
                        raise EOFError("compressed layer ends in the middle of a gzip stream")
                    return b""
            self._started = True
            out = self._inflate.decompress(self._input, max(n, 0))
            self._input = self._inflate.unconsumed_tail
            if self._inflate.eof:  # next member, if any
                self._input = self._inflate.unused_data + self._input
                self._inflate = zlib.decompressobj(wbits=31)
                self._started = False
            if out:
                return out


def _decompressed(fileobj: BinaryIO) -> BinaryIO:
    head = b""
    while len(head) < 6:
        more = fileobj.read(6 - len(head))
        if not more:
            break
        head += more
    src = _Prefixed(head, fileobj)
    if head.startswith(b"\x1f\x8b"):
        return _GzipStream(src)  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError:
            raise errdefs.NotImplementedFeature(
                "layer is zstd-compressed but this daemon has no zstd support "
                "(install the 'zstandard' Python package)") from None
        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)  # type: ignore[arg-type]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src)  # type: ignore[arg-type]
    return src  # type: ignore[return-value]


class _Pipeline:
    """The uncompressed tar, produced by a worker thread that reads, decompresses, hashes
    (the diff ID) and copies it to ``tee``, while the caller's thread parses the tar and
    writes files. zlib, zstd, hashlib and write() release the GIL, so on two cores the
    two halves really overlap. ``read`` follows the file protocol tarfile expects."""

    def __init__(self, src: BinaryIO, tee: BinaryIO | None) -> None:
        self._src = src
        self._tee = tee
        self.hash = hashlib.sha256()
        self.size = 0
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._produce, name="layer-reader", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = self._src.read(_CHUNK)
            except errdefs.DockyardError as err:
                item = err
            except Exception as err:  # each decompressor has its own error classes; all mean bad input
                item = errdefs.InvalidParameter(f"invalid layer data: cannot decompress: {err}")
            else:
                if item:
                    try:
                        self.hash.update(item)
                        self.size += len(item)
                        if self._tee is not None:
                            self._tee.write(item)
                    except BaseException as err:  # e.g. the disk is full: the caller re-raises it
                        item = err
            while not self._stop.is_set():
                try:
                    self._chunks.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def _next(self) -> bool:
        """Move the next chunk into the buffer; False at the end."""
        if self._eof:
            return False
        item = self._chunks.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        if not item:
            self._eof = True
            return False
        self._buf = memoryview(item)
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._buf and not self._next():
            return b""
        if 0 <= n <= len(self._buf):
            data = self._buf[:n]
            self._buf = self._buf[n:]
            return data.tobytes()
        parts = [self._buf.tobytes()]  # a read across chunks: rare with tarfile's aligned reads
        got = len(self._buf)
        self._buf = memoryview(b"")
        while (n < 0 or got < n) and self._next():
            take = len(self._buf) if n < 0 else min(len(self._buf), n - got)
            parts.append(self._buf[:take].tobytes())
            self._buf = self._buf[take:]
            got += take
        return b"".join(parts)

    def close(self) -> None:
        """Stop the worker (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._chunks.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


# ---- extraction -------------------------------------------------------------------------

def _split(name: str, entry: str) -> tuple[str, ...]:
    """The components of a tar path relative to the layer root, or refuse it."""
    if name.startswith("/"):
        raise errdefs.InvalidParameter(f"invalid layer tar: entry {entry!r} has an absolute path")
    if "\x00" in name:
        raise errdefs.InvalidParameter(f"invalid layer tar: entry {entry!r} has a NUL in its path")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise errdefs.InvalidParameter(
                    f"invalid layer tar: entry {entry!r} points outside the layer")
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def _refuse(entry: str, why: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"invalid layer tar: refusing entry {entry!r}: {why}")


class _Extractor:
    def __init__(self, dest: Path | int, whiteouts: bool = True, owner: tuple[int, int] | None = None,
                 no_overwrite_dir_non_dir: bool = False) -> None:
        """``dest`` a path or an open directory fd (reopened, the caller keeps its own); ``owner``
        replaces every entry's uid/gid; ``whiteouts`` False writes .wh. entries as plain files."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        self._root_fd = os.open(".", flags, dir_fd=dest) if isinstance(dest, int) else os.open(dest, flags)
        self._whiteouts = whiteouts
        self._owner = owner
        self._no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        self._dirs: dict[tuple[str, ...], int] = {}
        self._dir_times: list[tuple[tuple[str, ...], int, int]] = []
        self.size = 0
        # the fd of the (plain, seekable) tar's file: member data is then copied by the kernel
        self.data_fd: int | None = None

    def close(self) -> None:
        self._forget_dirs()
        os.close(self._root_fd)

    def _forget_dirs(self, under: tuple[str, ...] = ()) -> None:
        """Close cached directory fds at or below ``under`` (all of them by default)."""
        for parts in [p for p in self._dirs if p[: len(under)] == under]:
            os.close(self._dirs.pop(parts))

    def _bound_cache(self) -> None:
        # Only called between entries: an fd handed out for the current entry stays open.
        if len(self._dirs) >= _DIR_FD_CACHE_MAX:
            self._forget_dirs()

    def _dir_fd(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int:
        """An fd of the directory ``parts``, walked one component at a time without following
        symlinks; missing directories are made (0755, as Docker does) when ``create``."""
        if not parts:
            return self._root_fd
        cached = self._dirs.get(parts)
        if cached is not None:
            return cached
        fd = self._root_fd
        opened: list[int] = []
        try:
            for i, part in enumerate(parts):
                prefix = parts[: i + 1]
                if prefix in self._dirs:
                    fd = self._dirs[prefix]
                    continue
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    child = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise _refuse(entry, f"{'/'.join(prefix)} does not exist in the layer") from None
                    os.mkdir(part, dir_fd=fd)
                    child = os.open(part, flags, dir_fd=fd)
                    os.fchmod(child, 0o755)  # exactly, whatever the daemon's umask
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _refuse(entry, f"{'/'.join(prefix)} is a symlink or not a directory; "
                                             "paths through it could leave the layer") from None
                    raise
                opened.append(child)
                fd = child
        except BaseException:
            for child in opened:
                os.close(child)
            raise
        # every prefix opened here is cached so the next entry in the same tree is cheap
        for i, part in enumerate(parts):
            prefix = parts[: i + 1]
            if prefix not in self._dirs:
                self._dirs[prefix] = opened.pop(0)
        return fd

    def _remove_existing(self, parent: tuple[str, ...], parent_fd: int, name: str, keep_dir: bool) -> bool:
        """Clear the way for a new entry; returns True when an existing directory is kept."""
        try:
            st = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        self._check_overwrite(parent + (name,), st, keep_dir)
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self._forget_dirs(under=parent + (name,))  # fds into the tree about to go
            remove_tree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return False

    def _check_overwrite(self, parts: tuple[str, ...], existing: os.stat_result, new_is_dir: bool) -> None:
        if not self._no_overwrite_dir_non_dir or stat.S_ISDIR(existing.st_mode) == new_is_dir:
            return
        path = "/".join(parts)
        if new_is_dir:
            raise errdefs.InvalidParameter(f"cannot overwrite non-directory {path!r} with directory {path!r}")
        raise errdefs.InvalidParameter(f"cannot overwrite directory {path!r} with non-directory {path!r}")

    def check(self, member: tarfile.TarInfo) -> None:
        """Refuse now what ``apply`` would refuse later for what is already in dest (a path
        through a symlink or a file, a dir/non-dir overwrite), without writing anything."""
        parts = _split(member.name, member.name)
        fd = self._root_fd
        opened: list[int] = []
        try:
            for i, part in enumerate(parts):
                try:
                    st = os.lstat(part, dir_fd=fd)
                except FileNotFoundError:
                    return  # the tar makes it: checked again when it is written
                if i == len(parts) - 1:
                    self._check_overwrite(parts, st, member.isdir())
                    return
                if not stat.S_ISDIR(st.st_mode):
                    raise errdefs.InvalidParameter(
                        f"refusing to extract {member.name!r}: {'/'.join(parts[: i + 1])} in the destination "
                        "is a symlink or not a directory; nothing was copied")
                fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                opened.append(fd)
        finally:
            for fd in opened:
                os.close(fd)

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        entry = member.name
        parts = _split(entry, entry)
        if not parts:
            return  # the layer root itself: its attributes come from the container's upper dir
        parent, base = parts[:-1], parts[-1]
        self._bound_cache()
        parent_fd = self._dir_fd(parent, entry)

        if self._whiteouts and base.startswith(WHITEOUT_PREFIX):
            if base == WHITEOUT_OPAQUE:
                os.setxattr(parent_fd, OVERLAY_OPAQUE_XATTR, b"y")
            elif not base.startswith(WHITEOUT_PREFIX * 2):  # .wh..wh.* are aufs bookkeeping
                hidden = base[len(WHITEOUT_PREFIX):]
                if hidden in ("", ".", ".."):
                    raise _refuse(entry, "whiteout of an invalid name")
                self._remove_existing(parent, parent_fd, hidden, keep_dir=False)
                os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
                os.chown(hidden, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
            return

        kept_dir = self._remove_existing(parent, parent_fd, base, keep_dir=member.isdir())
        if member.isreg():
            self._write_file(tar, member, parent_fd, base)
            return
        if member.islnk():
            self._hardlink(member, parent_fd, base)
            return
        if member.isdir():
            if not kept_dir:
                os.mkdir(base, 0o700, dir_fd=parent_fd)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent_fd)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent_fd)
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent_fd)
        else:
            raise _refuse(entry, f"unsupported tar entry type {member.type!r}")

        os.chown(base, *self._ids(member), dir_fd=parent_fd, follow_symlinks=False)
        if not member.issym():  # symlink modes are meaningless and lchmod does not exist on Linux
            os.chmod(base, member.mode & 0o7777, dir_fd=parent_fd)
        self._set_xattrs(member, f"/proc/self/fd/{parent_fd}/{base}")
        mtime_ns, atime_ns = _times(member)
        if member.isdir():
            # creating entries inside would bump the mtime again: set directory times last
            self._dir_times.append((parts, atime_ns, mtime_ns))
        else:
            os.utime(base, ns=(atime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)

    def _ids(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self._owner or (member.uid, member.gid)

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, base: str) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent_fd)
        try:
            if self.data_fd is not None and not member.sparse:
                _copy_range(self.data_fd, fd, member.offset_data, member.size)
            else:
                src = tar.extractfile(member)
                assert src is not None  # a regular member always has data
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            self.size += member.size
            # chown clears set-id bits and file capabilities: owner first, then mode, then xattrs
            os.fchown(fd, *self._ids(member))
            os.fchmod(fd, member.mode & 0o7777)
            self._set_xattrs(member, fd)
            mtime_ns, atime_ns = _times(member)
            os.utime(fd, ns=(atime_ns, mtime_ns))
        finally:
            os.close(fd)

    def _hardlink(self, member: tarfile.TarInfo, parent_fd: int, base: str) -> None:
        entry = member.name
        target = _split(member.linkname.lstrip("/"), entry)  # absolute link names are layer-relative
        if not target:
            raise _refuse(entry, "hardlink to the layer root")
        target_parent = self._dir_fd(target[:-1], entry, create=False)
        try:
            # no AT_SYMLINK_FOLLOW: linking to a symlink links the symlink itself, never its target
            os.link(target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _refuse(entry, f"hardlink target {member.linkname!r} is not in the layer") from None
        except PermissionError:  # linkat refuses directories
            raise _refuse(entry, f"hardlink target {member.linkname!r} is a directory") from None

    @staticmethod
    def _set_xattrs(member: tarfile.TarInfo, where: int | str) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX_PREFIX):
                continue
            name = key[len(_XATTR_PAX_PREFIX):]
            if name.startswith(_PRIVATE_XATTR_PREFIXES):
                continue
            value_bytes = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(where, int):
                    os.setxattr(where, name, value_bytes)
                else:
                    os.setxattr(where, name, value_bytes, follow_symlinks=False)
            except OSError as err:
                # as Docker: a filesystem without that xattr namespace (or user.* on a symlink)
                # loses the attribute rather than failing the whole layer
                if err.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        """Apply directory times, deepest first, once nothing more is written inside them."""
        for parts, atime_ns, mtime_ns in reversed(self._dir_times):
            self._bound_cache()
            parent_fd = self._dir_fd(parts[:-1], "/".join(parts), create=False)
            os.utime(parts[-1], ns=(atime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)


def _copy_range(src: int, dst: int, offset: int, size: int) -> None:
    """``size`` bytes of the file ``src`` from ``offset`` to the end of ``dst``, in the kernel:
    copy_file_range, else sendfile (another filesystem on an older kernel)."""
    done = 0
    use_range = True
    while done < size:
        if use_range:
            try:
                sent = os.copy_file_range(src, dst, size - done, offset + done)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                use_range = False
                continue
        else:
            sent = os.sendfile(dst, src, offset + done, size - done)
        if sent == 0:
            raise tarfile.ReadError("unexpected end of data")
        done += sent


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime_ns = int(member.mtime * 1_000_000_000)
    atime = member.pax_headers.get("atime")
    try:
        atime_ns = int(float(atime) * 1_000_000_000) if atime else mtime_ns
    except ValueError:
        atime_ns = mtime_ns
    return mtime_ns, atime_ns


def extract_layer(fileobj: BinaryIO, dest: Path, tee: BinaryIO | None = None) -> ExtractResult:
    """Unpack a layer tar read from ``fileobj`` into ``dest`` (an existing, empty directory).

    ``tee``, when given, receives every byte of the uncompressed tar (e.g. a
    ContentStore writer, to keep the exact diff). Raises errdefs.InvalidParameter for
    a corrupt tar or an entry escaping ``dest``; on any error ``dest`` is left
    half-filled and the caller removes it."""
    stream = _decompressed(fileobj)
    extractor = _Extractor(dest)
    source = _Pipeline(stream, tee)
    member: tarfile.TarInfo | None = None
    try:
        try:
            with tarfile.open(fileobj=source, mode="r|", bufsize=_TAR_BUFSIZE) as tar:  # type: ignore[call-overload]
                for member in tar:
                    extractor.apply(tar, member)
                member = None
                extractor.finish()
            # the end-of-archive blocks and any padding belong to the diff ID too
            while source.read(_CHUNK):
                pass
        except (tarfile.TarError, EOFError) as err:
            raise errdefs.InvalidParameter(f"invalid layer tar: {err}") from None
        except OSError as err:  # the kernel or the disk said no (ENOSPC, EPERM on mknod, ...)
            where = f" at entry {member.name!r}" if member is not None else ""
            raise errdefs.System(f"failed to extract layer{where}: {err}") from err
    finally:
        source.close()
        extractor.close()
    return ExtractResult("sha256:" + source.hash.hexdigest(), extractor.size, source.size)


def _check_link(member: tarfile.TarInfo, any_symlink_target: bool = False) -> None:
    """docker cp's rule for names and links: the entry, a hardlink's target and a relative
    symlink's target must stay inside the destination (an absolute symlink is read in the
    container's root). A build context or a COPY keeps any symlink as it is (``any_symlink_target``):
    extraction never writes through a symlink, and readers resolve them in their root."""
    _split(member.name, member.name)
    if member.islnk():
        _split(member.linkname.lstrip("/"), member.name)
    elif member.issym() and not member.linkname.startswith("/") and not any_symlink_target:
        parent = member.name.rstrip("/").rpartition("/")[0]
        _split(f"{parent}/{member.linkname}" if parent else member.linkname, member.name)


def _is_compressed(fileobj: BinaryIO) -> bool:
    head = fileobj.read(6)
    fileobj.seek(0)
    return head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00"))


def _os_file(fileobj: BinaryIO) -> int | None:
    """The fd of the file holding ``fileobj``'s bytes, to copy member data in the kernel; None
    for a tar in memory (asking a SpooledTemporaryFile for its fd would write it to disk)."""
    if isinstance(fileobj, tempfile.SpooledTemporaryFile) and not fileobj._rolled:  # type: ignore[attr-defined]
        return None
    try:
        fd = fileobj.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    flush = getattr(fileobj, "flush", None)
    if flush is not None:
        flush()  # bytes still in Python's write buffer are not in the file yet
    return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None


def extract_copy(fileobj: BinaryIO, dest_fd: int, owner: tuple[int, int] | None = None,
                 no_overwrite_dir_non_dir: bool = False, any_symlink_target: bool = False) -> None:
    """Unpack a plain (or compressed) tar into the directory ``dest_fd``, docker cp style:
    ``.wh.`` names are ordinary files, entries are owned by ``owner`` or keep the tar's ids.

    ``fileobj`` must be seekable: a first pass checks every entry (escaping names and links,
    paths through symlinks in dest, dir/non-dir overwrites) so that a refused tar changes
    nothing; only then is it extracted. A plain tar is read by seeking: the first pass reads
    headers only and the second reads each file's data once, copied in the kernel when the tar
    is in a file; a compressed one is decompressed twice. Raises errdefs.InvalidParameter for a
    refused or corrupt tar, errdefs.System for a write the kernel refused (the OSError is the cause)."""
    extractor = _Extractor(dest_fd, whiteouts=False, owner=owner,
                           no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
    member: tarfile.TarInfo | None = None
    try:
        fileobj.seek(0)
        if _is_compressed(fileobj):
            for check_only in (True, False):
                fileobj.seek(0)
                with tarfile.open(fileobj=_decompressed(fileobj), mode="r|",  # type: ignore[call-overload]
                                  bufsize=_TAR_BUFSIZE) as tar:
                    for member in tar:
                        if check_only:
                            _check_copy(extractor, member, any_symlink_target)
                        else:
                            extractor.apply(tar, member)
                    member = None
        else:
            extractor.data_fd = _os_file(fileobj)
            with tarfile.open(fileobj=fileobj, mode="r:") as tar:
                for member in tar:  # headers only: random access seeks over the data
                    _check_copy(extractor, member, any_symlink_target)
                for member in tar.getmembers():  # read once above, kept by tarfile
                    extractor.apply(tar, member)
                member = None
        extractor.finish()
    except (tarfile.TarError, EOFError) as err:
        raise errdefs.InvalidParameter(f"invalid tar archive: {err}") from None
    except OSError as err:
        where = f" at entry {member.name!r}" if member is not None else ""
        raise errdefs.System(f"failed to extract the archive{where}: {err.strerror}") from err
    finally:
        extractor.close()


def _check_copy(extractor: _Extractor, member: tarfile.TarInfo, any_symlink_target: bool) -> None:
    try:
        _check_link(member, any_symlink_target)
    except errdefs.InvalidParameter:
        raise errdefs.InvalidParameter(
            f"refusing to extract {member.name!r}: it would be written, or link, outside "
            "the destination directory (an absolute or ../ path); nothing was copied") from None
    extractor.check(member)


# ---- tar writing ------------------------------------------------------------------------

def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith(_PRIVATE_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out[_XATTR_PAX_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return out


def _header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarWriter:
    """Builds tar bytes entry by entry and hands them out in chunks of about _CHUNK."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._links: dict[tuple[int, int], str] = {}
        self.data_size = 0  # file content bytes written (hardlinks not counted): Docker's layer size

    def _take(self, force: bool = False) -> Iterator[bytes]:
        if self._buf and (force or len(self._buf) >= _CHUNK):
            yield bytes(self._buf)
            self._buf.clear()

    def entry(self, path: str, name: str, st: os.stat_result, opaque: bool = False) -> Iterator[bytes]:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        ti.pax_headers = _xattrs(path)
        mode = st.st_mode
        data_size = 0
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                ti.type, ti.linkname = tarfile.LNKTYPE, self._links[key]
            else:
                if st.st_nlink > 1:
                    self._links[key] = name
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                data_size = st.st_size
                self.data_size += data_size
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return  # sockets and the like have no place in a layer (Docker skips them too)
        self._buf += _header(ti)
        if data_size:
            yield from self._file_data(path, data_size)
        if opaque:
            marker = tarfile.TarInfo(f"{name}/{WHITEOUT_OPAQUE}")
            marker.mode, marker.uid, marker.gid, marker.mtime = ti.mode & 0o777, ti.uid, ti.gid, ti.mtime
            marker.uname = marker.gname = ""
            self._buf += _header(marker)
        yield from self._take()

    def whiteout(self, name: str, st: os.stat_result) -> Iterator[bytes]:
        parent, _, base = name.rpartition("/")
        ti = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base)
        ti.mode, ti.uid, ti.gid, ti.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
        ti.uname = ti.gname = ""
        self._buf += _header(ti)
        yield from self._take()

    def _file_data(self, path: str, size: int) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:  # the file shrank while we read: keep the header's promise
                    chunk = bytes(min(_CHUNK, left))
                left -= len(chunk)
                if not self._buf and len(chunk) >= _CHUNK:
                    yield chunk  # a big file's data as read: no copy through the buffer
                    continue
                self._buf += chunk
                yield from self._take()
        finally:
            os.close(fd)
        pad = -size % tarfile.BLOCKSIZE
        self._buf += bytes(pad)

    def end(self) -> Iterator[bytes]:
        self._buf += bytes(2 * tarfile.BLOCKSIZE)
        yield from self._take(force=True)


def _sorted_entries(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, tar name, lstat) of everything under root, depth first, names sorted.
    A stack, not recursion: a container can nest directories deeper than Python's stack."""
    levels = [iter(_sorted_entries(root))]
    prefixes = [""]
    while levels:
        entry = next(levels[-1], None)
        if entry is None:
            levels.pop()
            prefixes.pop()
            continue
        name = f"{prefixes[-1]}/{entry.name}" if prefixes[-1] else entry.name
        st = entry.stat(follow_symlinks=False)
        yield entry.path, name, st
        if stat.S_ISDIR(st.st_mode):
            levels.append(iter(_sorted_entries(entry.path)))
            prefixes.append(name)


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a 0/0 character device (also read by the build's squash)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    """An overlay opaque dir (its opaque xattr is "y")."""
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def tar_dir_changes(upper: Path) -> Iterator[bytes]:
    """A Docker layer tar of an overlay upper dir, in a deterministic (sorted) order:
    overlay whiteouts become ``.wh.<name>``, opaque dirs get a ``.wh..wh..opq`` entry."""
    writer = _TarWriter()
    for path, name, st in _walk(str(upper)):
        if is_whiteout(st):
            yield from writer.whiteout(name, st)
        else:
            yield from writer.entry(path, name, st, opaque=stat.S_ISDIR(st.st_mode) and is_opaque(path))
    yield from writer.end()


def adopt_changes(upper: Path) -> ExtractResult:
    """Make the overlay upper dir ``upper`` (not mounted) a layer directory in place, and
    return what ``extract_layer`` of ``tar_dir_changes(upper)`` would: the tar's diff ID and
    sizes, hashed as it is generated, never written.

    The directory is left as that extraction would leave it, so the merged view and a later
    ``tar_dir_changes`` of it (the tar regenerated on demand) are exactly the tar path's:
    overlay's own xattrs (origin, impure, ...) other than an opaque marker are removed, times
    are cut to whole seconds with atime = mtime (a tar header holds only the mtime, in
    seconds), sockets are dropped, the top directory becomes root-owned 0755 without xattrs.
    Each entry's header is hashed before the entry is changed; none of the changes alters a
    header, except a socket's removal bumping its directory's mtime, which is put back."""
    writer = _TarWriter()
    digest = hashlib.sha256()
    tar_size = 0
    top = str(upper)
    for path, name, st in _walk(top):
        if stat.S_ISSOCK(st.st_mode):
            parent = os.path.dirname(path)
            before = os.lstat(parent)  # already normalized: the walk yields a dir before its entries
            os.unlink(path)
            os.utime(parent, ns=(before.st_atime_ns, before.st_mtime_ns), follow_symlinks=False)
            continue
        whiteout = is_whiteout(st)
        opaque = not whiteout and stat.S_ISDIR(st.st_mode) and is_opaque(path)
        for chunk in writer.whiteout(name, st) if whiteout else writer.entry(path, name, st, opaque=opaque):
            digest.update(chunk)
            tar_size += len(chunk)
        _strip_private_xattrs(path, keep_opaque=opaque)
        seconds_ns = int(st.st_mtime) * 1_000_000_000  # what the header says, as extraction sets it
        if st.st_mtime_ns != seconds_ns or st.st_atime_ns != seconds_ns:
            os.utime(path, ns=(seconds_ns, seconds_ns), follow_symlinks=False)
    for chunk in writer.end():
        digest.update(chunk)
        tar_size += len(chunk)
    # the layer root: not in the tar; extraction makes it a fresh root-owned 0755 directory
    os.chown(top, 0, 0)
    os.chmod(top, 0o755)
    _strip_private_xattrs(top, keep_opaque=False, every=True)
    return ExtractResult("sha256:" + digest.hexdigest(), writer.data_size, tar_size)


def clone_changes(upper: Path, dest: Path) -> None:
    """Copy the overlay upper dir ``upper`` (possibly of a running container) into the empty
    directory ``dest`` as the layer directory ``adopt_changes`` would make of it: same entries,
    whiteouts, opaque markers, hardlinks, owners, modes and other xattrs, times in whole
    seconds; file data copied in the kernel. ``adopt_changes(dest)`` then gives the diff ID
    (of the copy: a file changed meanwhile is the copy's, consistently)."""
    links: dict[tuple[int, int], str] = {}
    dir_times: list[tuple[str, int]] = []
    top = str(upper)
    for path, name, st in _walk(top):
        target = os.path.join(dest, name)
        mode = st.st_mode
        seconds_ns = int(st.st_mtime) * 1_000_000_000
        if stat.S_ISDIR(mode):
            os.mkdir(target, 0o700)
            dir_times.append((target, seconds_ns))  # set once nothing more is made inside
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], target, follow_symlinks=False)
                continue
            if st.st_nlink > 1:
                links[key] = target
            _clone_file(path, target, st)
            continue  # owner, mode, xattrs and times set on the fd
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(path), target)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(target, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:
            continue  # sockets: not in a layer
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(target, stat.S_IMODE(mode))
        _copy_xattrs(path, target, opaque_ok=stat.S_ISDIR(mode))
        if not stat.S_ISDIR(mode):
            os.utime(target, ns=(seconds_ns, seconds_ns), follow_symlinks=False)
    for target, seconds_ns in reversed(dir_times):
        os.utime(target, ns=(seconds_ns, seconds_ns), follow_symlinks=False)


def _clone_file(path: str, target: str, st: os.stat_result) -> None:
    src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            done = 0
            while True:  # to the end as it is now: the file may grow or shrink meanwhile
                try:
                    sent = os.copy_file_range(src, dst, max(st.st_size - done, _CHUNK), done, done)
                except OSError as err:
                    if err.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                        raise
                    os.lseek(dst, done, os.SEEK_SET)
                    sent = os.sendfile(dst, src, done, max(st.st_size - done, _CHUNK))
                if sent == 0:
                    break
                done += sent
            # chown clears set-id bits and file capabilities: owner first, then mode, then xattrs
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
            _copy_xattrs(path, dst, opaque_ok=False)
            seconds_ns = int(st.st_mtime) * 1_000_000_000
            os.utime(dst, ns=(seconds_ns, seconds_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_xattrs(path: str, target: str | int, opaque_ok: bool) -> None:
    """What a layer tar carries (and, for a directory, a "y" opaque marker); ``target`` a path
    (not followed) or an fd."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_PRIVATE_XATTR_PREFIXES) and not (opaque_ok and name == OVERLAY_OPAQUE_XATTR):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
            if name == OVERLAY_OPAQUE_XATTR and value != b"y":
                continue
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as err:
            # gone meanwhile, or (as extraction) a namespace the filesystem refuses here
            if err.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise


def _strip_private_xattrs(path: str, keep_opaque: bool, every: bool = False) -> None:
    """Remove overlay's bookkeeping xattrs (all xattrs with ``every``); keep a "y" opaque marker
    when ``keep_opaque``."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        if not every and not name.startswith(_PRIVATE_XATTR_PREFIXES):
            continue
        if keep_opaque and name == OVERLAY_OPAQUE_XATTR:
            continue
        os.removexattr(path, name, follow_symlinks=False)


def tar_at(parent_fd: int, base: str, name: str, top_fd: int | None = None) -> Iterator[bytes]:
    """A tar of the entry ``base`` of the directory ``parent_fd`` (with everything below it when it
    is a directory) whose top entry is named ``name`` (its children ``name/child``; an empty
    ``name`` gives ``/`` and ``/child``, as dockerd does for a container's root). For a top
    directory with no name in a parent (a root, or a path ending in "/."), pass its fd as
    ``top_fd`` instead of ``base``.

    Walked by directory fd, never following a symlink: each entry is reached by the kernel
    through its parent's fd (``/proc/self/fd/<n>/<name>``, last component not followed), so a
    process racing the walk can swap names but never lead it outside the tree."""
    writer = _TarWriter()
    if top_fd is not None:
        st = os.stat(top_fd)
        path = f"/proc/self/fd/{top_fd}"
    else:
        st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        path = f"/proc/self/fd/{parent_fd}/{base}"
    yield from writer.entry(path, name or "/", st)
    if stat.S_ISDIR(st.st_mode):
        fd = os.dup(top_fd) if top_fd is not None else os.open(
            base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            yield from _tar_below(writer, fd, name)
        finally:
            os.close(fd)
    yield from writer.end()


def _tar_below(writer: _TarWriter, top: int, prefix: str) -> Iterator[bytes]:
    """The entries below the open directory ``top``, depth first, names sorted; one open fd
    per level (a stack, not recursion, as ``_walk``)."""
    fds = [top]
    levels = [iter(sorted(os.listdir(top)))]
    prefixes = [prefix]
    try:
        while levels:
            child = next(levels[-1], None)
            if child is None:
                levels.pop()
                prefixes.pop()
                fd = fds.pop()
                if fd != top:
                    os.close(fd)
                continue
            name = f"{prefixes[-1]}/{child}"
            try:
                st = os.stat(child, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:  # removed while we walked
                continue
            yield from writer.entry(f"/proc/self/fd/{fds[-1]}/{child}", name, st)
            if stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=fds[-1])
                except OSError:
                    continue  # replaced (by a symlink, say) since the stat: its entry is written
                fds.append(fd)
                levels.append(iter(sorted(os.listdir(fd))))
                prefixes.append(name)
    finally:
        for fd in fds:
            if fd != top:
                os.close(fd)


def tar_dir(root: Path) -> Iterator[bytes]:
    """A tar of the whole tree under ``root`` (sorted, hardlinks preserved)."""
    writer = _TarWriter()
    for path, name, st in _walk(str(root)):
        yield from writer.entry(path, name, st)
    yield from writer.end()
