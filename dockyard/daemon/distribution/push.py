"""``POST /images/{name}/push``: a local image into a registry.

Per layer (in parallel, daemon-wide ``max-concurrent-uploads``): a blob this registry is
known to hold for the layer (``blobinfo``) is checked with HEAD ("Layer already exists") or
mounted from the other repository that has it ("Mounted from ..."); otherwise the layer's
diff is gzip-compressed (``compress``, in parallel blocks) while it streams to the registry
(one PATCH, or fixed-size chunks when ``push_chunk_size`` is set), the upload is closed with
its digest, and a failed upload is retried in a new session. Then the config
(monolithic PUT unless present) and the manifest, whose digest ends the stream exactly as
Docker reports it: ``latest: digest: sha256:... size: 527``.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Iterator

from dockyard import errdefs
from dockyard.daemon.distribution.blobinfo import BlobRecord
from dockyard.daemon.distribution.compress import gzip_stream
from dockyard.daemon.distribution.progress import Meter, Progress, short
from dockyard.daemon.distribution.registry import RepositoryAPI
from dockyard.daemon.images import references
from dockyard.daemon.images.store import ImageRecord
from dockyard.distribution.auth import Credentials
from dockyard.distribution.transport import TLSFailed
from dockyard.oci import image_spec as spec
from dockyard.storage.layers import chain_id_of

if TYPE_CHECKING:
    from dockyard.daemon.distribution.service import DistributionService

_MAX_MOUNT_SOURCES = 3
_UPLOAD_ATTEMPTS = 5  # Docker's max-upload-attempts default
_OCI_OF = {spec.DOCKER_LAYER_GZIP: spec.OCI_LAYER_GZIP, spec.DOCKER_LAYER: spec.OCI_LAYER}


def _tags(svc: DistributionService, name: str, tag: str) -> list[references.Reference]:
    ref = references.parse(name)
    if ref.digest is not None:
        raise errdefs.InvalidParameter("cannot push a digest reference")
    if tag:
        return [references.parse_repo_tag(ref.name, tag)]
    if ref.tag is not None:
        return [ref]
    tags = [references.parse(stored) for stored in svc.images.store.ref_names()]
    found = [t for t in tags if t.name == ref.name and t.tag is not None]
    if not found:
        raise errdefs.NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    return found


def push(svc: DistributionService, name: str, tag: str, credentials: Credentials, progress: Progress) -> None:
    refs = _tags(svc, name, tag)
    records = []
    for ref in refs:
        image_id = svc.images.store.ref_target(str(ref))
        record = svc.images.store.get(image_id) if image_id else None
        if record is None:
            raise errdefs.NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        records.append((ref, record))
    first = refs[0]
    progress.status(f"The push refers to repository [{first.name}]")
    for ref, record in records:
        _push_one(svc, ref, record, credentials, progress)


def _mount_sources(svc: DistributionService, ref: references.Reference, diff_ids: list[str]) -> list[str]:
    sources: list[str] = []
    for diff_id in diff_ids:
        for known in svc.blobinfo.get(diff_id):
            domain, _, path = known.repository.partition("/")
            if domain == ref.domain and path != ref.path and path not in sources:
                sources.append(path)
    return sources[:_MAX_MOUNT_SOURCES]


def _push_one(svc: DistributionService, ref: references.Reference, record: ImageRecord,
              credentials: Credentials, progress: Progress) -> None:
    diff_ids = record.config.rootfs.diff_ids
    sources = _mount_sources(svc, ref, diff_ids)
    repo = svc.registry.repository(ref.domain, ref.path, credentials, push=True,
                                   extra_scopes=tuple(f"repository:{s}:pull" for s in sources))
    chains: list[str] = []
    chain: str | None = None
    for diff_id in diff_ids:
        chain = chain_id_of(chain, diff_id)
        chains.append(chain)
    order = list(range(len(diff_ids)))[::-1]  # Docker lists the top layer first
    for i in order:
        progress.layer(short(diff_ids[i]), "Preparing")
    for n, i in enumerate(order):
        if n >= svc.max_concurrent_uploads:
            progress.layer(short(diff_ids[i]), "Waiting")
    futures: dict[int, Future] = {i: svc.uploads.submit(_push_layer, svc, repo, ref, diff_ids[i], chains[i], progress)
                                  for i in order}
    error: BaseException | None = None
    descriptors: list[spec.Descriptor] = []
    for i in range(len(diff_ids)):
        try:
            descriptors.append(futures[i].result())
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
    config_desc = spec.Descriptor(media_type=spec.DOCKER_CONFIG, digest=record.id, size=len(record.config_bytes))
    if repo.blob_size(record.id) is None:
        repo.upload_monolithic(repo.start_upload(), record.id, record.config_bytes)
    oci = any(d.media_type.startswith("application/vnd.oci.") for d in descriptors)
    if oci:
        config_desc.media_type = spec.OCI_CONFIG
        for d in descriptors:
            d.media_type = _OCI_OF.get(d.media_type, d.media_type)
    media_type = spec.OCI_MANIFEST if oci else spec.DOCKER_MANIFEST
    document = {"schemaVersion": 2, "mediaType": media_type,
                "config": {"mediaType": config_desc.media_type, "size": config_desc.size, "digest": config_desc.digest},
                "layers": [{"mediaType": d.media_type, "size": d.size, "digest": d.digest} for d in descriptors]}
    data = json.dumps(document, indent=3).encode()  # the layout of Docker's MarshalIndent
    tag = ref.tag or "latest"
    digest = repo.put_manifest(tag, media_type, data)
    with svc.images.store.db.transaction() as cur:
        cur.execute("INSERT OR IGNORE INTO repo_digests (image_id, name) VALUES (?, ?)",
                    (record.id, f"{ref.name}@{digest}"))
    progress.status(f"{tag}: digest: {digest} size: {len(data)}")
    progress.aux({"Tag": tag, "Digest": digest, "Size": len(data)})
    svc.images.events.emit("image", "push", ref.familiar(), {"name": ref.familiar()})


def _push_layer(svc: DistributionService, repo: RepositoryAPI, ref: references.Reference, diff_id: str,
                chain: str, progress: Progress) -> spec.Descriptor:
    layer_id = short(diff_id)
    known = [k for k in svc.blobinfo.get(diff_id) if k.repository.partition("/")[0] == ref.domain]
    for k in known:
        if k.repository == ref.name and repo.blob_size(k.digest) is not None:
            progress.layer(layer_id, "Layer already exists")
            return spec.Descriptor(media_type=k.media_type, digest=k.digest, size=k.size)
    location: str | None = None
    for k in known[:_MAX_MOUNT_SOURCES]:
        if k.repository == ref.name:
            continue
        source = k.repository.partition("/")[2]
        try:
            location = repo.mount(k.digest, source)
        except errdefs.DockyardError:
            continue
        if location is None:
            svc.blobinfo.add(diff_id, BlobRecord(k.digest, k.media_type, k.size, ref.name))
            progress.layer(layer_id, f"Mounted from {source}")
            return spec.Descriptor(media_type=k.media_type, digest=k.digest, size=k.size)
        break  # the registry started an upload instead: use it
    total = svc.images.layers.diff_blob(chain).size
    meter = progress.meter(layer_id, "Pushing", total)
    attempt = 0
    while True:
        try:
            digest, size = _upload(svc, repo, chain, location or repo.start_upload(), meter)
            break
        except errdefs.Unavailable as e:
            attempt += 1
            if attempt >= _UPLOAD_ATTEMPTS or isinstance(e, TLSFailed) or svc.closing.is_set():
                raise  # retrying cannot help a TLS setup error or a stopping daemon
            delay = svc.retry_delay * (2 ** (attempt - 1))
            meter.status(f"Retrying in {max(int(delay), 1)} second{'s' if delay >= 2 else ''}")
            time.sleep(delay)
            location = None  # a failed upload session is gone: start a new one
            meter.reset()
    progress.layer(layer_id, "Pushed")
    svc.blobinfo.add(diff_id, BlobRecord(digest, spec.DOCKER_LAYER_GZIP, size, ref.name))
    return spec.Descriptor(media_type=spec.DOCKER_LAYER_GZIP, digest=digest, size=size)


def _upload(svc: DistributionService, repo: RepositoryAPI, chain: str, location: str, meter: Meter) -> tuple[str, int]:
    """Compress the layer's diff while streaming it into the upload session; (digest, size)."""
    hasher = hashlib.sha256()
    size = 0

    def compressed() -> Iterator[bytes]:
        nonlocal size
        with svc.images.layers.tar_stream(chain) as tar:
            for out in gzip_stream(tar, meter.add):
                if svc.closing.is_set():  # the daemon is stopping: end this upload now
                    raise errdefs.Unavailable("the daemon is shutting down")
                hasher.update(out)
                size += len(out)
                yield out

    location = repo.upload_chunks(location, compressed(), svc.push_chunk_size)
    digest = "sha256:" + hasher.hexdigest()
    repo.finish_upload(location, digest)
    return digest, size
