"""Address management: choosing a subnet for a network and addresses inside it (IPv4, and
IPv6 for --ipv6 networks: ``Pool`` works on either family).

Pure logic (no kernel, no storage): the caller passes what is in use and records the result.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from dockyard import errdefs


def pick_subnet(pools: list[dict], in_use: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first ``size``-prefix subnet of the pools (daemon.json's default-address-pools:
    ``[{"base": "172.30.0.0/16", "size": 24}]``) overlapping nothing in ``in_use``."""
    taken = list(in_use)
    for pool in pools:
        base = ipaddress.IPv4Network(pool["base"], strict=False)
        size = int(pool.get("size", base.prefixlen))
        if size < base.prefixlen:
            raise errdefs.InvalidParameter(f"invalid pool {pool}: size {size} is larger than its base")
        for candidate in base.subnets(new_prefix=size):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    raise errdefs.Unavailable(
        "could not find an available, non-overlapping IPv4 address pool among the defaults "
        "to assign to the network")


def mac_for(address: ipaddress.IPv4Address) -> str:
    """Docker's MAC for an IPv4 endpoint: 02:42 followed by the four address bytes."""
    return ":".join(f"{b:02x}" for b in (0x02, 0x42, *address.packed))


@dataclass
class Pool:
    """Addresses of one subnet; hands them out round-robin (as libnetwork's bitmap does), so a
    freed address is not reused at once while its old veth may still be dying in the kernel."""

    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    ip_range: ipaddress.IPv4Network | None = None  # --ip-range: where addresses are chosen from
    reserved: frozenset[ipaddress.IPv4Address] = frozenset()  # --aux-address: never handed out

    def __post_init__(self) -> None:
        self._used: set[ipaddress.IPv4Address] = set()
        self._last = int(self.gateway)

    def mark_used(self, address: ipaddress.IPv4Address) -> None:
        self._used.add(address)
        self._last = max(self._last, int(address))

    def release(self, address: ipaddress.IPv4Address) -> None:
        self._used.discard(address)

    def is_used(self, address: ipaddress.IPv4Address) -> bool:
        return address in self._used

    def _address(self, value: int):
        return type(self.subnet.network_address)(value)

    def claim(self, address: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        """A chosen address (--ip): Docker's errors when it is out of range or taken."""
        if address not in self.subnet or address in (self.subnet.network_address, self.subnet.broadcast_address):
            raise errdefs.InvalidParameter(f"no configured subnet or ip-range contain the IP address {address}")
        if address == self.gateway or address in self._used or address in self.reserved:
            raise errdefs.Forbidden("Address already in use")
        self._used.add(address)
        return address

    def allocate(self) -> ipaddress.IPv4Address:
        first = int(self.subnet.network_address) + 1
        last = int(self.subnet.broadcast_address) - 1
        if self.ip_range is not None:
            first = max(first, int(self.ip_range.network_address))
            last = min(last, int(self.ip_range.broadcast_address))
        span = last - first + 1
        if span <= 0:
            raise errdefs.Unavailable(f"no available IPv{self.subnet.version} addresses on network with subnet {self.subnet}")
        start = self._last + 1
        for step in range(span):
            value = first + (start - first + step) % span
            address = self._address(value)
            if address != self.gateway and address not in self._used and address not in self.reserved:
                self._used.add(address)
                self._last = value
                return address
        raise errdefs.Unavailable(f"no available IPv{self.subnet.version} addresses on network with subnet {self.subnet}")
