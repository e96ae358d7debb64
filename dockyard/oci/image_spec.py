"""OCI image-spec and Docker schema2 documents as typed data.

Manifest, index and image config with their exact JSON names. An image's ID is
the sha256 of its config bytes *as stored*, so configs are decoded for reading
but never re-encoded to compute an ID. No I/O here.
References: https://github.com/opencontainers/image-spec (manifest.md, image-index.md,
config.md), Docker's image spec v1.2 and the docker-archive ``manifest.json``.
"""

from __future__ import annotations

from typing import Any

import msgspec

# ---- media types --------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# ---- annotations ----------------------------------------------------------------

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
OCI_LAYOUT_VERSION = "1.0.0"


# ---- descriptors, manifests, indexes --------------------------------------------

class Platform(msgspec.Struct, omit_defaults=True):
    architecture: str
    os: str
    variant: str | None = msgspec.field(default=None, name="variant")
    os_version: str | None = msgspec.field(default=None, name="os.version")
    os_features: list[str] | None = msgspec.field(default=None, name="os.features")


class Descriptor(msgspec.Struct, rename="camel", omit_defaults=True):
    media_type: str
    digest: str
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None


class Manifest(msgspec.Struct, rename="camel", omit_defaults=True):
    config: Descriptor
    layers: list[Descriptor] = []
    schema_version: int = 2
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class Index(msgspec.Struct, rename="camel", omit_defaults=True):
    manifests: list[Descriptor] = []
    schema_version: int = 2
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class Layout(msgspec.Struct):
    """The ``oci-layout`` file."""
    image_layout_version: str = msgspec.field(default=OCI_LAYOUT_VERSION, name="imageLayoutVersion")


class ArchiveManifestEntry(msgspec.Struct, rename="pascal", omit_defaults=True):
    """One entry of a docker-archive's ``manifest.json`` (``docker save``)."""
    config: str
    repo_tags: list[str] | None = None
    layers: list[str] = []
    layer_sources: dict[str, Descriptor] | None = None


# ---- image config ------------------------------------------------------------------

class HealthConfig(msgspec.Struct, rename="pascal", omit_defaults=True):
    test: list[str] | None = None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


class ContainerConfig(msgspec.Struct, rename="pascal", omit_defaults=True):
    """The image config's ``config``: defaults for containers made from the image.

    Docker writes the full container Config here (Hostname, AttachStdin, ...); the
    OCI spec names a subset. We keep what either writes and omit what is unset.
    """
    hostname: str | None = None
    domainname: str | None = None
    user: str | None = None
    attach_stdin: bool | None = None
    attach_stdout: bool | None = None
    attach_stderr: bool | None = None
    exposed_ports: dict[str, dict] | None = None
    tty: bool | None = None
    open_stdin: bool | None = None
    stdin_once: bool | None = None
    env: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: HealthConfig | None = None
    args_escaped: bool | None = None
    image: str | None = None
    volumes: dict[str, dict] | None = None
    working_dir: str | None = None
    entrypoint: list[str] | None = None
    network_disabled: bool | None = None
    on_build: list[str] | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shell: list[str] | None = None


class RootFS(msgspec.Struct):
    type: str = "layers"
    diff_ids: list[str] = []


class History(msgspec.Struct, omit_defaults=True):
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


class ImageConfig(msgspec.Struct, omit_defaults=True):
    """``application/vnd.oci.image.config.v1+json`` / Docker's image JSON."""
    architecture: str = ""
    os: str = ""
    rootfs: RootFS = msgspec.field(default_factory=RootFS)
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")
    config: ContainerConfig | None = None
    history: list[History] | None = None
    # Docker-only fields (image spec v1.2 / classic builder)
    comment: str | None = None
    docker_version: str | None = None
    parent: str | None = None
    container: str | None = None
    container_config: ContainerConfig | None = None


class V1LayerJSON(msgspec.Struct, omit_defaults=True):
    """The legacy ``<layer id>/json`` a docker-archive carries per layer (Docker still writes it)."""
    id: str
    created: str = "1970-01-01T00:00:00Z"
    parent: str | None = None
    container_config: ContainerConfig | None = None
    os: str | None = None


# ---- encode / decode -------------------------------------------------------------------

def decode_config(data: bytes) -> ImageConfig:
    return msgspec.json.decode(data, type=ImageConfig)


def encode(obj: Any) -> bytes:
    """Compact JSON, as registries and Docker hash it."""
    return msgspec.json.encode(obj)


def decode_manifest(data: bytes) -> Manifest:
    return msgspec.json.decode(data, type=Manifest)


def decode_index(data: bytes) -> Index:
    return msgspec.json.decode(data, type=Index)


def container_config_dict(config: ContainerConfig | None) -> dict[str, Any]:
    """The ``config`` object as plain data with Docker's names (what ImageInfo carries)."""
    if config is None:
        return {}
    return msgspec.to_builtins(config)
