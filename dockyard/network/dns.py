"""The embedded DNS resolver of user-defined networks (Docker's 127.0.0.11).

One ``DnsServer`` per container sandbox: a UDP and a TCP socket bound to 127.0.0.11:53
*inside* the container's network namespace (made by the netns worker thread while it stands in
that namespace: a socket stays in the namespace it was created in), served by the daemon's
event loop. A-queries for names the daemon knows (container names, aliases, short IDs on a
network the asking container shares) are answered from the daemon's endpoint table, all
addresses of a name in rotating order (round-robin); reverse (PTR) queries for those addresses
answer ``<name>.<network>``; AAAA records come from --ipv6 networks' addresses; every
other query is relayed from the host's namespace to the container's external resolvers (its
--dns servers, else the host's). Messages follow RFC 1035; only what a stub resolver sends is
parsed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from typing import Callable

log = logging.getLogger("dockyard.network.dns")

ADDRESS = "127.0.0.11"
PORT = 53
TTL = 600  # Docker's answer TTL
TYPE_A, TYPE_PTR, TYPE_AAAA, CLASS_IN = 1, 12, 28, 1
REVERSE_SUFFIX = ".in-addr.arpa"
RCODE_FORMERR, RCODE_SERVFAIL = 1, 2
FORWARD_TIMEOUT = 4.0

_HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount

# name (lower case, no trailing dot) -> addresses (both families), or None when the name is not ours
Lookup = Callable[[str], "list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None"]
# address -> the name a PTR query answers, or None when the address is not ours
ReverseLookup = Callable[[ipaddress.IPv4Address], "str | None"]


class Question:
    def __init__(self, name: str, qtype: int, qclass: int, end: int) -> None:
        self.name, self.qtype, self.qclass, self.end = name, qtype, qclass, end


def parse_question(message: bytes) -> Question | None:
    """The first question of a query, or None when the message is not one we can read."""
    if len(message) < _HEADER.size:
        return None
    _id, flags, qdcount, *_ = _HEADER.unpack_from(message)
    if flags & 0x8000 or qdcount < 1:  # a response, or no question
        return None
    labels, offset = [], _HEADER.size
    while True:
        if offset >= len(message):
            return None
        length = message[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(message):  # no compression in a question
            return None
        labels.append(message[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(message):
        return None
    qtype, qclass = struct.unpack_from("!HH", message, offset)
    return Question(".".join(labels).lower(), qtype, qclass, offset + 4)


def answer(query: bytes, question: Question, addresses: list) -> bytes:
    """A response to query with the A (or AAAA) records among addresses; none for other types."""
    query_id, flags = struct.unpack_from("!HH", query)
    version = {TYPE_A: 4, TYPE_AAAA: 6}.get(question.qtype) if question.qclass == CLASS_IN else None
    records = [a for a in addresses if a.version == version]
    # QR, AA, RD copied from the query, RA
    header = _HEADER.pack(query_id, 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080, 1, len(records), 0, 0)
    body = [header, query[_HEADER.size:question.end]]
    for address in records:
        # a pointer to the question's name (offset 12), the type, class IN, TTL, the address
        body.append(struct.pack("!HHHIH", 0xC00C, question.qtype, CLASS_IN, TTL, len(address.packed))
                    + address.packed)
    return b"".join(body)


def answer_ptr(query: bytes, question: Question, name: str) -> bytes:
    query_id, flags = struct.unpack_from("!HH", query)
    header = _HEADER.pack(query_id, 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080, 1, 1, 0, 0)
    rdata = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"
    record = struct.pack("!HHHIH", 0xC00C, TYPE_PTR, CLASS_IN, TTL, len(rdata)) + rdata
    return header + query[_HEADER.size:question.end] + record


def reverse_address(name: str) -> ipaddress.IPv4Address | None:
    """"4.3.2.1.in-addr.arpa" -> 1.2.3.4 (None for anything else)."""
    if not name.endswith(REVERSE_SUFFIX):
        return None
    parts = name[:-len(REVERSE_SUFFIX)].split(".")
    try:
        return ipaddress.IPv4Address(".".join(reversed(parts))) if len(parts) == 4 else None
    except ValueError:
        return None


def error(query: bytes, rcode: int) -> bytes:
    query_id, flags = struct.unpack_from("!HH", query) if len(query) >= 4 else (0, 0)
    return _HEADER.pack(query_id, 0x8000 | (flags & 0x0100) | 0x0080 | rcode, 0, 0, 0, 0)


class DnsServer:
    """The resolver of one sandbox. ``lookup`` answers names; ``upstreams`` are (ip, port)."""

    def __init__(self, udp: socket.socket, tcp: socket.socket, lookup: Lookup,
                 upstreams: list[tuple[str, int]], reverse: ReverseLookup | None = None) -> None:
        self._udp_sock, self._tcp_sock = udp, tcp
        self._lookup = lookup
        self._reverse = reverse
        self.upstreams = upstreams
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._rotation = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=self._udp_sock)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=self._tcp_sock)

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        else:
            self._udp_sock.close()
        if self._tcp is not None:
            self._tcp.close()
        else:
            self._tcp_sock.close()

    async def resolve(self, query: bytes, tcp: bool = False) -> bytes | None:
        question = parse_question(query)
        if question is None:
            return error(query, RCODE_FORMERR) if len(query) >= 4 else None
        if question.qtype == TYPE_PTR and self._reverse is not None:
            address = reverse_address(question.name)
            target = self._reverse(address) if address is not None else None
            if target is not None:
                return answer_ptr(query, question, target)
        addresses = self._lookup(question.name)
        if addresses is not None:
            if len(addresses) > 1:  # round-robin: each answer starts one further
                self._rotation += 1
                shift = self._rotation % len(addresses)
                addresses = addresses[shift:] + addresses[:shift]
            return answer(query, question, addresses)
        for upstream in self.upstreams:
            try:
                return await asyncio.wait_for(_forward(query, upstream, tcp), FORWARD_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                log.debug("dns forward of %s to %s: %r", question.name, upstream, e)
        return error(query, RCODE_SERVFAIL)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                response = await self.resolve(await reader.readexactly(length), tcp=True)
                if response is None:
                    break
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def connection_made(self, transport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr) -> None:
        response = await self._server.resolve(data)
        if response is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(response, addr)


async def _forward(query: bytes, upstream: tuple[str, int], tcp: bool) -> bytes:
    if tcp:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        await loop.sock_connect(sock, upstream)
        await loop.sock_sendall(sock, query)
        while True:
            response = await loop.sock_recv(sock, 65535)
            if response[:2] == query[:2]:  # the answer to our query, not a stray datagram
                return response
    finally:
        sock.close()


def bind_sockets() -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11:53 in the calling thread's network namespace."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        udp.bind((ADDRESS, PORT))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((ADDRESS, PORT))
        tcp.listen(64)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp
