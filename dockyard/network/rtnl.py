"""The few rtnetlink requests a container start needs, encoded by hand.

pyroute2 costs ~0.5 ms of Python per request; a sandbox needs five or six, on the hot path of
every ``docker run``. These fixed-shape messages cost a few microseconds to build, and the
in-namespace ones go to the kernel in a single datagram. So do the few look-ups of an existing
bridge the daemon makes at every start (pyroute2 is ~8 MB resident once imported); everything
else (route dumps, bridge creation, IPv6 on bridges) stays with pyroute2 in ``netlink``. Layouts: linux/netlink.h, linux/rtnetlink.h,
linux/if_link.h, linux/veth.h.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = 16, 17, 18, 20, 22, 24
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 5, 10, 18, 28
IFLA_MACVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
LOOPBACK_INDEX = 1
FIRST_FREE_INDEX = 2  # a fresh namespace has only lo (1): the peer asks for ifindex 2

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ERR = struct.Struct("=i")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def _attrs(data: bytes) -> dict[int, bytes]:
    """A message's attributes by type (the first of each; nested ones stay packed)."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, data[offset + 4:offset + length])  # without NLA_F_NESTED/NET_BYTEORDER
        offset += (length + 3) & ~3
    return out


def _mac(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _default_route(index: int, via: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int, bytes]:
    family = socket.AF_INET if via.version == 4 else socket.AF_INET6
    route = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0) + \
        _attr(RTA_GATEWAY, via.packed) + _attr(RTA_OIF, struct.pack("=I", index))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route


