"""What the daemon remembers about one container (the ``containers.doc`` JSON).

The record keeps Docker's API shapes for Config, HostConfig and State so that
inspect is a projection, not a translation. It is saved whole, in one
transaction, after every state change (``ContainerStore.save``).
"""

from __future__ import annotations

import msgspec

from dockyard.apitypes.container import (
    ContainerConfig, EndpointSettings, Health, HostConfig, MountPoint, PortBinding, State,
)


class RootfsMount(msgspec.Struct):
    """A ``dockyard.mount.Mount`` of the container's writable snapshot, as saved."""
    type: str
    source: str
    options: list[str] = []


class ContainerRecord(msgspec.Struct, kw_only=True):
    id: str
    name: str  # without the leading "/"
    created: str  # RFC 3339 with nanoseconds, UTC
    image_id: str  # "sha256:<hex>"
    path: str
    args: list[str]
    config: ContainerConfig
    host_config: HostConfig
    state: State = msgspec.field(default_factory=State)
    health: Health | None = None  # State.Health, once a health check ran (daemon/containers/health.py)
    runtime: str = "dockyard"  # "dockyard" or a runc-compatible binary path
    restart_count: int = 0
    has_been_started: bool = False
    manually_stopped: bool = False
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    sandbox_key: str = ""
    networks: dict[str, EndpointSettings] = {}
    ports: dict[str, list[PortBinding] | None] = {}  # NetworkSettings.Ports while running
    mounts: list[MountPoint] = []
    rootfs_mounts: list[RootfsMount] = []  # made at create, as Docker makes the RW layer then


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ContainerRecord)


def encode(record: ContainerRecord) -> bytes:
    return _encoder.encode(record)


def decode(doc: bytes) -> ContainerRecord:
    return _decoder.decode(doc)
