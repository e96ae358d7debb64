"""What NetworkService keeps in memory and in its state files about networks and sandboxes,
and the address helpers built on network records. Plain data and pure functions."""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from dockyard import errdefs
from dockyard.network import ipam, iptables
from dockyard.network.dns import DnsServer
from dockyard.network.portmap import PortMapping
from dockyard.network.proxy import Proxy
from dockyard.network.records import NetworkRecord
from dockyard.network.sandbox import Uplink


@dataclass
class UplinkState:
    """What endpoints of a network with addresses plug into (the bridge, or a macvlan network's
    parent link) and its free addresses (memory only, rebuilt on start)."""
    index: int
    mtu: int
    pool: ipam.Pool
    kind: str = "veth"
    macvlan_mode: str = "bridge"
    pool6: ipam.Pool | None = None  # --ipv6 networks

    @property
    def spec(self) -> Uplink:
        return Uplink(self.kind, self.index, self.mtu, self.macvlan_mode)

    @classmethod
    def of(cls, spec: Uplink, pool: ipam.Pool, pool6: ipam.Pool | None) -> UplinkState:
        return cls(spec.index, spec.mtu, pool, spec.kind, spec.macvlan_mode, pool6)


@dataclass
class Endpoint:
    """A sandbox's interface on one network."""
    network: NetworkRecord
    address: ipaddress.IPv4Interface | None
    aliases: list[str]
    mac_address: str
    ifname: str
    container_id: str
    address6: ipaddress.IPv6Interface | None = None

    @property
    def endpoint_id(self) -> str:
        seed = f"{self.network.id}/{self.container_id}/{self.address}"
        return hashlib.sha256(seed.encode()).hexdigest()

    @property
    def mac(self) -> str:
        if self.mac_address:
            return self.mac_address
        return ipam.mac_for(self.address.ip) if self.address else ""


@dataclass
class Sandbox:
    """A container's network namespace. Its first endpoint's fields are the sandbox's own
    (``network``, ``address``, ...: the network it was started on, which carries the default
    route and the published ports); ``network connect`` adds ``extra`` endpoints."""
    container_id: str
    name: str
    network: NetworkRecord | None  # None: container:<id> mode (no endpoint of its own)
    netns_path: Path | None
    address: ipaddress.IPv4Interface | None = None
    files: tuple[Path | None, Path | None, Path | None] = (None, None, None)
    aliases: list[str] = field(default_factory=list)  # --network-alias (user-defined networks)
    ports: list[PortMapping] = field(default_factory=list)  # published ports, host side reserved
    exposed: list[str] = field(default_factory=list)  # ExposedPorts keys, for NetworkSettings.Ports
    proxies: list[Proxy] = field(default_factory=list)
    port_rules: list[iptables.Rule] = field(default_factory=list)
    resolver: DnsServer | None = None
    mac_address: str = ""  # --mac-address; else derived from the address
    upstreams: list[tuple[str, int]] = field(default_factory=list)  # the resolver's forwarders
    ifname: str = "eth0"
    extra: list[Endpoint] = field(default_factory=list)
    address6: ipaddress.IPv6Interface | None = None  # on an --ipv6 network

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint with a network, the first one first."""
        first = [] if self.network is None else [
            Endpoint(self.network, self.address, self.aliases, self.mac_address, self.ifname, self.container_id,
                      self.address6)]
        return first + self.extra

    @property
    def endpoint_id(self) -> str:
        seed = f"{self.network.id if self.network else ''}/{self.container_id}/{self.address}"
        return hashlib.sha256(seed.encode()).hexdigest()

    @property
    def sandbox_id(self) -> str:
        return hashlib.sha256(f"sandbox/{self.container_id}".encode()).hexdigest()

    @property
    def mac(self) -> str:
        if self.mac_address:
            return self.mac_address
        return ipam.mac_for(self.address.ip) if self.address else ""


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


class ExtraState(msgspec.Struct):
    """An endpoint added by ``network connect`` (its address is in ip_allocs)."""
    network_id: str
    ifname: str
    aliases: list[str] = []
    mac_address: str = ""


class SandboxState(msgspec.Struct):
    """What a sandbox needs besides its kernel objects and address to be served again after a
    daemon restart (a file in the exec root: sandboxes do not outlive a reboot either)."""
    aliases: list[str] = []
    ports: list[PortMapping] = []
    exposed: list[str] = []
    upstreams: list[tuple[str, int]] = []
    mac_address: str = ""
    ifname: str = "eth0"
    extra: list[ExtraState] = []


def pool_of(record: NetworkRecord, gateway: ipaddress.IPv4Interface) -> ipam.Pool:
    return ipam.Pool(gateway.network, gateway.ip,
                     ipaddress.IPv4Network(record.ip_range) if record.ip_range else None,
                     frozenset(ipaddress.IPv4Address(a) for a in record.aux_addresses.values()))


def parse_range(text: str, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    try:
        ip_range = ipaddress.IPv4Network(text)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"invalid ip-range {text}: {e}") from None
    if not ip_range.subnet_of(subnet):
        raise errdefs.InvalidParameter(f"ip-range {ip_range} is not within subnet {subnet}")
    return ip_range


def range_and_aux(config, gateway: ipaddress.IPv4Interface) -> tuple[str, dict[str, str]]:
    """Validated --ip-range and --aux-address of a network create."""
    if config is None:
        return "", {}
    ip_range = str(parse_range(config.ip_range, gateway.network)) if config.ip_range else ""
    aux: dict[str, str] = {}
    for host, text in (config.auxiliary_addresses or {}).items():
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise errdefs.InvalidParameter(f"invalid aux-address {host}={text}") from None
        if address not in gateway.network:
            raise errdefs.InvalidParameter(f"no matching subnet for aux-address {address}")
        aux[host] = str(address)
    return ip_range, aux


def pool6_of(record: NetworkRecord) -> ipam.Pool | None:
    if not record.subnet6:
        return None
    return ipam.Pool(ipaddress.IPv6Network(record.subnet6), ipaddress.IPv6Address(record.gateway6))
