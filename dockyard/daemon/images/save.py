"""``GET /images/get`` / ``GET /images/{name}/get``: a docker-archive tar stream.

Written as Docker 25+ does: an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) plus the classic ``manifest.json`` and ``repositories`` pointing into
the same blobs, so ``docker load`` from 1.10 on and OCI tools all read it. Layer blobs are
the exact uncompressed diffs kept by the layer store, so IDs survive a round trip.
Streamed entry by entry; nothing is assembled in memory beyond the small JSON files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from dockyard import errdefs
from dockyard.daemon.images import references, tarstream
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.store import ImageRecord
from dockyard.oci import image_spec as spec
from dockyard.storage.layers import chain_id_of

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


@dataclass
class _Export:
    record: ImageRecord
    tags: list[references.Reference] = field(default_factory=list)


def _select(service: ImageService, names: list[str]) -> list[_Export]:
    """What each name means to ``docker save``: a repository without a tag is all its tags."""
    chosen: dict[str, _Export] = {}

    def add(record: ImageRecord, tag: references.Reference | None) -> None:
        entry = chosen.setdefault(record.id, _Export(record))
        if tag is not None and tag not in entry.tags:
            entry.tags.append(tag)

    for name in names:
        try:
            parsed = references.parse(name)
        except errdefs.InvalidParameter:
            parsed = None
        if parsed is not None and parsed.tag is None and parsed.digest is None and ":" not in name:
            repo_tags = [references.parse(r) for r in service.store.ref_names()
                         if references.parse(r).name == parsed.name]
            if repo_tags:
                for ref in repo_tags:
                    add(resolve(service.store, str(ref)), ref)
                continue
        record = resolve(service.store, name)
        is_id = record.id.startswith(name) or record.id.partition(":")[2].startswith(name)
        add(record, None if is_id or parsed is None or parsed.digest else references.parse_tagged(name))
    return list(chosen.values())


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def save(service: ImageService, names: list[str]) -> Iterator[bytes]:
    exports = _select(service, names)  # resolve now: a bad name is an error before any byte is sent
    return _stream(service, exports)


def _stream(service: ImageService, exports: list[_Export]) -> Iterator[bytes]:
    written: set[str] = set()
    manifest_json: list[dict] = []
    index = spec.Index(media_type=spec.OCI_INDEX)
    repositories: dict[str, dict[str, str]] = {}
    yield tarstream.directory("blobs")
    yield tarstream.directory("blobs/sha256")

    def blob(digest: str, data: bytes) -> Iterator[bytes]:
        if digest not in written:
            written.add(digest)
            yield from tarstream.file_bytes(f"blobs/sha256/{_hex(digest)}", data)

    for export in exports:
        record = export.record
        service.events.emit("image", "save", record.id, {"name": record.id})
        yield from blob(record.id, record.config_bytes)
        layer_descs = []
        chain: str | None = None
        for diff_id in record.config.rootfs.diff_ids:
            chain = chain_id_of(chain, diff_id)
            size = service.content.info(diff_id).size
            layer_descs.append(spec.Descriptor(media_type=spec.OCI_LAYER, digest=diff_id, size=size))
            if diff_id in written:
                continue
            written.add(diff_id)
            with service.layers.tar_stream(chain) as reader:
                yield from tarstream.file_chunks(f"blobs/sha256/{_hex(diff_id)}", size,
                                                 iter(lambda: reader.read(tarstream.CHUNK), b""))
        manifest = spec.encode(spec.Manifest(
            media_type=spec.OCI_MANIFEST,
            config=spec.Descriptor(media_type=spec.OCI_CONFIG, digest=record.id, size=len(record.config_bytes)),
            layers=layer_descs))
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        yield from blob(manifest_digest, manifest)
        manifest_desc = dict(media_type=spec.OCI_MANIFEST, digest=manifest_digest, size=len(manifest))
        if export.tags:
            for tag in export.tags:
                index.manifests.append(spec.Descriptor(**manifest_desc, annotations={
                    spec.ANNOTATION_CONTAINERD_NAME: str(tag), spec.ANNOTATION_REF_NAME: tag.tag or ""}))
                if layer_descs:
                    repositories.setdefault(tag.familiar_name, {})[tag.tag or "latest"] = \
                        _hex(layer_descs[-1].digest)
        else:
            index.manifests.append(spec.Descriptor(**manifest_desc))
        manifest_json.append({
            "Config": f"blobs/sha256/{_hex(record.id)}",
            "RepoTags": [tag.familiar() for tag in export.tags] or None,
            "Layers": [f"blobs/sha256/{_hex(d.digest)}" for d in layer_descs],
        })
    yield from tarstream.file_bytes("index.json", spec.encode(index))
    yield from tarstream.file_bytes("manifest.json", json.dumps(manifest_json, separators=(",", ":")).encode())
    yield from tarstream.file_bytes("oci-layout", spec.encode(spec.Layout()))
    if repositories:
        yield from tarstream.file_bytes("repositories", json.dumps(repositories).encode())
    yield tarstream.end()
