"""Published ports: what ``-p``/``-P`` ask for, and host ports reserved by binding them.

``requested`` turns Docker's PortBindings / ExposedPorts / PublishAllPorts into a list of
``PortRequest``; ``reserve`` binds a socket for each (the port is then ours: a second container
asking for it fails with Docker's "port is already allocated", and the socket is what the
userland proxy serves). Random ports (HostPort "" or "0") are chosen by the kernel from its
ephemeral range, as the ``ip_local_port_range`` Docker also reads.

As Docker 28: a binding without an address (and the default address 0.0.0.0) is published on
0.0.0.0 and [::] with the same port, when the host can listen on IPv6 and the container can be
reached over it (an IPv6 address, or the userland proxy relaying to its IPv4 address).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

import msgspec

from dockyard import errdefs

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str  # "0.0.0.0" when none was given
    host_ports: tuple[int, int]  # inclusive range; (0, 0): any
    also_ipv6: bool = False  # no address given: [::] too, with the same port


class PortMapping(msgspec.Struct, frozen=True):
    """A reserved binding (persisted in the sandbox state for a daemon restart)."""
    proto: str
    container_port: int
    host_ip: str
    host_port: int


def parse_port_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); the protocol defaults to tcp."""
    number, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    try:
        port = int(number)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid port specification: \"{key}\"") from None
    if not 0 < port < 65536:
        raise errdefs.InvalidParameter(f"invalid port specification: \"{key}\"")
    if proto not in PROTOCOLS:
        raise errdefs.InvalidParameter(f"port {key}: protocol {proto} is not supported by this daemon "
                                       f"(tcp and udp are)")
    return port, proto


def _host_range(text: str, key: str) -> tuple[int, int]:
    if text in ("", "0"):
        return 0, 0
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid host port \"{text}\" for {key}") from None
    if not (0 < low <= high < 65536):
        raise errdefs.InvalidParameter(f"invalid host port \"{text}\" for {key}")
    return low, high


_v6_listenable: bool | None = None


def ipv6_listenable() -> bool:
    """Whether this host can listen on IPv6 (as moby's netutils.IsV6Listenable)."""
    global _v6_listenable
    if _v6_listenable is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
            _v6_listenable = True
        except OSError:
            _v6_listenable = False
    return _v6_listenable


def requested(port_bindings: dict | None, exposed_ports, publish_all: bool,
              default_host_ip: str = "0.0.0.0", ipv6: bool = True) -> list[PortRequest]:
    """PortBindings ({"80/tcp": [PortBinding...]}) plus, with -P, every exposed port not bound.
    default_host_ip: where a binding without an address goes (the network's
    com.docker.network.bridge.host_binding_ipv4). ipv6: whether the container can be reached
    from an IPv6 host address at all (else IPv6 bindings are left out, as moby does)."""
    out: list[PortRequest] = []
    bound: set[tuple[int, str]] = set()
    implicit6 = ipv6 and default_host_ip == "0.0.0.0" and ipv6_listenable()
    for key, bindings in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        bound.add((port, proto))
        for binding in bindings or []:
            host_ip = binding.host_ip or default_host_ip
            try:
                version = ipaddress.ip_address(host_ip).version
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid host IP address {host_ip!r} for {key}") from None
            if version == 6 and not ipv6:
                continue
            out.append(PortRequest(proto, port, host_ip, _host_range(binding.host_port, key),
                                   also_ipv6=implicit6 and not binding.host_ip))
    if publish_all:
        for key in sorted(exposed_ports or ()):
            port, proto = parse_port_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, default_host_ip, (0, 0), also_ipv6=implicit6))
    return out


def _bind(proto: str, host_ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host_ip).version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a past container
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
        return sock
    except BaseException:
        sock.close()
        raise


def _display(host_ip: str, port: int | str) -> str:
    return f"[{host_ip}]:{port}" if ":" in host_ip else f"{host_ip}:{port}"


def _bind_checked(request: PortRequest, host_ip: str, port: int) -> socket.socket | None:
    """A bound socket, or None when the port is taken; Docker's errors otherwise."""
    try:
        return _bind(request.proto, host_ip, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return None
        if e.errno == errno.EADDRNOTAVAIL:
            raise errdefs.InvalidParameter(
                f"cannot publish port {request.container_port}/{request.proto} on "
                f"{host_ip}: the host has no such address") from None
        raise errdefs.System(f"Bind for {_display(host_ip, port)} failed: {e.strerror}") from None


RANDOM_ATTEMPTS = 20  # a random port free on 0.0.0.0 but taken on [::]: another one


def reserve(request: PortRequest) -> list[tuple[PortMapping, socket.socket]]:
    """Bind the host side of one request (0.0.0.0 and [::] with one port for ``also_ipv6``);
    Docker's error when the port is taken. The sockets are bound, not listening: the port is
    held, and the userland proxy listens on those it serves."""
    low, high = request.host_ports
    candidates = [0] * RANDOM_ATTEMPTS if low == 0 else range(low, high + 1)
    taken_on = request.host_ip  # for the error: where the last port was taken
    for port in candidates:
        taken_on = request.host_ip
        sock = _bind_checked(request, request.host_ip, port)
        if sock is None:
            continue
        bound = sock.getsockname()[1]
        out = [(PortMapping(request.proto, request.container_port, request.host_ip, bound), sock)]
        if request.also_ipv6:
            try:
                sock6 = _bind_checked(request, "::", bound)
            except BaseException:
                sock.close()
                raise
            if sock6 is None:
                sock.close()
                taken_on = "::"
                continue
            out.append((PortMapping(request.proto, request.container_port, "::", bound), sock6))
        return out
    shown = f"{low}-{high}" if high != low else str(low)
    if low != high:
        raise errdefs.System(f"Bind for {_display(request.host_ip, shown)} failed: "
                             f"all ports in the range are already allocated")
    raise errdefs.System(f"Bind for {_display(taken_on, shown)} failed: port is already allocated")


def rebind(mapping: PortMapping) -> socket.socket:
    """The socket of a mapping restored after a daemon restart (the same port again), bound."""
    return _bind(mapping.proto, mapping.host_ip, mapping.host_port)


def settings(mappings: list[PortMapping], exposed_ports) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: every exposed or published port; null when not published."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed_ports or ():
        port, proto = parse_port_key(key)
        out[f"{port}/{proto}"] = None
    for m in mappings:
        entry = out.get(f"{m.container_port}/{m.proto}") or []
        entry.append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
        out[f"{m.container_port}/{m.proto}"] = entry
    return out
