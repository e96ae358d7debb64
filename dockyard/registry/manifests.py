"""What a pushed manifest says about other content: the blobs and manifests it references and
its subject. The registry keeps the client's bytes as they are; this only reads them."""

from __future__ import annotations

import msgspec

from dockyard.oci import image_spec as spec
from dockyard.registry import errors
from dockyard.registry.names import valid_digest

MAX_MANIFEST = 4 << 20  # distribution's default limit (4 MiB)
KNOWN_TYPES = (spec.OCI_MANIFEST, spec.DOCKER_MANIFEST, spec.OCI_INDEX, spec.DOCKER_MANIFEST_LIST)


class Ref(msgspec.Struct, rename="camel"):
    digest: str
    size: int
    media_type: str = ""
    urls: list[str] | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


class Document(msgspec.Struct, rename="camel"):
    schema_version: int = 0
    media_type: str | None = None
    artifact_type: str | None = None
    config: Ref | None = None
    layers: list[Ref] | None = None
    manifests: list[Ref] | None = None
    blobs: list[Ref] | None = None
    subject: Ref | None = None
    annotations: dict[str, str] | None = None


class Parsed(msgspec.Struct):
    media_type: str
    blobs: list[Ref]       # config and layers: must be blobs of the repository
    children: list[Ref]    # manifests an index lists: must be manifests of the repository
    subject: Ref | None
    artifact_type: str | None
    annotations: dict[str, str] | None


def parse(data: bytes, content_type: str) -> Parsed:
    """Raises errors.ManifestInvalid for anything that is not a manifest or index we can store."""
    try:
        doc = msgspec.json.decode(data, type=Document)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errors.ManifestInvalid(f"manifest invalid: {e}") from None
    content_type = content_type.split(";")[0].strip()
    media_type = doc.media_type or content_type
    if doc.media_type and content_type and content_type not in ("application/json", "application/octet-stream") \
            and content_type != doc.media_type:
        raise errors.ManifestInvalid(
            f"manifest invalid: mediaType {doc.media_type} does not match Content-Type {content_type}")
    if media_type not in KNOWN_TYPES:
        # the spec lets a manifest leave mediaType out; guess from its shape
        media_type = spec.OCI_INDEX if doc.manifests is not None else spec.OCI_MANIFEST if doc.config else ""
    if media_type not in KNOWN_TYPES:
        raise errors.ManifestInvalid(f"manifest invalid: unsupported media type {media_type or '(none)'}")
    if doc.schema_version != 2:
        raise errors.ManifestInvalid("manifest invalid: schemaVersion must be 2")
    blobs: list[Ref] = []
    children: list[Ref] = []
    if media_type in spec.MANIFEST_TYPES:
        if doc.config is None:
            raise errors.ManifestInvalid("manifest invalid: no config descriptor")
        blobs = [doc.config, *(doc.layers or [])]
    else:
        children = list(doc.manifests or [])
    for ref in [*blobs, *children, *([doc.subject] if doc.subject else [])]:
        if not valid_digest(ref.digest) or ref.size < 0:
            raise errors.ManifestInvalid(f"manifest invalid: bad descriptor digest {ref.digest!r}")
    # foreign layers (with urls) live elsewhere, as in distribution
    blobs = [b for b in blobs if not b.urls]
    artifact_type = doc.artifact_type or (doc.config.media_type if doc.config and doc.subject else None)
    return Parsed(media_type, blobs, children, doc.subject, artifact_type, doc.annotations)
