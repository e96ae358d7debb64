"""Reading image archives for ``docker load``: docker-archive and OCI image layout.

Understands what ``docker save`` wrote from 1.10 to 28 (``manifest.json`` + ``<id>.json``
+ ``<layer>/layer.tar``, and Docker 25+'s OCI layout inside the same tar, where legacy
paths are symlinks to ``blobs/sha256/...``) and OCI image layout archives (``index.json``,
``blobs/``, names from ``io.containerd.image.name`` / ``org.opencontainers.image.ref.name``).

Nothing is written here: this module finds each image's config bytes, names and layer
blobs inside the (seekable) tar and hands out readers that verify blob digests as
they are consumed. Any entry that would resolve outside the archive is refused.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import IO, Callable

import msgspec

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.oci.platform import host_arch
from dockyard.oci import image_spec as spec

_SYMLINK_HOPS = 16


def _invalid(message: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"invalid image archive: {message}")


_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def _go_tar_error(fileobj: IO[bytes]) -> str:
    """What dockerd says when its tar reader (Go's archive/tar, after decompression) gives up on
    this input: a first block whose header checksum is wrong is ``invalid tar header``; a
    stream that ends inside a block or a member (or a corrupt compressed stream) is an
    unexpected EOF; nothing at all is an archive without a manifest. Python's tarfile lists every method it tried instead."""
    try:
        fileobj.seek(0)
        block = fileobj.read(512)
    except OSError:
        return "unexpected EOF"
    if not block:  # Go reads an empty stream as an empty archive
        return "invalid archive: does not contain a manifest.json"
    if block.startswith(_COMPRESSED_MAGIC) or len(block) < 512:
        return "unexpected EOF"
    stored = block[148:156].split(b"\0", 1)[0].strip(b" ")
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    try:
        if int(stored or b"x", 8) != computed:
            return "archive/tar: invalid tar header"
    except ValueError:
        return "archive/tar: invalid tar header"
    return "unexpected EOF"


@dataclass
class LayerSource:
    """One layer blob in the archive; ``open()`` gives a reader that checks ``digest`` at EOF."""
    open: Callable[[], IO[bytes]]
    size: int


@dataclass
class ArchiveImage:
    config: bytes
    names: list[references.Reference] = field(default_factory=list)
    layers: list[LayerSource] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


class _VerifyingReader:
    """A file-like reader that hashes what passes through and fails at EOF on a mismatch."""

    def __init__(self, raw: IO[bytes], digest: str | None, size: int, name: str) -> None:
        self._raw = raw
        self._digest = digest
        self._expected_size = size
        self._name = name
        self._hash = hashlib.sha256()
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._hash.update(data)
            self._seen += len(data)
        elif n != 0:
            self._check()
        return data

    def _check(self) -> None:
        if self._seen != self._expected_size:
            raise _invalid(f"{self._name}: truncated ({self._seen} of {self._expected_size} bytes)")
        if self._digest is not None and "sha256:" + self._hash.hexdigest() != self._digest:
            raise _invalid(f"{self._name}: content does not match digest {self._digest}")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


class _Archive:
    """The outer tar's members by normalized path, symlinks resolved inside the archive."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:*")
            members = self._tar.getmembers()
        except (tarfile.TarError, EOFError, OSError):
            raise errdefs.InvalidParameter(_go_tar_error(fileobj)) from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            self._members[self._normalize(member.name, member.name)] = member

    @staticmethod
    def _normalize(path: str, shown: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise _invalid(f"entry {shown!r} points outside the archive")
        return posixpath.normpath(path)

    def find(self, path: str) -> tarfile.TarInfo | None:
        name = self._normalize(path, path)
        for _ in range(_SYMLINK_HOPS):
            member = self._members.get(name)
            if member is None or not member.issym():
                return member
            target = member.linkname
            joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(name), target)
            if target.startswith("/") or posixpath.normpath(joined).startswith(".."):
                raise _invalid(f"entry {member.name!r} links outside the archive")
            name = posixpath.normpath(joined)
        raise _invalid(f"too many levels of symbolic links at {path!r}")

    def member(self, path: str) -> tarfile.TarInfo:
        member = self.find(path)
        if member is None or not member.isfile():
            raise _invalid(f"{path} not found in the archive")
        return member

    def read(self, path: str, digest: str | None = None) -> bytes:
        reader = self.reader(path, digest)
        data = reader.read()
        reader.read()  # EOF: verify
        return data

    def reader(self, path: str, digest: str | None = None) -> _VerifyingReader:
        member = self.member(path)
        raw = self._tar.extractfile(member)
        assert raw is not None
        return _VerifyingReader(raw, digest, member.size, path)

    def layer(self, path: str, digest: str | None = None) -> LayerSource:
        member = self.member(path)
        return LayerSource(open=lambda: self.reader(path, digest), size=member.size)


def _blob_path(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise _invalid(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


def _decode(data: bytes, type: type, what: str):
    try:
        return msgspec.json.decode(data, type=type)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise _invalid(f"{what}: {e}") from None


def _docker_archive(archive: _Archive) -> list[ArchiveImage]:
    entries = _decode(archive.read("manifest.json"), list[spec.ArchiveManifestEntry], "manifest.json")
    images = []
    for entry in entries:
        config = archive.read(entry.config)
        # Docker 25+ archives name blobs by digest: verify them; legacy <id>.json is named by ID too.
        config_hex = posixpath.basename(entry.config).removesuffix(".json")
        if len(config_hex) == 64 and "sha256:" + hashlib.sha256(config).hexdigest() != "sha256:" + config_hex:
            raise _invalid(f"{entry.config}: content does not match its name")
        layers = []
        for path in entry.layers:
            digest = None
            if path.startswith("blobs/sha256/"):
                digest = "sha256:" + posixpath.basename(path)
            layers.append(archive.layer(path, digest))
        names = [references.parse_tagged(tag) for tag in entry.repo_tags or []]
        images.append(ArchiveImage(config=config, names=names, layers=layers))
    return images


def _name_from_annotations(annotations: dict[str, str] | None) -> references.Reference | None:
    annotations = annotations or {}
    full = annotations.get(spec.ANNOTATION_CONTAINERD_NAME)
    if full:
        return references.parse_tagged(full)
    ref_name = annotations.get(spec.ANNOTATION_REF_NAME, "")
    # A bare tag ("latest", "1.0") names no repository: such an image loads untagged.
    if ref_name and ("/" in ref_name or ":" in ref_name or "@" in ref_name):
        try:
            return references.parse_tagged(ref_name)
        except errdefs.InvalidParameter:
            return None
    return None


def _pick_manifest(archive: _Archive, desc: spec.Descriptor, depth: int = 0) -> spec.Manifest:
    if depth > 4:
        raise _invalid("indexes nested too deeply")
    data = archive.read(_blob_path(desc.digest), desc.digest)
    if desc.media_type in spec.INDEX_TYPES:
        index = _decode(data, spec.Index, desc.digest)
        arch = host_arch()
        candidates = [m for m in index.manifests
                      if m.platform is None or (m.platform.os == "linux" and m.platform.architecture == arch)]
        if not candidates:
            raise errdefs.NotFound(f"no matching manifest for linux/{arch} in the manifest list entries")
        return _pick_manifest(archive, candidates[0], depth + 1)
    if desc.media_type not in spec.MANIFEST_TYPES:
        raise _invalid(f"unsupported media type {desc.media_type}")
    return _decode(data, spec.Manifest, desc.digest)


def _oci_layout(archive: _Archive) -> list[ArchiveImage]:
    index = _decode(archive.read("index.json"), spec.Index, "index.json")
    images: dict[str, ArchiveImage] = {}
    for desc in index.manifests:
        manifest = _pick_manifest(archive, desc)
        config = archive.read(_blob_path(manifest.config.digest), manifest.config.digest)
        layers = [archive.layer(_blob_path(layer.digest), layer.digest) for layer in manifest.layers]
        image = images.setdefault(manifest.config.digest, ArchiveImage(config=config, layers=layers))
        name = _name_from_annotations(desc.annotations)
        if name is not None and name not in image.names:
            image.names.append(name)
    return list(images.values())


def read_archive(fileobj: IO[bytes]) -> list[ArchiveImage]:
    """The images in a docker-archive or OCI layout tar (seekable); raises InvalidParameter."""
    archive = _Archive(fileobj)
    if archive.find("manifest.json") is not None:
        images = _docker_archive(archive)
    elif archive.find("index.json") is not None:
        images = _oci_layout(archive)
    else:
        raise _invalid("neither manifest.json (docker save) nor index.json (OCI layout) found")
    if not images:
        raise _invalid("no images found")
    for image in images:
        config = _decode(image.config, spec.ImageConfig, "image config")
        if len(config.rootfs.diff_ids) != len(image.layers):
            raise _invalid(f"image {image.id}: config lists {len(config.rootfs.diff_ids)} layers, "
                           f"manifest {len(image.layers)}")
    return images
