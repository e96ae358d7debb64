"""Writing a docker-archive tar (``docker save``'s format, as Docker 25+ writes it).

An OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) plus the
classic ``manifest.json`` and ``repositories`` pointing into the same blobs, so
``docker load`` from 1.10 on and OCI tools all read it. Layer blobs are uncompressed
diffs named by diff ID. Entries are streamed one by one; only the small JSON files are
built in memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from dockyard.daemon.images import references, tarstream
from dockyard.oci import image_spec as spec


@dataclass
class LayerBlob:
    diff_id: str
    size: int
    chunks: Callable[[], Iterable[bytes]]  # called once, when the blob is written


@dataclass
class ArchiveEntry:
    config: bytes
    layers: list[LayerBlob]
    tags: list[references.Reference] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def write_archive(entries: Iterable[ArchiveEntry], mtime: int = 0) -> Iterator[bytes]:
    written: set[str] = set()
    manifest_json: list[dict] = []
    index = spec.Index(media_type=spec.OCI_INDEX)
    repositories: dict[str, dict[str, str]] = {}

    def blob(digest: str, data: bytes) -> Iterator[bytes]:
        if digest not in written:
            written.add(digest)
            yield from tarstream.file_bytes(f"blobs/sha256/{_hex(digest)}", data, mtime)

    yield tarstream.directory("blobs", mtime)
    yield tarstream.directory("blobs/sha256", mtime)
    for entry in entries:
        yield from blob(entry.id, entry.config)
        for layer in entry.layers:
            if layer.diff_id not in written:
                written.add(layer.diff_id)
                yield from tarstream.file_chunks(f"blobs/sha256/{_hex(layer.diff_id)}", layer.size,
                                                 layer.chunks(), mtime)
        manifest = spec.encode(spec.Manifest(
            media_type=spec.OCI_MANIFEST,
            config=spec.Descriptor(media_type=spec.OCI_CONFIG, digest=entry.id, size=len(entry.config)),
            layers=[spec.Descriptor(media_type=spec.OCI_LAYER, digest=layer.diff_id, size=layer.size)
                    for layer in entry.layers]))
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        yield from blob(manifest_digest, manifest)
        descriptor = dict(media_type=spec.OCI_MANIFEST, digest=manifest_digest, size=len(manifest))
        for tag in entry.tags:
            index.manifests.append(spec.Descriptor(**descriptor, annotations={
                spec.ANNOTATION_CONTAINERD_NAME: str(tag), spec.ANNOTATION_REF_NAME: tag.tag or ""}))
            if entry.layers:
                repositories.setdefault(tag.familiar_name, {})[tag.tag or references.DEFAULT_TAG] = \
                    _hex(entry.layers[-1].diff_id)
        if not entry.tags:
            index.manifests.append(spec.Descriptor(**descriptor))
        manifest_json.append({
            "Config": f"blobs/sha256/{_hex(entry.id)}",
            "RepoTags": [tag.familiar() for tag in entry.tags] or None,
            "Layers": [f"blobs/sha256/{_hex(layer.diff_id)}" for layer in entry.layers],
        })
    yield from tarstream.file_bytes("index.json", spec.encode(index), mtime)
    yield from tarstream.file_bytes("manifest.json", json.dumps(manifest_json, separators=(",", ":")).encode(),
                                    mtime)
    yield from tarstream.file_bytes("oci-layout", spec.encode(spec.Layout()), mtime)
    if repositories:
        yield from tarstream.file_bytes("repositories", json.dumps(repositories).encode(), mtime)
    yield tarstream.end()
