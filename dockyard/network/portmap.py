"""Published ports: what ``-p``/``-P`` ask for, and host ports reserved by binding them.

``requested`` turns Docker's PortBindings / ExposedPorts / PublishAllPorts into a list of
``PortRequest``; ``reserve`` binds a socket for each (the port is then ours: a second container
asking for it fails with Docker's "port is already allocated", and the socket is what the
userland proxy serves). Random ports (HostPort "" or "0") are chosen by the kernel from its
ephemeral range, as the ``ip_local_port_range`` Docker also reads.
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


def requested(port_bindings: dict | None, exposed_ports, publish_all: bool,
              default_host_ip: str = "0.0.0.0") -> list[PortRequest]:
    """PortBindings ({"80/tcp": [PortBinding...]}) plus, with -P, every exposed port not bound.
    default_host_ip: where a binding without an address goes (the network's
    com.docker.network.bridge.host_binding_ipv4)."""
    out: list[PortRequest] = []
    bound: set[tuple[int, str]] = set()
    for key, bindings in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        bound.add((port, proto))
        for binding in bindings or []:
            host_ip = binding.host_ip or default_host_ip
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid host IP address {host_ip!r} for {key}") from None
            out.append(PortRequest(proto, port, host_ip, _host_range(binding.host_port, key)))
    if publish_all:
        for key in sorted(exposed_ports or ()):
            port, proto = parse_port_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, default_host_ip, (0, 0)))
    return out


def _bind(proto: str, host_ip: str, port: int, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host_ip).version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a past container
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
        if kind == socket.SOCK_STREAM and listen:
            sock.listen(128)
        return sock
    except BaseException:
        sock.close()
        raise


def _display(host_ip: str, port: int | str) -> str:
    return f"[{host_ip}]:{port}" if ":" in host_ip else f"{host_ip}:{port}"


def reserve(request: PortRequest, listen: bool = True) -> tuple[PortMapping, socket.socket]:
    """Bind the host side of one request; Docker's error when the port is taken. Without
    ``listen`` (no userland proxy) a TCP port is only held, so nobody else can take it."""
    low, high = request.host_ports
    candidates = [0] if low == 0 else range(low, high + 1)
    for port in candidates:
        try:
            sock = _bind(request.proto, request.host_ip, port, listen)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                continue
            if e.errno == errno.EADDRNOTAVAIL:
                raise errdefs.InvalidParameter(
                    f"cannot publish port {request.container_port}/{request.proto} on "
                    f"{request.host_ip}: the host has no such address") from None
            raise errdefs.System(f"Bind for {_display(request.host_ip, port)} failed: {e.strerror}") from None
        return PortMapping(request.proto, request.container_port, request.host_ip,
                           sock.getsockname()[1]), sock
    shown = f"{low}-{high}" if high != low else str(low)
    if low != high:
        raise errdefs.System(f"Bind for {_display(request.host_ip, shown)} failed: "
                             f"all ports in the range are already allocated")
    raise errdefs.System(f"Bind for {_display(request.host_ip, shown)} failed: port is already allocated")


def rebind(mapping: PortMapping, listen: bool = True) -> socket.socket:
    """The socket of a mapping restored after a daemon restart (the same port again)."""
    return _bind(mapping.proto, mapping.host_ip, mapping.host_port, listen)


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
