"""Docker Engine API volume shapes, with Docker's JSON names.

``GET /volumes/{name}`` answers a ``Volume``; ``GET /volumes`` a ``ListResponse``.
``MountSpec`` is one entry of ``HostConfig.Mounts`` (``--mount``), typed here
because the volume service is what interprets it.
Reference: docker-engine-api-v1.50.yaml (Volume, VolumeCreateOptions,
VolumeListResponse, Mount, MountPoint).
"""

from __future__ import annotations

import msgspec


class _D(msgspec.Struct, rename="pascal"):
    pass


class UsageData(_D):
    size: int = -1  # -1: not computed (Docker's "not available")
    ref_count: int = -1


class Volume(_D, omit_defaults=True, kw_only=True):
    # Docker's field order (alphabetical). Fields without a default are always sent (Labels and
    # Options as null when unset, as Docker does); CreatedAt, Status, UsageData are omitted when empty.
    created_at: str = ""
    driver: str
    labels: dict[str, str] | None
    mountpoint: str
    name: str
    options: dict[str, str] | None
    scope: str
    status: dict[str, object] | None = None
    usage_data: UsageData | None = None


class CreateRequest(_D):
    """POST /volumes/create body (unknown fields ignored, as dockerd does)."""
    name: str = ""
    driver: str = ""
    driver_opts: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class ListResponse(_D):
    volumes: list[Volume]
    warnings: list[str] | None = None


class PruneResponse(_D):
    volumes_deleted: list[str] | None = None
    space_reclaimed: int = 0


# ---- HostConfig.Mounts (--mount) ---------------------------------------------------

class BindOptions(_D):
    propagation: str = ""
    non_recursive: bool = False
    create_mountpoint: bool = False
    read_only_non_recursive: bool = False
    read_only_force_recursive: bool = False


class DriverConfig(_D):
    name: str = ""
    options: dict[str, str] | None = None


class VolumeOptions(_D):
    no_copy: bool = False
    labels: dict[str, str] | None = None
    driver_config: DriverConfig | None = None
    subpath: str = ""


class TmpfsOptions(_D):
    size_bytes: int = 0
    mode: int = 0
    options: list[list[str]] | None = None


class MountSpec(_D):
    type: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None
