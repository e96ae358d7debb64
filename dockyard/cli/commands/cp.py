"""dockyard cp: copy files between a container and the local filesystem, as docker cp does.

The daemon's side is /containers/{id}/archive (HEAD stats a path, GET returns a tar of it,
PUT extracts a tar into a directory). The local side reproduces the docker CLI's rules for
where a copy lands (moby pkg/archive copy.go: a directory copied onto an existing directory
goes inside it, "src/." copies the contents, a new name renames the top entry) by renaming
the top entry of the tar on the fly.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import tarfile
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

from dockyard.cli.client import APIError
from dockyard.cli.context import Context, StatusError
from dockyard.cli.parser import DockyardParser

_GO_DIR, _GO_SYMLINK = 1 << 31, 1 << 27
_GO_IRREGULAR = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)  # device, pipe, socket, char, irregular


def setup_cp(p: DockyardParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy. Progress output is automatically "
                        "suppressed if no terminal is attached")
    p.positional("CONTAINER:SRC_PATH DEST_PATH|-", 2, 2)


def _split(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: "container:path", or a local path (absolute, or starting with ".")."""
    if os.path.isabs(arg):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def _human(n: float) -> str:
    """go-units HumanSize (decimal, 3 significant digits), as docker cp reports sizes."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{n:g}B"
        n /= 1000
    return f"{n}B"


def cmd_cp(ctx: Context, opts: Any) -> int:
    source, destination = opts.args
    if not source:
        raise StatusError(1, "source can not be empty")
    if not destination:
        raise StatusError(1, "destination can not be empty")
    src_container, src_path = _split(source)
    dst_container, dst_path = _split(destination)
    if src_container and dst_container:
        raise StatusError(1, "copying between containers is not supported")
    if not src_container and not dst_container:
        raise StatusError(1, "must specify at least one container source")
    quiet = opts.quiet or not sys.stderr.isatty()
    if src_container:
        size = _from_container(ctx, src_container, src_path, dst_path, opts.follow_link)
        target = dst_path
    else:
        size = _to_container(ctx, src_path, dst_container, dst_path, opts.follow_link, opts.archive)
        target = f"{dst_container}:{dst_path}"
    if not quiet and size is not None:
        sys.stderr.write(f"Successfully copied {_human(size)} to {target}\n")
    return 0


def _stat(ctx: Context, container: str, path: str) -> dict[str, Any] | None:
    try:
        resp = ctx.client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError:  # as docker: the copy may still work (a new name in an existing directory)
        return None
    resp.read()
    return _decode_stat(resp.getheader("X-Docker-Container-Path-Stat", ""))


def _decode_stat(header: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(header)) if header else {}


def _dir_of(path: str) -> str:
    return os.path.dirname(path.rstrip("/")) or "/"


def _base_of(path: str) -> str:
    """The name a path gives its entry: "." for "dir/.", else the last component."""
    if path.endswith("/.") or path == ".":
        return "."
    return os.path.basename(os.path.normpath(path)) or "/"


def _rebased(members: Iterator[tarfile.TarInfo], old: str, new: str) -> Iterator[tarfile.TarInfo]:
    """moby's RebaseArchiveEntries: the top entry ``old`` (and everything under it) becomes ``new``."""
    for m in members:
        for attr in ("name", "linkname") if m.islnk() else ("name",):
            value = getattr(m, attr)
            if old == "/":
                setattr(m, attr, new + "/" + value.lstrip("/") if value.strip("/") else new)
            elif value == old or value.startswith(old + "/"):
                setattr(m, attr, new + value[len(old):])
        yield m


# ---- container -> local -------------------------------------------------------------------

def _from_container(ctx: Context, container: str, src: str, dst: str, follow: bool) -> int | None:
    rebase = ""
    if follow:
        found = _stat(ctx, container, src)
        if found and found.get("mode", 0) & _GO_SYMLINK:
            target = found.get("linkTarget", "")
            if not target.startswith("/"):
                target = os.path.join(_dir_of(src), target)
            rebase = _base_of(src)
            src = target
    resp = ctx.client.request("GET", f"/containers/{container}/archive", {"path": src})
    found = _decode_stat(resp.getheader("X-Docker-Container-Path-Stat", ""))
    if dst == "-":
        while chunk := resp.read(1 << 20):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return None
    src_is_dir = bool(found.get("mode", 0) & _GO_DIR)
    # -L through a link: the entries take the link's name first (docker's RebaseName)
    renames = [(_base_of(src), rebase)] if rebase else []
    dst = os.path.abspath(dst) + ("/" if dst.endswith("/") else "") + ("/." if dst.endswith("/.") else "")
    exists = os.path.lexists(dst.rstrip("/."))
    real = os.path.realpath(dst)
    if exists and os.path.isdir(real):
        return _untar(resp, real, renames)
    if exists and src_is_dir:
        raise StatusError(1, "cannot copy directory")
    parent = os.path.dirname(real.rstrip("/")) or "/"
    if not os.path.isdir(parent):
        raise StatusError(1, f"lstat {parent}: no such file or directory")
    if not exists and not src_is_dir and (dst.endswith("/") or dst.endswith("/.")):
        raise StatusError(1, "no such directory")
    renames.append((rebase or _base_of(src), os.path.basename(real.rstrip("/"))))
    return _untar(resp, parent, renames)


