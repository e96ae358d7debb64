"""The narrow Protocols daemon services use to reach each other.

Only ``daemon/daemon.py`` sees the implementations and wires them; a service
takes what it needs in its constructor, typed by one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dockyard.apitypes.container import EndpointSettings as EndpointConfig
from dockyard.apitypes.container import HostConfig, MountPoint, PortBinding
from dockyard.mount import Mount
from dockyard.oci import runtime_spec as oci


# ---- events -----------------------------------------------------------------

class EventSink(Protocol):
    def emit(self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None,
             scope: str = "local") -> None:
        """Record one event (Docker's shape: Type, Action, Actor{ID, Attributes}, time, timeNano)."""


# ---- images, as the container service needs them ----------------------------

@dataclass(frozen=True)
class ImageInfo:
    id: str  # "sha256:<hex>"
    config: dict[str, Any]  # the image config's "config" object: Env, Cmd, Entrypoint, WorkingDir,
    # User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild, Shell
    top_chain_id: str | None  # None for an image with no layers
    repo_tags: list[str] = field(default_factory=list)


class ImageLookup(Protocol):
    def resolve(self, ref: str) -> ImageInfo:
        """By name[:tag], name@digest, full or short ID. Raises NotFound ('No such image: ref')."""

    def prepare_rootfs(self, key: str, image: ImageInfo) -> list[Mount]:
        """A writable snapshot for a container: overlay mounts over the image's layers."""

    def remove_rootfs(self, key: str) -> None: ...

    def make_spare_rootfs(self) -> None:
        """Blocking, off a create's path (after its answer): what the next ``prepare_rootfs``
        would make first (its directories), made ahead."""

    def rootfs_diff(self, key: str) -> Any:
        """Iterator of tar bytes: the container's changes as a Docker layer (for commit)."""

    def rootfs_upper(self, key: str) -> Path: ...

    def layer_dirs(self, image: ImageInfo) -> list[Path]:
        """The image's unpacked layers, top first (read /etc/passwd without mounting)."""


class ContainerUsage(Protocol):
    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        """(container id, running) for every container created from image_id."""


# ---- containers, as the image service needs them for commit --------------

@dataclass(frozen=True)
class CommitTarget:
    """What commit needs to know about a container."""
    id: str
    image_id: str
    snapshot_key: str
    config: dict[str, Any]  # the container's Config (Docker names: Env, Cmd, ...)


class ContainerCommitSource(Protocol):
    """Implemented by the container service; the image service's window on containers for commit."""

    def commit_target(self, ref: str) -> CommitTarget:
        """By name, ID or ID prefix. Raises NotFound ('No such container: ref')."""

    def paused_for_commit(self, container_id: str, pause: bool) -> AbstractContextManager[None]:
        """Hold the container paused (when ``pause`` and it is running) while its diff is read."""


# ---- networks, as the container service needs them --------------------------

@dataclass
class EndpointSettings:
    network_name: str
    network_id: str
    endpoint_id: str
    ip_address: str = ""
    ip_prefix_len: int = 0
    gateway: str = ""
    mac_address: str = ""
    aliases: list[str] = field(default_factory=list)
    ipv6_address: str = ""  # IPv6 networks (--ipv6) only
    ipv6_prefix_len: int = 0
    ipv6_gateway: str = ""


@dataclass
class SandboxInfo:
    """What the container's spec needs from networking."""
    netns_path: str | None  # None: share the host's net namespace (host mode)
    endpoints: list[EndpointSettings] = field(default_factory=list)
    hosts_path: Path | None = None  # files to bind into /etc (container:<id> mode: the peer's files)
    resolv_conf_path: Path | None = None
    hostname_path: Path | None = None
    # NetworkSettings.Ports: exposed ports with their published host bindings (null: not published)
    ports: dict[str, list[PortBinding] | None] = field(default_factory=dict)


class NetworkAttacher(Protocol):
    async def create_sandbox(self, container_id: str, mode: str, hostname: str, domainname: str,
                             dns: list[str], dns_search: list[str], dns_options: list[str],
                             extra_hosts: list[str], data_dir: Path, peer_netns: str | None = None,
                             container_name: str = "", *,
                             port_bindings: dict[str, list[PortBinding] | None] | None = None,
                             exposed_ports: Any = (), publish_all: bool = False,
                             endpoint_config: EndpointConfig | None = None, links: Any = (),
                             more_networks: dict[str, EndpointConfig | None] | None = None) -> SandboxInfo:
        """Make the container's network namespace (mode: bridge|none|host|container:<full id>|<network
        name or ID>) with its interfaces up, and its /etc/hosts, resolv.conf and hostname files in
        data_dir. container_name is what ``docker network inspect`` and the embedded DNS know
        the container by; peer_netns overrides the namespace found for a container:<id> peer.
        Bridge networks: port_bindings/exposed_ports/publish_all (HostConfig.PortBindings,
        Config.ExposedPorts keys, -P) publish ports; endpoint_config is the NetworkingConfig entry
        of the mode's network (--ip, --ip6, --mac-address, --network-alias); links are
        HostConfig.Links; more_networks (network name or ID -> its entry) are joined too."""

    def prepare_sandbox_files(self, container_id: str, mode: str, hostname: str, dns: list[str],
                              dns_search: list[str], dns_options: list[str], extra_hosts: list[str],
                              data_dir: Path) -> None:
        """Blocking, best effort; after a create, off its request's path: write now those of the
        /etc files a start in ``mode`` would write that do not depend on what the start
        allocates. The start leaves a file that already holds what it would write as it is."""

    def check_endpoints(self, mode: str, configs: dict[str, EndpointConfig | None]) -> None:
        """At container create: the networks of NetworkingConfig exist and their settings
        (--ip, --network-alias) are allowed there; raises Docker's errors."""

    async def release_sandbox(self, container_id: str) -> None:
        """Tear down the namespace and free addresses; idempotent, never slow (no synchronous veth delete)."""

    def container_renamed(self, container_id: str, name: str) -> None:
        """The name the embedded DNS and ``network inspect`` know a running container by."""


class StoppedContainerNetworks(Protocol):
    """``network connect``/``disconnect`` of a container that is not running: recorded in the
    container's own settings (NetworkSettings.Networks) and applied at its next start, as
    dockerd does. Implemented by the container service, called by the network service."""

    def connect_stopped(self, ref: str, network_name: str, network_id: str, config: EndpointConfig | None) -> str:
        """Record the network on the container; returns its full ID. Raises NotFound for an
        unknown container, Forbidden when it is on that network already or cannot join one."""

    def disconnect_stopped(self, ref: str, network_name: str, network_id: str) -> str:
        """Forget the network on the container; returns its full ID. Raises NotFound, or
        Forbidden when the container is not on that network."""


# ---- volumes, as the container service needs them ---------------------------

class VolumeMounter(Protocol):
    """A container's mounts (-v, --mount, --volumes-from, Config.Volumes), kept by the volume service."""

    def resolve_mounts(self, container_id: str, host_config: HostConfig,
                       config_volumes: dict[str, Any] | None, image_layer_dirs: list[Path],
                       volumes_from_lookup: Any, default_read_only_non_recursive: bool = False) -> list[MountPoint]:
        """At create: validate, create named/anonymous volumes, copy-up, record; the inspect
        Mounts. volumes_from_lookup(ref) -> full container ID (raises NotFound). Nothing is
        left behind on error. Blocks only for plugin calls and copy-up.
        default_read_only_non_recursive: a client before API 1.44 (read-only binds not recursive)."""

    async def resolve_mounts_async(self, container_id: str, host_config: HostConfig,
                                   config_volumes: dict[str, Any] | None, image_layer_dirs: list[Path],
                                   volumes_from_lookup: Any,
                                   default_read_only_non_recursive: bool = False) -> list[MountPoint]:
        """``resolve_mounts`` for a caller on the event loop: driver calls (a slow volume plugin,
        copy-up) run in a worker thread."""

    async def mount(self, container_id: str, runtime: str = "") -> list[oci.Mount]:
        """At start: the OCI mounts (binds of volumes and host paths, --mount tmpfs) for the spec.
        runtime: what the shim runs ("dockyard" or a runc-compatible binary), whose support of
        "rro" decides whether a read-only bind is recursive."""

    async def unmount(self, container_id: str) -> None:
        """At stop/exit (idempotent)."""

    async def release(self, container_id: str, remove_anonymous: bool) -> None:
        """At remove: drop the container's references; rm -v / --rm also remove its anonymous volumes."""

    def release_blocking(self, container_id: str, remove_anonymous: bool) -> None:
        """``release`` for a synchronous caller (a create that failed after resolve_mounts)."""

    def volume_path(self, name: str) -> str:
        """The volume's content directory on the host (a local volume's ``_data``, a plugin
        volume's last Mountpoint), "" when unknown: docker cp keeps a subpath mount beneath it."""
