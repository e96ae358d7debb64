"""What the daemon stores about a network, and how Docker shows it.

A ``NetworkRecord`` is the ``doc`` column of the ``networks`` table. ``to_api`` renders it as
Docker's Network object; ``matches`` applies ``GET /networks`` filters.
"""

from __future__ import annotations

import ipaddress

import msgspec

from dockyard import errdefs
from dockyard.apitypes.network import IPAM, EndpointResource, IPAMConfig, Network

PREDEFINED = ("bridge", "host", "none")
DRIVER_OF_PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MTU_OPTION = "com.docker.network.driver.mtu"
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
ICC_OPTION = "com.docker.network.bridge.enable_icc"  # false: containers of the bridge cannot talk
HOST_BINDING_OPTION = "com.docker.network.bridge.host_binding_ipv4"  # default address of -p
PARENT_OPTION = "parent"  # macvlan: -o parent=<host interface>
MACVLAN_MODE_OPTION = "macvlan_mode"


class NetworkRecord(msgspec.Struct):
    id: str
    name: str
    driver: str  # "bridge", "host", "null", "macvlan"
    created: str
    subnet: str = ""  # "172.30.0.0/16"; empty for host and null
    gateway: str = ""  # address only, e.g. "172.30.0.1"
    ip_range: str = ""  # --ip-range: dynamic addresses come from here
    subnet6: str = ""  # --ipv6: the IPv6 subnet, e.g. "fd00:1::/64"
    gateway6: str = ""
    aux_addresses: dict[str, str] = {}  # --aux-address name=ip: reserved, never handed out
    bridge: str = ""  # kernel link name: the bridge (bridge driver), the parent (macvlan)
    bridge_created: bool = False  # True: this daemon made the link and may delete it
    internal: bool = False  # no default route out of the network
    attachable: bool = False
    options: dict[str, str] = {}
    labels: dict[str, str] = {}

    @property
    def builtin(self) -> bool:
        return self.name in PREDEFINED


def gateway_of(record: NetworkRecord) -> ipaddress.IPv4Interface:
    """The gateway with the subnet's prefix, e.g. 172.30.0.1/24."""
    return ipaddress.IPv4Interface(f"{record.gateway}/{record.subnet.split('/')[1]}")


def gateway6_of(record: NetworkRecord) -> ipaddress.IPv6Interface | None:
    if not record.subnet6:
        return None
    return ipaddress.IPv6Interface(f"{record.gateway6}/{record.subnet6.split('/')[1]}")


def flag(options: dict[str, str], key: str, default: bool) -> bool:
    """A boolean network option, parsed as Go's strconv.ParseBool (how dockerd reads them)."""
    text = options.get(key)
    if text is None or text == "":
        return default
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise errdefs.InvalidParameter(f"failed to parse {key} value {text!r}: invalid syntax")


def default_bridge_options(bridge: str, mtu: int, icc: bool = True) -> dict[str, str]:
    return {
        "com.docker.network.bridge.default_bridge": "true",
        ICC_OPTION: "true" if icc else "false",
        MASQUERADE_OPTION: "true",
        HOST_BINDING_OPTION: "0.0.0.0",
        BRIDGE_NAME_OPTION: bridge,
        MTU_OPTION: str(mtu),
    }


def to_api(record: NetworkRecord, containers: dict[str, EndpointResource]) -> Network:
    config = [IPAMConfig(subnet=record.subnet, gateway=record.gateway, ip_range=record.ip_range or None,
                         auxiliary_addresses=dict(record.aux_addresses) or None)] if record.subnet else []
    if record.subnet6:
        config.append(IPAMConfig(subnet=record.subnet6, gateway=record.gateway6))
    return Network(name=record.name, id=record.id, created=record.created, driver=record.driver,
                   ipam=IPAM(config=config), internal=record.internal, attachable=record.attachable,
                   enable_ipv6=bool(record.subnet6),
                   containers=containers, options=dict(record.options), labels=dict(record.labels))


FILTERS = ("name", "id", "driver", "type", "scope", "label", "dangling")


def check_filters(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in FILTERS:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        if key == "type":
            for value in values:
                if value not in ("custom", "builtin"):
                    raise errdefs.InvalidParameter(f"invalid filter: 'type'='{value}'")


def matches(record: NetworkRecord, filters: dict[str, list[str]], in_use: bool) -> bool:
    """Docker's semantics: name is a substring, id a prefix, label ``key`` or ``key=value``,
    dangling=true keeps user-defined networks without containers."""
    def any_of(key: str, test) -> bool:
        values = filters.get(key)
        return not values or any(test(v) for v in values)

    def label_ok(spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in record.labels and (not eq or record.labels[key] == value)

    def dangling_ok(value: str) -> bool:
        dangling = not record.builtin and not in_use
        return dangling == (value.lower() in ("true", "1"))

    return (any_of("name", lambda v: v in record.name)
            and any_of("id", lambda v: record.id.startswith(v))
            and any_of("driver", lambda v: v == record.driver)
            and any_of("type", lambda v: (v == "builtin") == record.builtin)
            and any_of("scope", lambda v: v == "local")
            and any_of("dangling", dangling_ok)
            and all(label_ok(spec) for spec in filters.get("label", [])))
