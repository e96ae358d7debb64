"""Manifests a registry serves: which kind, and which image of a list is ours.

Accepted: Docker schema 2 manifests and manifest lists, OCI image manifests and indexes.
Schema 1 (long deprecated, removed from Docker 28) and anything else is refused with
Docker's words. Platform selection follows containerd's matcher as Docker uses it: the
OS and architecture must match; for a variant, an exact match wins, then a lower ARM
version (v7 runs v6), then an entry without a variant.
"""

from __future__ import annotations

import msgspec

from dockyard import errdefs
from dockyard.oci import image_spec as spec
from dockyard.oci.platform import PlatformSpec, normalize

ACCEPT = [spec.DOCKER_MANIFEST, spec.DOCKER_MANIFEST_LIST, spec.OCI_MANIFEST, spec.OCI_INDEX]

LAYER_TYPES = {
    spec.DOCKER_LAYER_GZIP, spec.DOCKER_LAYER, spec.OCI_LAYER, spec.OCI_LAYER_GZIP, spec.OCI_LAYER_ZSTD,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}
CONFIG_TYPES = {spec.DOCKER_CONFIG, spec.OCI_CONFIG}


def _variant_rank(wanted: str, offered: str) -> int | None:
    """Lower is better; None: not runnable."""
    if offered == wanted:
        return 0
    if not offered:
        return 50
    if wanted.startswith("v") and offered.startswith("v") and wanted[1:].isdigit() and offered[1:].isdigit():
        if int(offered[1:]) < int(wanted[1:]):
            return int(wanted[1:]) - int(offered[1:])
    return None


def select(index: spec.Index, wanted: PlatformSpec) -> spec.Descriptor:
    best: tuple[int, int, spec.Descriptor] | None = None
    for position, desc in enumerate(index.manifests):
        if desc.media_type not in spec.MANIFEST_TYPES or desc.platform is None:
            continue
        offered = normalize(PlatformSpec(desc.platform.os, desc.platform.architecture, desc.platform.variant or ""))
        if offered.os != wanted.os or offered.architecture != wanted.architecture:
            continue
        rank = _variant_rank(wanted.variant, offered.variant)
        if rank is not None and (best is None or (rank, position) < best[:2]):
            best = (rank, position, desc)
    if best is None:
        raise errdefs.NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    return best[2]


def decode(media_type: str, data: bytes) -> spec.Manifest | spec.Index:
    """A manifest or index by its media type (the ``mediaType`` field when the header is vague)."""
    if media_type not in spec.MANIFEST_TYPES and media_type not in spec.INDEX_TYPES:
        try:
            inner = msgspec.json.decode(data, type=dict)
        except msgspec.DecodeError:
            inner = {}
        declared = inner.get("mediaType") if isinstance(inner, dict) else None
        if isinstance(declared, str) and declared:
            media_type = declared
        elif isinstance(inner, dict) and "manifests" in inner:
            media_type = spec.OCI_INDEX
        elif isinstance(inner, dict) and "config" in inner and "layers" in inner and media_type in ("", "application/json"):
            media_type = spec.OCI_MANIFEST
    if inner_schema1(media_type, data):
        raise errdefs.InvalidParameter(
            "support for Docker Image Format v1 and Docker Image manifest version 2, schema 1 has been removed")
    try:
        if media_type in spec.INDEX_TYPES:
            return msgspec.json.decode(data, type=spec.Index)
        if media_type in spec.MANIFEST_TYPES:
            manifest = msgspec.json.decode(data, type=spec.Manifest)
            for layer in manifest.layers:
                if layer.media_type not in LAYER_TYPES:
                    raise errdefs.InvalidParameter(f"unsupported media type {layer.media_type} for a layer")
            if manifest.config.media_type not in CONFIG_TYPES:
                raise errdefs.InvalidParameter(
                    f"unsupported media type {manifest.config.media_type} for an image config")
            return manifest
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errdefs.InvalidParameter(f"invalid manifest ({media_type}): {e}") from None
    raise errdefs.InvalidParameter(f"unsupported manifest media type and no default available: {media_type}")


def inner_schema1(media_type: str, data: bytes) -> bool:
    return media_type.startswith("application/vnd.docker.distribution.manifest.v1")
