"""Docker Engine API image shapes (v1.50 names), as the image router encodes them.

Reference: docker-engine-api-v1.50.yaml definitions ImageSummary, ImageInspect,
ImageHistoryResponseItem, ImageDeleteResponseItem, DriverData, ImagePruneResponse.
"""

from __future__ import annotations

import msgspec

from dockyard.oci.image_spec import ContainerConfig, HealthConfig


class ImageConfig(msgspec.Struct, rename="pascal", omit_defaults=True):
    """ImageInspect.Config from API 1.50 on: the OCI image config fields only (Docker 28)."""
    user: str | None = None
    exposed_ports: dict[str, dict] | None = None
    env: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: HealthConfig | None = None
    args_escaped: bool | None = None
    volumes: dict[str, dict] | None = None
    working_dir: str | None = None
    entrypoint: list[str] | None = None
    on_build: list[str] | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    shell: list[str] | None = None

    @classmethod
    def of(cls, config: ContainerConfig) -> ImageConfig:
        return cls(**{f: getattr(config, f) for f in cls.__struct_fields__})


class ImageSummary(msgspec.Struct, rename="pascal"):
    id: str
    parent_id: str
    repo_tags: list[str]
    repo_digests: list[str]
    created: int  # unix seconds
    size: int
    shared_size: int  # -1 unless the client asked for shared-size
    labels: dict[str, str]
    containers: int  # -1 unless counted (system df, shared-size)


class DriverData(msgspec.Struct, rename="pascal"):
    name: str
    data: dict[str, str]


class RootFS(msgspec.Struct, rename="pascal", omit_defaults=True):
    type: str
    layers: list[str] = []


class ImageMetadata(msgspec.Struct, rename="pascal", omit_defaults=True):
    last_tag_time: str | None = None


class ImageInspect(msgspec.Struct, rename="pascal", omit_defaults=True):
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    parent: str
    comment: str
    created: str | None  # RFC 3339 with nanoseconds, as in the config
    docker_version: str
    author: str
    config: ContainerConfig | ImageConfig  # ImageConfig from API 1.50 on; before, the container config
    architecture: str
    os: str
    size: int
    graph_driver: DriverData
    root_fs: RootFS = msgspec.field(name="RootFS")
    metadata: ImageMetadata
    variant: str | None = None  # omitted when empty, as Docker does


class HistoryResponseItem(msgspec.Struct, rename="pascal"):
    id: str  # image ID, or "<missing>" for a step whose image is not here
    created: int
    created_by: str
    tags: list[str] | None
    size: int
    comment: str


class DeleteResponse(msgspec.Struct, rename="pascal", omit_defaults=True):
    untagged: str | None = None
    deleted: str | None = None


class PruneReport(msgspec.Struct, rename="pascal"):
    images_deleted: list[DeleteResponse] | None
    space_reclaimed: int


class ImagesDiskUsage(msgspec.Struct, rename="pascal"):
    """The images part of ``GET /system/df``."""
    layers_size: int
    images: list[ImageSummary]


class CommitResponse(msgspec.Struct, rename="pascal"):
    id: str


class ProgressMessage(msgspec.Struct, omit_defaults=True):
    """One line of a JSON progress stream (``{"status": ...}`` / ``{"stream": ...}``)."""
    status: str | None = None
    stream: str | None = None
    id: str | None = None
    progress: str | None = None
    error: str | None = None
    errorDetail: dict | None = None