class Socket:
    """An rtnetlink socket; it acts on the namespace of the thread that opened it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, *messages: tuple[int, int, bytes]) -> None:
        """Send (type, extra flags, body) messages in one datagram; raise on the first error."""
        out = []
        first = self._seq + 1
        for kind, flags, body in messages:
            self._seq += 1
            out.append(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self._seq, 0))
            out.append(body)
        self._sock.sendto(b"".join(out), (0, 0))  # pid 0: the kernel
        pending = set(range(first, self._seq + 1))
        while pending:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _flags, seq, _pid = _HDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR:
                    (code,) = _ERR.unpack_from(data, offset + _HDR.size)
                    pending.discard(seq)
                    if code:
                        # the rest of the batch was still processed by the kernel; the caller
                        # throws the namespace away on failure, so there is nothing to undo
                        raise OSError(-code, os.strerror(-code))
                offset += (length + 3) & ~3 or len(data)

    def _get(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """One get or dump request; its answers as (message type, payload)."""
        self._seq += 1
        seq = self._seq
        self._sock.sendto(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body, (0, 0))
        answers = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3 or len(data)
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    (code,) = _ERR.unpack_from(payload)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return answers
                if mtype == NLMSG_DONE:
                    return answers
                answers.append((mtype, payload))
                if not flags & NLM_F_DUMP:
                    return answers

    def link_index(self, name: str) -> int | None:
        try:
            (_, payload), = self._get(RTM_GETLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0"))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return _IFINFO.unpack_from(payload)[2]

    def link_info(self, index: int) -> tuple[int, str | None]:
        """(MTU, kind) of a link; kind as IFLA_INFO_KIND ("bridge", "veth"; None for hardware)."""
        (_, payload), = self._get(RTM_GETLINK, 0, _ifinfo(index))
        attrs = _attrs(payload[_IFINFO.size:])
        kind = _attrs(attrs.get(IFLA_LINKINFO, b"")).get(IFLA_INFO_KIND)
        return (struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 1500,
                kind.rstrip(b"\0").decode() if kind is not None else None)

    def ipv4_addresses(self, index: int) -> list[ipaddress.IPv4Interface]:
        found = []
        for _, payload in self._get(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
            family, prefixlen, _flags, _scope, owner = _IFADDR.unpack_from(payload)
            address = _attrs(payload[_IFADDR.size:]).get(IFA_ADDRESS)
            if family == socket.AF_INET and owner == index and address is not None:
                found.append(ipaddress.IPv4Interface((ipaddress.IPv4Address(address), prefixlen)))
        return found

    def add_bridge(self, name: str, mtu: int | None = None) -> int:
        """A new bridge (down, no address); its ifindex."""
        body = _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0") + \
            _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge\0"))
        if mtu is not None:
            body += _attr(IFLA_MTU, struct.pack("=I", mtu))
        self._request((RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body))
        index = self.link_index(name)
        assert index is not None
        return index

    def add_ipv4_address_up(self, index: int, iface: ipaddress.IPv4Interface | None) -> None:
        """Give a link an IPv4 address (with its broadcast address) if given, and bring it up."""
        messages = []
        if iface is not None:
            messages.append((RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                             _IFADDR.pack(socket.AF_INET, iface.network.prefixlen, 0, 0, index)
                             + _attr(IFA_LOCAL, iface.ip.packed) + _attr(IFA_ADDRESS, iface.ip.packed)
                             + _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)))
        messages.append((RTM_NEWLINK, 0, _ifinfo(index, up=True)))
        self._request(*messages)

    def add_veth_into(self, host_name: str, bridge_index: int, mtu: int, peer_name: str,
                      peer_netns_fd: int, peer_mac: str, peer_index: int = FIRST_FREE_INDEX) -> None:
        """A veth pair whose host end is on the bridge and up, and whose peer is created inside
        the namespace behind ``peer_netns_fd`` with its final name, MAC and ifindex ``peer_index``
        (0: the kernel's choice; down: the kernel refuses to open a veth end before its pair is
        complete, ENOTCONN)."""
        peer = (_ifinfo(peer_index)
                + _attr(IFLA_IFNAME, peer_name.encode() + b"\0")
                + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
                + _attr(IFLA_ADDRESS, _mac(peer_mac))
                + _attr(IFLA_MTU, struct.pack("=I", mtu)))
        linkinfo = (_attr(IFLA_INFO_KIND, b"veth\0")
                    + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer)))
        body = (_ifinfo(up=True)
                + _attr(IFLA_IFNAME, host_name.encode() + b"\0")
                + _attr(IFLA_MTU, struct.pack("=I", mtu))
                + _attr(IFLA_MASTER, struct.pack("=I", bridge_index))
                + _attr(IFLA_LINKINFO, linkinfo))
        self._request((RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body))

    def add_macvlan_into(self, parent_index: int, mode: str, mtu: int, name: str, netns_fd: int, mac: str,
                         index: int = FIRST_FREE_INDEX) -> None:
        """A macvlan link on the parent (a link of this socket's namespace) created straight
        inside the namespace behind ``netns_fd`` with its final name, MAC and ifindex (0: the
        kernel's choice)."""
        linkinfo = (_attr(IFLA_INFO_KIND, b"macvlan\0")
                    + _attr(IFLA_INFO_DATA, _attr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODES[mode]))))
        body = (_ifinfo(index)
                + _attr(IFLA_IFNAME, name.encode() + b"\0")
                + _attr(IFLA_LINK, struct.pack("=I", parent_index))
                + _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
                + _attr(IFLA_ADDRESS, _mac(mac))
                + _attr(IFLA_MTU, struct.pack("=I", mtu))
                + _attr(IFLA_LINKINFO, linkinfo))
        self._request((RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body))

    def link_kind_supported(self, kind: str) -> bool:
        """Whether the kernel knows a link type: ask it to make one with nothing else given;
        an unknown type is refused with EOPNOTSUPP before anything else is checked."""
        body = _ifinfo() + _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, kind.encode() + b"\0"))
        try:
            self._request((RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body))
        except OSError as e:
            return e.errno != errno.EOPNOTSUPP
        raise AssertionError(f"the kernel made a {kind} link from nothing")

    def delete_link(self, index: int) -> None:
        """Delete a link of this socket's namespace (a veth end takes its peer with it)."""
        self._request((RTM_DELLINK, 0, _ifinfo(index)))

    def loopback_up(self) -> None:
        self._request((RTM_NEWLINK, 0, _ifinfo(LOOPBACK_INDEX, up=True)))

    def configure_endpoint(self, index: int, iface: ipaddress.IPv4Interface,
                           gateway: ipaddress.IPv4Address | None,
                           iface6: ipaddress.IPv6Interface | None = None,
                           gateway6: ipaddress.IPv6Address | None = None) -> None:
        """In one datagram: lo up, ``index`` up with its address(es), the default route(s) via
        the gateway(s) (none when a gateway is None). IPv6 addresses skip duplicate address
        detection (as Docker's): they are ours and must work at once."""
        address = _IFADDR.pack(socket.AF_INET, iface.network.prefixlen, 0, 0, index) + \
            _attr(IFA_LOCAL, iface.ip.packed) + _attr(IFA_ADDRESS, iface.ip.packed) + \
            _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        messages = [(RTM_NEWLINK, 0, _ifinfo(LOOPBACK_INDEX, up=True)),
                    (RTM_NEWLINK, 0, _ifinfo(index, up=True)),
                    (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, address)]
        if iface6 is not None:
            address6 = _IFADDR.pack(socket.AF_INET6, iface6.network.prefixlen, IFA_F_NODAD, 0, index) + \
                _attr(IFA_ADDRESS, iface6.ip.packed)
            messages.append((RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, address6))
        for via in (gateway, gateway6 if iface6 else None):
            if via is not None:
                messages.append(_default_route(index, via))
        self._request(*messages)

    def default_routes(self, index: int, *gateways: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> None:
        """Default routes through ``index`` (for the interface that becomes the first one)."""
        messages = [_default_route(index, via) for via in gateways if via is not None]
        if messages:
            self._request(*messages)