def _untar(stream: BinaryIO, dest: str, renames: list[tuple[str, str]]) -> int:
    """Extract locally as docker does (NoLchown: files belong to the user running cp)."""
    total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        members: Iterator[tarfile.TarInfo] = iter(tar)
        for old, new in renames:
            members = _rebased(members, old, new)
        for member in members:
            if member.name in ("", "/"):
                continue
            total += member.size
            tar.extract(member, dest, filter=_docker_filter)
    return total


def _inside(path: str, dest: str) -> bool:
    return os.path.commonpath([path, dest]) == dest


def _docker_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """docker's untar rules: nothing written, nor hard-linked, outside dest, nor a relative
    symlink pointing out of it (absolute symlinks are kept as they are); files belong to the
    user running cp (docker's NoLchown)."""
    dest = os.path.realpath(dest)
    name = member.name.lstrip("/")
    target = os.path.realpath(os.path.join(dest, name))
    if not _inside(target, dest):
        raise tarfile.OutsideDestinationError(member, target)
    if member.islnk() and not _inside(os.path.realpath(os.path.join(dest, member.linkname.lstrip("/"))), dest):
        raise tarfile.LinkOutsideDestinationError(member, member.linkname)
    if member.issym() and not member.linkname.startswith("/") and not _inside(
            os.path.normpath(os.path.join(os.path.dirname(target), member.linkname)), dest):
        raise tarfile.LinkOutsideDestinationError(member, member.linkname)
    return member.replace(name=name, uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)


# ---- local -> container -------------------------------------------------------------------

def _to_container(ctx: Context, src: str, container: str, dst: str, follow: bool, archive: bool) -> int:
    found = _stat(ctx, container, dst)
    if found and found.get("mode", 0) & _GO_SYMLINK:
        target = found.get("linkTarget", "")
        dst = target if target.startswith("/") else os.path.join(_dir_of(dst), target)
        found = _stat(ctx, container, dst)
    if found and found.get("mode", 0) & _GO_IRREGULAR:
        raise StatusError(1, f'destination "{container}:{dst}" must be a directory or a regular file')
    dst_exists, dst_is_dir = found is not None, bool(found and found.get("mode", 0) & _GO_DIR)
    query = {"path": dst, "noOverwriteDirNonDir": True, "copyUIDGID": archive or None}
    if src == "-":
        if not dst_is_dir:
            raise StatusError(1, f'destination "{container}:{dst}" must be a directory')
        body: Iterator[bytes] = iter(lambda: sys.stdin.buffer.read(1 << 20), b"")
        _put(ctx, container, query, body)
        return 0
    local = os.path.realpath(src) if follow else os.path.abspath(src)
    try:
        os.lstat(local)
    except OSError as err:
        raise StatusError(1, f"lstat {local}: {err.strerror.lower()}") from None
    src_is_dir = os.path.isdir(local) and (follow or not os.path.islink(local))
    old = _base_of(src)
    if dst_exists and dst_is_dir:
        target_dir, rename = dst, None
    elif dst_exists and src_is_dir:
        raise StatusError(1, "cannot copy directory")
    elif not dst_exists and not src_is_dir and (dst.endswith("/") or dst.endswith("/.")):
        raise StatusError(1, "no such directory")
    else:
        target_dir, rename = _dir_of(dst), os.path.basename(dst.rstrip("/"))
    counter = _Counter()
    _put(ctx, container, {**query, "path": target_dir},
         _tar_local(local, rename or (old if old != "." else "."), src_is_dir and old == ".", counter))
    return counter.total


class _Counter:
    total = 0


def _tar_local(path: str, name: str, contents_only: bool, counter: _Counter) -> Iterator[bytes]:
    """Stream a tar of ``path`` named ``name`` (or of its contents for "dir/."), file data in
    1 MiB reads: headers from tarfile, the data straight from the file."""
    def add(full: str, arcname: str) -> Iterator[bytes]:
        info = _info(full, arcname, os.lstat(full))
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if info.isreg():
            counter.total += info.size
            left = info.size
            with open(full, "rb") as f:
                while left:
                    chunk = f.read(min(left, 1 << 20)) or bytes(min(left, 1 << 20))  # shrank: keep the header's promise
                    left -= len(chunk)
                    yield chunk
            yield bytes(-info.size % tarfile.BLOCKSIZE)
        if info.isdir():
            for child in sorted(os.listdir(full)):
                yield from add(os.path.join(full, child), f"{arcname}/{child}" if arcname != "." else child)

    yield from add(path, "." if contents_only else name)
    yield bytes(2 * tarfile.BLOCKSIZE)


def _info(full: str, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid, info.mtime = st.st_mode & 0o7777, st.st_uid, st.st_gid, int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _put(ctx: Context, container: str, query: dict[str, Any], body: Iterator[bytes]) -> None:
    resp = ctx.client.request_stream("PUT", f"/containers/{container}/archive", query, body,
                                     {"Content-Type": "application/x-tar"})
    resp.read()
