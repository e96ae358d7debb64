"""The hub's storage on a filesystem: repositories as links to content-addressed blobs.

Layout under the data directory::

    content/blobs/sha256/<hex>            every blob and manifest, once (dockyard.storage.content;
    content/ingest/                       or an S3-compatible bucket, dockyard.registry.s3)
    uploads/<uuid>/data, repo             upload sessions (chunked uploads append to data; with
    uploads/<uuid>/parts.json             S3, data holds what is not yet sent as a part)
    gc/lock, journal, running, run.lock   garbage collection against pushes (sweeplock.py)
    auth/token.key, auth/refresh/<sha256> token signing key, refresh tokens (auth.py)
    repositories/<name>/_layers/<hex>                  the repository holds this blob
    repositories/<name>/_manifests/revisions/<hex>     a manifest of the repository (text: media type)
    repositories/<name>/_manifests/tags/<tag>          text: the manifest digest
    repositories/<name>/_referrers/<subject hex>/<hex> JSON: the referrer's descriptor
    repositories/<name>/_meta.json                     description, stars, pull count

Name components cannot start with ``_`` (the grammar), so a repository's own directories can
never be mistaken for a nested repository. Blobs are committed by the content store (fsync,
verify, rename; an upload's own file is checked against the hash kept while it arrived and
renamed in); links and tags are written atomically; a crash leaves either the old state or
the new one. A blob reaches a repository only after it is committed and verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from dockyard import errdefs
from dockyard.registry import errors, manifests
from dockyard.registry.names import ANY_DIGEST_RE, is_digest, valid_digest, valid_name, valid_tag
from dockyard.registry.blobs import Blobs, FilesystemBlobs, Session
from dockyard.registry.sweeplock import SweepLock
from dockyard.storage.content import Descriptor
from dockyard.storage.fsutil import remove_tree, write_atomic


def check_name(name: str) -> None:
    if not valid_name(name):
        raise errors.NameInvalid(f"invalid repository name: {name!r}", {"name": name})


def check_digest(digest: str) -> str:
    if not valid_digest(digest):
        if ANY_DIGEST_RE.fullmatch(digest) and not digest.startswith("sha256:"):
            raise errors.DigestInvalid(f"unsupported digest algorithm: {digest!r} (this registry uses sha256)",
                                       {"digest": digest})
        raise errors.DigestInvalid(f"invalid digest: {digest!r}", {"digest": digest})
    return digest[len("sha256:"):]


@dataclass
class Meta:
    description: str = ""
    stars: list[str] = field(default_factory=list)
    pulls: int = 0
    private: bool = False


@dataclass
class ManifestInfo:
    digest: str
    media_type: str
    size: int


class Upload:
    """An upload session: its directory ``uploads/<uuid>/`` (``repo`` names the repository) and
    the bytes received so far, kept by the blob backend's Session.

    ``async_lock`` orders the requests of one session (the server holds it while appending or
    committing), so two chunks of one upload never interleave."""

    def __init__(self, root: Path, uuid: str, repo: str, session: Session) -> None:
        self.root, self.uuid, self.repo, self.session = root, uuid, repo, session
        self.async_lock = asyncio.Lock()

    def _unknown(self) -> errors.BlobUploadUnknown:
        return errors.BlobUploadUnknown("blob upload unknown to registry", {"uuid": self.uuid})

    @property
    def size(self) -> int:
        try:
            return self.session.size
        except FileNotFoundError:
            raise self._unknown() from None

    async def append(self, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        """Append byte chunks; a failure (a client gone mid-chunk) leaves the upload as it was
        before the chunk. ``start`` must equal the current size (else RANGE_INVALID, 416)."""
        try:
            return await self.session.append(chunks, start)
        except FileNotFoundError:
            raise self._unknown() from None


class Store:
    def __init__(self, root: Path, blobs: Blobs | None = None) -> None:
        self.root = Path(root)
        self.blobs: Blobs = blobs if blobs is not None else FilesystemBlobs(self.root / "content")
        self._uploads = self.root / "uploads"
        self._repos = self.root / "repositories"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._repos.mkdir(parents=True, exist_ok=True)
        self._meta_lock = threading.Lock()
        self._open_uploads: dict[str, Upload] = {}
        self._uploads_lock = threading.Lock()
        self.sweep = SweepLock(self.root / "gc")

    # ---- repositories --------------------------------------------------------------

    def repo_dir(self, name: str) -> Path:
        check_name(name)
        return self._repos / name

    def exists(self, name: str) -> bool:
        return (self.repo_dir(name) / "_manifests").is_dir()

    def catalog(self) -> list[str]:
        """Every repository holding at least one manifest, sorted."""
        found = []
        for dirpath, dirnames, _ in os.walk(self._repos):
            if "_manifests" in dirnames:
                found.append(os.path.relpath(dirpath, self._repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    # ---- blobs ---------------------------------------------------------------------

    def link_path(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_layers" / check_digest(digest)

    def link_blob(self, name: str, digest: str) -> None:
        link = self.link_path(name, digest)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.touch()

    def blob(self, name: str, digest: str) -> Descriptor:
        """The blob as the repository holds it; errors.BlobUnknown otherwise."""
        link = self.link_path(name, digest)
        if link.exists() or (self._manifest_link(name, digest).exists()):
            try:
                return self.blobs.info(digest)
            except errdefs.NotFound:
                pass
        raise errors.BlobUnknown(f"blob unknown to registry: {digest}", {"digest": digest})

    def blob_location(self, digest: str) -> Path | str:
        """A local file to send, or a URL to redirect the client to."""
        return self.blobs.location(digest)

    def delete_blob(self, name: str, digest: str) -> None:
        link = self.link_path(name, digest)
        if not link.exists():
            raise errors.BlobUnknown(f"blob unknown to registry: {digest}", {"digest": digest})
        link.unlink()

    def mount(self, name: str, digest: str, source: str) -> bool:
        """Cross-repository mount: link a blob ``source`` holds; False when it does not."""
        check_name(source)
        with self.sweep.live([digest]):
            try:
                self.blob(source, digest)
            except errors.BlobUnknown:
                return False
            self.link_blob(name, digest)
        return True

    def link_if_present(self, name: str, digest: str) -> bool:
        """Link a blob the store already holds (a pull-through cache's shared blobs)."""
        with self.sweep.live([digest]):
            if not self.blobs.has(digest):
                return False
            self.link_blob(name, digest)
        return True

    # ---- uploads -------------------------------------------------------------------

    def start_upload(self, name: str) -> Upload:
        self.repo_dir(name)
        uuid = secrets.token_hex(16)
        root = self._uploads / uuid
        root.mkdir()
        (root / "data").touch()
        (root / "repo").write_text(name)
        upload = Upload(root, uuid, name, self.blobs.session(root))
        with self._uploads_lock:
            self._open_uploads[uuid] = upload
        return upload

    def upload(self, name: str, uuid: str) -> Upload:
        unknown = errors.BlobUploadUnknown("blob upload unknown to registry", {"uuid": uuid})
        if not (len(uuid) == 32 and all(c in "0123456789abcdef" for c in uuid)):
            raise unknown
        with self._uploads_lock:
            upload = self._open_uploads.get(uuid)
            if upload is None:
                root = self._uploads / uuid
                try:
                    repo = (root / "repo").read_text()
                except OSError:
                    raise unknown from None
                upload = self._open_uploads[uuid] = Upload(root, uuid, repo, self.blobs.session(root))
        if upload.repo != name:
            raise unknown
        return upload

    def cancel_upload(self, upload: Upload) -> None:
        with self._uploads_lock:
            self._open_uploads.pop(upload.uuid, None)
        upload.session.discard()
        remove_tree(upload.root)

    def finish_upload(self, upload: Upload, digest: str) -> Descriptor:
        """Verify the upload's bytes against ``digest``, commit the blob, link it, end the session.
        A mismatch ends the session too (the spec: the client starts over)."""
        check_digest(digest)
        try:
            with self.sweep.live([digest]):
                desc = upload.session.commit(digest)
                self.link_blob(upload.repo, digest)
        except errdefs.InvalidParameter as e:
            self.cancel_upload(upload)
            raise errors.DigestInvalid(f"digest invalid: {e}", {"digest": digest}) from None
        except BaseException:
            # a commit that failed otherwise (storage down) ends the session too, so nothing it
            # started (an S3 multipart upload) is left behind; the client starts over
            try:
                self.cancel_upload(upload)
            except (OSError, errdefs.Unavailable, errdefs.System):
                pass  # garbage collection clears what the storage did not let go now
            raise
        self.cancel_upload(upload)
        return desc

    def put_blob(self, name: str, digest: str, data: BinaryIO | bytes, size: int | None = None) -> Descriptor:
        """A monolithic upload in one request: verify and commit, then link."""
        check_digest(digest)
        try:
            with self.sweep.live([digest]):
                desc = self.blobs.ingest(data, expected_digest=digest, expected_size=size)
                self.link_blob(name, digest)
        except errdefs.InvalidParameter as e:
            raise (errors.SizeInvalid if "size" in str(e) else errors.DigestInvalid)(
                f"digest invalid: {e}", {"digest": digest}) from None
        return desc

    def upload_ids(self) -> list[tuple[str, float]]:
        """(uuid, age in seconds of its last write) of every upload session on disk."""
        out = []
        now = time.time()
        for entry in os.scandir(self._uploads):
            try:
                out.append((entry.name, now - os.stat(os.path.join(entry.path, "data")).st_mtime))
            except OSError:
                out.append((entry.name, now - entry.stat().st_mtime))
        return out

    def upload_exists(self, uuid: str) -> bool:
        return len(uuid) == 32 and (self._uploads / uuid).is_dir()

    def remove_upload_dir(self, uuid: str) -> None:
        with self._uploads_lock:
            self._open_uploads.pop(uuid, None)
        self.blobs.session(self._uploads / uuid).discard()
        remove_tree(self._uploads / uuid)

    # ---- manifests -----------------------------------------------------------------

    def _manifest_link(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "revisions" / check_digest(digest)

    def _tag_path(self, name: str, tag: str) -> Path:
        if not valid_tag(tag):
            raise errors.TagInvalid(f"invalid tag: {tag!r}", {"tag": tag})
        return self.repo_dir(name) / "_manifests" / "tags" / tag

    def resolve(self, name: str, reference: str) -> ManifestInfo:
        """A manifest by tag or digest; errors.ManifestUnknown (NameUnknown for no repository)."""
        if is_digest(reference):
            digest = reference
            link = self._manifest_link(name, digest)
        else:
            try:
                digest = self._tag_path(name, reference).read_text()
            except FileNotFoundError:
                if not self.exists(name):
                    raise errors.NameUnknown(f"repository name not known to registry: {name}",
                                             {"name": name}) from None
                raise errors.ManifestUnknown(f"manifest unknown: {name}:{reference}",
                                             {"tag": reference}) from None
            link = self._manifest_link(name, digest)
        try:
            media_type = link.read_text()
            size = self.blobs.info(digest).size
        except (FileNotFoundError, errdefs.NotFound):
            raise errors.ManifestUnknown(f"manifest unknown: {name}@{digest}", {"digest": digest}) from None
        return ManifestInfo(digest, media_type, size)

    def put_manifest(self, name: str, reference: str, data: bytes, content_type: str) -> tuple[str, manifests.Parsed]:
        """Store a manifest after checking it references only content the repository holds."""
        tag = None if is_digest(reference) else reference
        if tag is not None:
            self._tag_path(name, tag)
        else:
            check_digest(reference)
        parsed = manifests.parse(data, content_type)
        live = ["sha256:" + hashlib.sha256(data).hexdigest()] + [ref.digest for ref in parsed.blobs] + \
            [ref.digest for ref in parsed.children]
        with self.sweep.live(live):
            return self._put_manifest(name, tag, reference, data, parsed)

    def _put_manifest(self, name: str, tag: str | None, reference: str, data: bytes,
                      parsed: manifests.Parsed) -> tuple[str, manifests.Parsed]:
        for ref in parsed.blobs:
            try:
                held = self.blob(name, ref.digest)
            except errors.BlobUnknown:
                raise errors.ManifestBlobUnknown(f"blob unknown to registry: {ref.digest}",
                                                 {"digest": ref.digest}) from None
            if held.size != ref.size:
                raise errors.ManifestInvalid(
                    f"manifest invalid: blob {ref.digest} is {held.size} bytes, the manifest says {ref.size}")
        for ref in parsed.children:
            if not self._manifest_link(name, ref.digest).exists():
                raise errors.ManifestBlobUnknown(f"manifest unknown to registry: {ref.digest}",
                                                 {"digest": ref.digest})
        desc = self.blobs.ingest(data)
        if tag is None and desc.digest != reference:
            raise errors.DigestInvalid(f"digest invalid: the manifest is {desc.digest}, not {reference}",
                                       {"digest": reference})
        link = self._manifest_link(name, desc.digest)
        link.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(link, parsed.media_type.encode())
        if parsed.subject is not None:
            entry = {"mediaType": parsed.media_type, "digest": desc.digest, "size": desc.size}
            if parsed.artifact_type:
                entry["artifactType"] = parsed.artifact_type
            if parsed.annotations:
                entry["annotations"] = parsed.annotations
            ref_path = self.repo_dir(name) / "_referrers" / check_digest(parsed.subject.digest) / \
                check_digest(desc.digest)
            ref_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(ref_path, json.dumps(entry).encode())
        if tag is not None:
            path = self._tag_path(name, tag)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, desc.digest.encode())
        return desc.digest, parsed

    def cache_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        """Keep a manifest a pull-through cache fetched from upstream: its references are fetched
        when asked for, so they are not checked here; a digest reference must still match."""
        parsed = manifests.parse(data, media_type)
        with self.sweep.live(["sha256:" + hashlib.sha256(data).hexdigest()]):
            desc = self.blobs.ingest(data, expected_digest=reference if is_digest(reference) else None)
            link = self._manifest_link(name, desc.digest)
            link.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(link, parsed.media_type.encode())
        if not is_digest(reference):
            path = self._tag_path(name, reference)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, desc.digest.encode())
        return desc.digest

    def manifest_bytes(self, digest: str) -> bytes:
        return self.blobs.read_bytes(digest)

    def tags(self, name: str) -> list[str]:
        directory = self.repo_dir(name) / "_manifests" / "tags"
        if not self.exists(name):
            raise errors.NameUnknown(f"repository name not known to registry: {name}", {"name": name})
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []

    def tags_of(self, name: str) -> dict[str, str]:
        """tag -> manifest digest."""
        directory = self.repo_dir(name) / "_manifests" / "tags"
        out = {}
        for tag in self.tags(name):
            try:
                out[tag] = (directory / tag).read_text()
            except FileNotFoundError:
                pass
        return out

    def delete_manifest(self, name: str, reference: str) -> None:
        """By tag: untag. By digest: remove the manifest, every tag naming it, its referrer entry."""
        if not is_digest(reference):
            try:
                self._tag_path(name, reference).unlink()
            except FileNotFoundError:
                raise errors.ManifestUnknown(f"manifest unknown: {name}:{reference}", {"tag": reference}) from None
            return
        link = self._manifest_link(name, reference)
        if not link.exists():
            raise errors.ManifestUnknown(f"manifest unknown: {name}@{reference}", {"digest": reference})
        for tag, digest in self.tags_of(name).items():
            if digest == reference:
                self._tag_path(name, tag).unlink(missing_ok=True)
        referrers = self.repo_dir(name) / "_referrers"
        if referrers.is_dir():
            for subject in os.listdir(referrers):
                (referrers / subject / check_digest(reference)).unlink(missing_ok=True)
        link.unlink()

    def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[dict]:
        directory = self.repo_dir(name) / "_referrers" / check_digest(subject)
        out = []
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            try:
                desc = json.loads((directory / entry).read_text())
            except FileNotFoundError:
                continue
            if self._manifest_link(name, desc["digest"]).exists() and \
                    (artifact_type is None or desc.get("artifactType") == artifact_type):
                out.append(desc)
        return out

    def manifest_digests(self, name: str) -> list[str]:
        directory = self.repo_dir(name) / "_manifests" / "revisions"
        try:
            return ["sha256:" + h for h in sorted(os.listdir(directory)) if valid_digest("sha256:" + h)]
        except FileNotFoundError:
            return []

    def blob_links(self, name: str) -> list[str]:
        directory = self.repo_dir(name) / "_layers"
        try:
            return ["sha256:" + h for h in sorted(os.listdir(directory)) if valid_digest("sha256:" + h)]
        except FileNotFoundError:
            return []

    # ---- hub metadata ----------------------------------------------------------------

    def meta(self, name: str) -> Meta:
        try:
            raw = json.loads((self.repo_dir(name) / "_meta.json").read_text())
        except (FileNotFoundError, ValueError):
            return Meta()
        return Meta(description=str(raw.get("description", "")), stars=list(raw.get("stars", [])),
                    pulls=int(raw.get("pulls", 0)), private=bool(raw.get("private", False)))

    def update_meta(self, name: str, change) -> Meta:
        """Apply ``change(meta)`` under a lock and write the result atomically."""
        with self._meta_lock:
            meta = self.meta(name)
            change(meta)
            path = self.repo_dir(name) / "_meta.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(meta.__dict__).encode())
            return meta
