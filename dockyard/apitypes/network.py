"""Docker Engine API network shapes, with Docker's JSON names.

``GET /networks`` and ``GET /networks/{id}`` answer ``Network`` objects.
Reference: docker-engine-api-v1.50.yaml (Network, IPAM, IPAMConfig, EndpointResource,
ConfigReference). A container's view of its networks (NetworkSettings) lives in
``apitypes.container``.
"""

from __future__ import annotations

import msgspec

from dockyard.apitypes.container import EndpointSettings


class _D(msgspec.Struct, rename="pascal"):
    pass


class IPAMConfig(_D, omit_defaults=True):  # Docker omits empty IPRange/AuxiliaryAddresses
    subnet: str = ""
    gateway: str = ""
    ip_range: str | None = msgspec.field(default=None, name="IPRange")
    auxiliary_addresses: dict[str, str] | None = None


class IPAM(_D):
    driver: str = "default"
    options: dict[str, str] | None = None
    config: list[IPAMConfig] | None = []


class ConfigReference(_D):
    network: str = ""


class EndpointResource(_D):
    name: str = ""
    endpoint_id: str = msgspec.field(default="", name="EndpointID")
    mac_address: str = ""
    ipv4_address: str = msgspec.field(default="", name="IPv4Address")  # "172.30.0.2/16"
    ipv6_address: str = msgspec.field(default="", name="IPv6Address")


class Network(_D):
    name: str
    id: str = msgspec.field(name="Id")
    created: str
    driver: str  # "bridge", "host", "null"
    scope: str = "local"
    enable_ipv4: bool = msgspec.field(default=True, name="EnableIPv4")
    enable_ipv6: bool = msgspec.field(default=False, name="EnableIPv6")
    ipam: IPAM = msgspec.field(default_factory=IPAM, name="IPAM")
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    config_from: ConfigReference = msgspec.field(default_factory=ConfigReference)
    config_only: bool = False
    containers: dict[str, EndpointResource] = {}
    options: dict[str, str] = {}
    labels: dict[str, str] = {}


class CreateRequest(_D):
    """POST /networks/create body (unknown fields ignored, as dockerd does)."""
    name: str = ""
    driver: str = ""
    scope: str = ""
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    config_only: bool = False
    config_from: ConfigReference | None = None
    enable_ipv4: bool | None = msgspec.field(default=None, name="EnableIPv4")
    enable_ipv6: bool | None = msgspec.field(default=None, name="EnableIPv6")
    ipam: IPAM | None = msgspec.field(default=None, name="IPAM")
    options: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    check_duplicate: bool | None = None


class CreateResponse(_D):
    id: str = msgspec.field(name="Id")
    warning: str = ""


class ConnectRequest(_D):
    """POST /networks/{id}/connect body."""
    container: str = ""
    endpoint_config: EndpointSettings | None = None


class DisconnectRequest(_D):
    """POST /networks/{id}/disconnect body."""
    container: str = ""
    force: bool = False
