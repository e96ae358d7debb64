"""Links, addresses and routes through netlink (pyroute2), nothing else.

Each function takes an open ``IPRoute`` socket; the socket's namespace (the one its creator
thread was in) decides which namespace the call changes.
"""

from __future__ import annotations

import errno
import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["IPRoute", "NetlinkError"]

IFA_F_NODAD = 0x02


def open_socket() -> IPRoute:
    return IPRoute()


def link_index(ipr: IPRoute, name: str) -> int | None:
    try:
        found = ipr.link("get", ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    return found[0]["index"] if found else None


def link_kind(ipr: IPRoute, index: int) -> str | None:
    link = ipr.link("get", index=index)[0]
    return link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))


def ipv4_addresses(ipr: IPRoute, index: int | None = None) -> list[ipaddress.IPv4Interface]:
    kwargs = {"index": index} if index is not None else {}
    return [ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(family=2, **kwargs)]


def networks_in_use(ipr: IPRoute) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes or has an address on (default routes excluded)."""
    used = [iface.network for iface in ipv4_addresses(ipr)]
    for route in ipr.get_routes(family=2):
        dst = route.get("RTA_DST")
        if dst and route["dst_len"] > 0:
            used.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return used


def create_bridge(ipr: IPRoute, name: str, gateway: ipaddress.IPv4Interface,
                  gateway6: ipaddress.IPv6Interface | None = None, mtu: int | None = None) -> int:
    ipr.link("add", ifname=name, kind="bridge")
    index = link_index(ipr, name)
    assert index is not None
    if mtu is not None:
        ipr.link("set", index=index, mtu=mtu)
    ensure_address(ipr, index, gateway)
    if gateway6 is not None:
        ensure_address6(ipr, index, gateway6)
    ipr.link("set", index=index, state="up")
    return index


def ensure_address(ipr: IPRoute, index: int, iface: ipaddress.IPv4Interface) -> None:
    if iface in ipv4_addresses(ipr, index):
        return
    ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
             broadcast=str(iface.network.broadcast_address))


def ensure_address6(ipr: IPRoute, index: int, iface: ipaddress.IPv6Interface) -> None:
    present = [ipaddress.IPv6Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
               for a in ipr.get_addr(family=10, index=index)]
    if iface not in present:
        # no duplicate address detection: the gateway is ours and must work at once
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, family=10,
                 flags=IFA_F_NODAD)


def set_up(ipr: IPRoute, index: int) -> None:
    ipr.link("set", index=index, state="up")


def delete_link(ipr: IPRoute, name: str) -> None:
    index = link_index(ipr, name)
    if index is not None:
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise


def link_mtu(ipr: IPRoute, index: int) -> int:
    return ipr.link("get", index=index)[0].get("IFLA_MTU", 1500)
