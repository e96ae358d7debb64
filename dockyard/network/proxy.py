"""The userland proxy: relays a published port's host socket to the container, on the daemon's loop.

It serves what the kernel DNAT path cannot: connections to 127.0.0.1 (the nat OUTPUT rule
skips loopback, as Docker's does), from containers on the same bridge, to IPv6 host addresses,
and everything when the daemon runs with ``--iptables=false``. Docker runs one docker-proxy
process per port; here each port is a listening socket served by the event loop, so a
published port costs no process and no thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket

log = logging.getLogger("dockyard.network.proxy")

UDP_IDLE_SECONDS = 90.0  # an idle UDP "connection" is forgotten after this, as docker-proxy's


class Proxy:
    """One published port: the reserved host socket and the container address it relays to."""

    def __init__(self, sock: socket.socket, proto: str, target: tuple[str, int], serve: bool = True) -> None:
        self._serve = serve  # False: the socket only holds the port (--userland-proxy=false)
        self._sock = sock
        self._proto = proto
        self._target = target
        self._server: asyncio.AbstractServer | None = None
        self._udp: _UdpFront | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if not self._serve:
            return
        if self._proto == "tcp":
            self._server = await asyncio.start_server(self._serve_tcp, sock=self._sock)
        else:
            loop = asyncio.get_running_loop()
            _, self._udp = await loop.create_datagram_endpoint(lambda: _UdpFront(self._target), sock=self._sock)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError as e:
                log.debug("proxy to %s:%d: %s", *self._target, e)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()
        self._sock.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close, so request/response protocols see the end
    except (ConnectionError, OSError):
        writer.close()


class _UdpFront(asyncio.DatagramProtocol):
    """Datagrams from clients to the container; one upstream socket per client address."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._transport: asyncio.DatagramTransport | None = None
        self._clients: dict[tuple, _UdpBack] = {}
        self._opening: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def connection_made(self, transport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        back = self._clients.get(addr)
        if back is not None and back.transport is not None:
            back.touch()
            back.transport.sendto(data)
            return
        if back is not None:  # its upstream socket is being opened
            back.pending.append(data)
            return
        back = self._clients[addr] = _UdpBack(self, addr)
        back.pending.append(data)
        task = asyncio.get_running_loop().create_task(self._open(back))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, back: _UdpBack) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: back, remote_addr=self._target)
        except OSError:
            self._clients.pop(back.addr, None)
            return
        for data in back.pending:
            back.transport.sendto(data)
        back.pending.clear()

    def reply(self, addr, data: bytes) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def forget(self, addr) -> None:
        self._clients.pop(addr, None)

    def close(self) -> None:
        for back in list(self._clients.values()):
            back.close()
        if self._transport is not None:
            self._transport.close()


class _UdpBack(asyncio.DatagramProtocol):
    def __init__(self, front: _UdpFront, addr) -> None:
        self._front = front
        self.addr = addr
        self.pending: list[bytes] = []  # datagrams that came while the upstream socket opened
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.touch()

    def touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.close)

    def datagram_received(self, data: bytes, addr) -> None:
        self.touch()
        self._front.reply(self.addr, data)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable while the container's server is not up yet

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        self._front.forget(self.addr)
