"""The build context: the uploaded tar unpacked into a private directory, and its Dockerfile.

The body may be a plain, gzip, bzip2 or xz tar (the storage layer's safe extraction checks
every entry first, so a hostile tar writes nothing outside the directory). ``remote`` may
name a URL whose body is a tar (the context) or a text file (the Dockerfile alone).
``remote`` may also be a git URL (cloned, ``#ref:subdir`` honoured, as Docker does).
``.dockerignore`` (or ``<Dockerfile>.dockerignore``) is applied here too, so a client that
did not filter still gets Docker's result; ``COPY`` sources are later resolved inside the
directory, never through a symlink that leaves it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dockyard import errdefs
from dockyard.apitypes import dockerignore
from dockyard.storage.archive import extract_copy

_SNIFF = 512


@dataclass
class Context:
    root: Path
    dockerfile: str  # the Dockerfile's text
    dockerfile_name: str  # context-relative path as asked for
    ignore: list[dockerignore.Pattern] = field(default_factory=list)
    top: Path | None = None  # what close() removes when root is a part of it (a git subdirectory)

    def close(self) -> None:
        shutil.rmtree(self.top or self.root, ignore_errors=True)


def _is_tar(fileobj: BinaryIO) -> bool:
    head = fileobj.read(_SNIFF)
    fileobj.seek(0)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar" or (len(head) >= 512 and _checksum_ok(head))


def _checksum_ok(block: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def _complete_plain_tar(fileobj: BinaryIO) -> None:
    """The docker CLI's tar of a context with ``-f`` outside it ends right after the last
    file's data, without padding or end blocks (Go's reader takes that); add them."""
    head = fileobj.read(6)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        fileobj.seek(0)
        return
    size = fileobj.seek(0, os.SEEK_END)
    fileobj.write(b"\0" * ((-size) % 512 + 1024))
    fileobj.seek(0)


def _fetch(url: str, dest: BinaryIO) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (user-given URL, as Docker)
            shutil.copyfileobj(resp, dest)
    except OSError as e:
        raise errdefs.InvalidParameter(f"unable to prepare context: unable to download remote context {url}: {e}") \
            from None
    dest.seek(0)


def open_context(body: BinaryIO, dockerfile_name: str, remote: str, scratch: Path) -> Context:
    """Unpack the context under ``scratch``; the caller closes the Context."""
    scratch.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="context-", dir=scratch))
    top = root
    try:
        source: BinaryIO = body
        dockerfile_text: str | None = None
        git = bool(remote) and is_git_url(remote)
        if git:
            root = _git_clone(remote, top)
        elif remote:
            source = tempfile.TemporaryFile()
            _fetch(remote, source)
        if git:
            pass  # the clone is the context
        elif _is_tar(source):
            _complete_plain_tar(source)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                extract_copy(source, fd, any_symlink_target=True)
            finally:
                os.close(fd)
        elif remote or dockerfile_name in ("", "-"):
            dockerfile_text = source.read().decode("utf-8", "replace")
        else:
            head = source.read(_SNIFF)
            if not head:
                raise errdefs.InvalidParameter("the build context is empty: send a tar archive of the context")
            raise errdefs.InvalidParameter("the build context is not a tar archive (plain, gzip, bzip2 or xz)")
        name = dockerfile_name or "Dockerfile"
        if dockerfile_text is None:
            dockerfile_text = _read_dockerfile(root, name)
        ignore = _ignore_patterns(root, name)
        if ignore:
            _apply_ignore(root, ignore)
        return Context(root=root, dockerfile=dockerfile_text, dockerfile_name=name, ignore=ignore, top=top)
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise
    finally:
        if source is not body:
            source.close()


def is_git_url(url: str) -> bool:
    """moby's urlutil.IsGitURL: git://, git@, github.com/, or an http(s) URL of a .git path."""
    if url.startswith(("git://", "git@", "github.com/")):
        return True
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme in ("http", "https") and parsed.path.endswith(".git")


def _git_clone(url: str, into: Path) -> Path:
    """Clone ``url`` (``#ref:subdir`` as Docker reads it) into ``into``; returns the context dir."""
    url, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    if url.startswith("github.com/"):
        url = "https://" + url
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    repo = into / "repo"

    def git(*args: str, cwd: Path | None = None) -> None:
        result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=600)
        if result.returncode != 0:
            raise errdefs.InvalidParameter(f"unable to prepare context: unable to 'git {args[0]}': "
                                           f"{result.stderr.decode(errors='replace').strip()}")

    try:
        try:
            git("clone", "--quiet", "--recurse-submodules", "--depth", "1", *(("--branch", ref) if ref else ()),
                url, str(repo))
        except errdefs.InvalidParameter:
            # a commit rather than a branch or tag, or a server without shallow clones (dumb http)
            shutil.rmtree(repo, ignore_errors=True)
            git("clone", "--quiet", "--recurse-submodules", url, str(repo))
            if ref:
                git("checkout", "--quiet", ref, cwd=repo)
    except FileNotFoundError:
        raise errdefs.NotImplementedFeature("git is not installed: a git URL cannot be a build context") from None
    if not subdir:
        return repo
    context = _inside(repo, subdir)
    if context is None or not context.is_dir():
        raise errdefs.InvalidParameter(f"unable to prepare context: subdirectory {subdir!r} not found in {url}")
    return context


def _inside(root: Path, rel: str) -> Path | None:
    """``rel`` resolved inside root; None if it would leave it."""
    path = Path(os.path.realpath(root / rel.lstrip("/")))
    if path != root and root not in path.parents:
        return None
    return path


def _read_dockerfile(root: Path, name: str) -> str:
    candidates = [name] if name != "Dockerfile" else ["Dockerfile", "dockerfile"]
    for candidate in candidates:
        path = _inside(root, candidate)
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    raise errdefs.InvalidParameter(
        f"Cannot locate specified Dockerfile: {name}")


def _ignore_patterns(root: Path, dockerfile_name: str) -> list[dockerignore.Pattern]:
    for candidate in (dockerfile_name + ".dockerignore", ".dockerignore"):
        path = _inside(root, candidate)
        if path is not None and path.is_file():
            return dockerignore.parse(path.read_text(encoding="utf-8", errors="replace"))
    return []


def _apply_ignore(root: Path, patterns: list[dockerignore.Pattern]) -> None:
    """Remove what .dockerignore leaves out (a directory stays when a ``!`` pattern may
    re-include something below it)."""
    may_reinclude = any(p.exclusion for p in patterns)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in list(dirnames):
            rel = posixpath.normpath(posixpath.join(rel_dir, name))
            if dockerignore.excluded(rel, patterns) and not may_reinclude:
                shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                dirnames.remove(name)
        for name in filenames:
            rel = posixpath.normpath(posixpath.join(rel_dir, name))
            if dockerignore.excluded(rel, patterns):
                os.unlink(os.path.join(dirpath, name))
