"""``POST /images/create?fromImage=``: an image from a registry into the image store.

Manifest (a list or index resolved to the wanted platform), then the config, then the
layers: the ones whose chain is already registered are skipped ("Already exists"), a diff
already in the content store is unpacked from there, the rest are downloaded in parallel
(daemon-wide limit), then unpacked in order. Layers, image row and tag
are added by ``register_images`` exactly as ``docker load`` adds them, so a pull that
fails or is killed halfway leaves no image and no half layer; downloaded blobs stay in
the content store and the next pull resumes from them.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import IO, TYPE_CHECKING, Callable

from dockyard import errdefs
from dockyard.daemon.distribution import manifests
from dockyard.daemon.distribution.blobinfo import BlobRecord
from dockyard.daemon.distribution.progress import Meter, Progress, short
from dockyard.daemon.distribution.registry import RepositoryAPI
from dockyard.daemon.images import references
from dockyard.daemon.images.register import NewImage, register_images
from dockyard.distribution.auth import Credentials
from dockyard.distribution.client import codes_of
from dockyard.oci import image_spec as spec
from dockyard.oci import platform as platforms
from dockyard.storage.layers import chain_id_of

if TYPE_CHECKING:
    from dockyard.daemon.distribution.service import DistributionService

_MAX_CONFIG = 8 << 20


def reference(image: str, tag: str) -> references.Reference:
    """fromImage + tag as the API gives them (the tag wins over one in the name; it may be a
    digest). Neither tag nor digest: every tag of the repository (``docker pull -a``)."""
    ref = references.parse(image)
    if not tag:
        return ref
    if tag.startswith("sha256:"):
        if len(tag) != 71 or not all(c in "0123456789abcdef" for c in tag[7:]):
            raise errdefs.InvalidParameter(f"invalid digest format: {tag}")
        return references.Reference(ref.domain, ref.path, None, tag)
    return references.parse_repo_tag(ref.name, tag)


def pull(svc: DistributionService, image: str, tag: str, platform: str, credentials: Credentials,
         progress: Progress) -> None:
    ref = reference(image, tag)
    wanted = platforms.parse_platform(platform)
    asked = wanted if platform else None  # only an asked platform is checked on single manifests
    repo = svc.registry.repository(ref.domain, ref.path, credentials)
    if ref.tag is None and ref.digest is None:
        try:
            tags = sorted(repo.tags())
        except errdefs.DockyardError as e:
            raise _translate(e, ref) from None
        if not tags:
            raise errdefs.NotFound(f"no tags found for {ref.familiar_name}")
        newer = False
        for tag_name in tags:
            newer |= _pull_one(svc, repo, ref.with_tag(tag_name), wanted, asked, progress)
        progress.status(f"Status: {'Downloaded newer image' if newer else 'Image is up to date'} "
                        f"for {ref.familiar_name}")
        return
    newer = _pull_one(svc, repo, ref, wanted, asked, progress)
    progress.status(f"Status: {'Downloaded newer image' if newer else 'Image is up to date'} for {ref.familiar()}")


def _translate(error: errdefs.DockyardError, ref: references.Reference) -> errdefs.DockyardError:
    """Docker's words for a registry's refusal (moby distribution/errors.go notFoundError)."""
    codes = codes_of(error)
    if "DENIED" in codes:
        return errdefs.NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                                f"may require 'docker login': {error}")
    if "MANIFEST_UNKNOWN" in codes:
        return errdefs.NotFound(f"manifest for {ref.familiar()} not found: {error}")
    if "NAME_UNKNOWN" in codes:
        return errdefs.NotFound(f"repository {ref.familiar_name} not found: {error}")
    return error


def _manifest(repo: RepositoryAPI, ref: references.Reference,
              wanted: platforms.PlatformSpec) -> tuple[spec.Manifest, str, bool]:
    """The image manifest for our platform, the digest to record (the list's, for a list), and
    whether it was chosen from a list."""
    try:
        media_type, data, digest = repo.get_manifest(ref.digest or ref.tag or "latest", manifests.ACCEPT)
    except errdefs.DockyardError as e:
        raise _translate(e, ref) from None
    doc = manifests.decode(media_type, data)
    if isinstance(doc, spec.Index):
        chosen = manifests.select(doc, wanted)
        try:
            media_type, data, _ = repo.get_manifest(chosen.digest, manifests.ACCEPT)
        except errdefs.DockyardError as e:
            raise _translate(e, ref) from None
        doc = manifests.decode(media_type or chosen.media_type, data)
        if not isinstance(doc, spec.Manifest):
            raise errdefs.InvalidParameter(f"manifest list entry {chosen.digest} is itself a list")
        return doc, digest, True
    return doc, digest, False


def _fetch_config(svc: DistributionService, repo: RepositoryAPI, desc: spec.Descriptor) -> bytes:
    if desc.size > _MAX_CONFIG:
        raise errdefs.InvalidParameter(f"image config {desc.digest} is too large ({desc.size} bytes)")
    future = svc.downloads.fetch(repo, desc.digest, desc.size, None)
    try:
        future.result()
        return svc.content.read_bytes(desc.digest)
    finally:
        svc.downloads.release(desc.digest, consumed=True)


class _ExtractReader:
    """The blob as the layer store reads it, counted for the ``Extracting`` bar; ``Pull complete``
    once it was read to the end and closed."""

    def __init__(self, raw: IO[bytes], meter: Meter, done: Callable[[], None]) -> None:
        self._raw = raw
        self._meter = meter
        self._done = done
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._meter.add(len(data))
        elif n != 0:
            self._eof = True
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        if self._eof:
            self._done()


def _check_platform(ref: references.Reference, config: spec.ImageConfig, asked: platforms.PlatformSpec) -> None:
    """A single-platform image pulled with --platform must be that platform (moby's check)."""
    if not platforms.matches(config, asked):
        actual = platforms.of_config(config)
        raise errdefs.NotFound(f"image with reference {ref.familiar()} was found but does not match the specified "
                               f"platform: wanted {asked}, actual: {actual}")


def _pull_one(svc: DistributionService, repo: RepositoryAPI, ref: references.Reference,
              wanted: platforms.PlatformSpec, asked: platforms.PlatformSpec | None, progress: Progress) -> bool:
    """One tag or digest; True when a tag now names a different (or new) image."""
    manifest, manifest_digest, from_index = _manifest(repo, ref, wanted)
    # the repository path, as dockerd names it here: "library/busybox", "team/app"
    progress.status(f"Pulling from {ref.path}", id=ref.digest or ref.tag)
    images = svc.images
    config = _fetch_config(svc, repo, manifest.config)
    image_config = spec.decode_config(config)
    if asked is not None and not from_index:
        _check_platform(ref, image_config, asked)
    diff_ids = image_config.rootfs.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise errdefs.InvalidParameter(f"invalid image: config lists {len(diff_ids)} layers, "
                                       f"manifest {len(manifest.layers)}")
    openers: list[Callable[[], IO[bytes]]] = []
    downloaded: list[tuple[str, spec.Descriptor, Future]] = []
    chain: str | None = None
    try:
        new_image = images.store.get(manifest.config.digest) is None
        for position, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids)):
            chain = chain_id_of(chain, diff_id)
            layer_id = short(desc.digest)
            if not new_image or images.layers.exists(chain):
                progress.layer(layer_id, "Already exists")
                openers.append(_present)
            elif svc.content.has(diff_id):  # the same diff, registered on another parent
                progress.layer(layer_id, "Already exists")
                openers.append(_local_diff(svc, diff_id))
            else:
                progress.layer(layer_id, "Pulling fs layer")
                meter = progress.meter(layer_id, "Downloading", desc.size)
                future = svc.downloads.fetch(repo, desc.digest, desc.size, meter)
                downloaded.append((diff_id, desc, future))
                openers.append(_downloaded(svc, future, desc, layer_id, progress))
        for position, (_, desc, _) in enumerate(downloaded):
            if position >= svc.max_concurrent_downloads and not svc.content.has(desc.digest):
                progress.layer(short(desc.digest), "Waiting")
        # All blobs first, then unpack: register_images holds the image lock while it works, and
        # a slow download must not keep rmi, load or another pull's unpacking waiting.
        for _, desc, future in downloaded:
            error = future.exception()  # waits
            if error is not None:
                raise error
            progress.layer(short(desc.digest), "Download complete")
        name = [ref] if ref.tag is not None else []
        previous = images.store.ref_target(str(ref)) if ref.tag is not None else None
        result = register_images(images.lock, images.layers, images.store,
                                 [NewImage(config=config, layers=openers, names=name)])[0]
        with images.store.db.transaction() as cur:
            cur.execute("INSERT OR IGNORE INTO repo_digests (image_id, name) VALUES (?, ?)",
                        (result.id, f"{ref.name}@{manifest_digest}"))
    except BaseException:
        for _, desc, _ in downloaded:
            svc.downloads.release(desc.digest, consumed=False)
        raise
    for diff_id, desc, _ in downloaded:
        # an uncompressed layer's blob is its diff, which the layer store keeps
        svc.downloads.release(desc.digest, consumed=desc.digest != diff_id)
        svc.blobinfo.add(diff_id, BlobRecord(desc.digest, desc.media_type, desc.size, ref.name))
    progress.status(f"Digest: {manifest_digest}")
    images.events.emit("image", "pull", ref.familiar(), {"name": ref.familiar()})
    return result.new or previous != result.id


def _present() -> IO[bytes]:
    raise AssertionError("layer expected to be registered already")


def _local_diff(svc: DistributionService, diff_id: str) -> Callable[[], IO[bytes]]:
    return lambda: svc.content.open(diff_id)


def _downloaded(svc: DistributionService, future: Future, desc: spec.Descriptor, layer_id: str,
                progress: Progress) -> Callable[[], IO[bytes]]:
    def open_blob() -> IO[bytes]:
        future.result()
        meter = progress.meter(layer_id, "Extracting", desc.size)
        return _ExtractReader(svc.content.open(desc.digest), meter,  # type: ignore[return-value]
                              lambda: progress.layer(layer_id, "Pull complete"))
    return open_blob
