"""Connection hijack for attach/exec, and Docker's stdout/stderr stream framing.

The docker CLI asks ``Connection: Upgrade`` + ``Upgrade: tcp``; dockerd answers
``101 UPGRADED`` and from then on the socket carries raw bytes both ways. In
aiohttp a 101 response carries no chunking nor length (its body "must be
empty"), so ``resp.write`` puts bytes on the wire as they are. Reading needs
more: aiohttp closes the whole connection when the client half-closes (its
protocol's ``eof_received`` returns None), but ``docker run -i`` half-closes
after sending stdin and still reads the output. So ``take_over`` puts a small
protocol in front of aiohttp's on the transport: it keeps the connection open
on EOF, hands client bytes to a queue, and passes flow control and connection
loss through to aiohttp.
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp import web

from dockyard.api import versions

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def frame(stream: int, data: bytes) -> bytes:
    """stdcopy framing: [stream, 0, 0, 0, size uint32 big-endian] + payload."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def stream_content_type(request: web.Request, tty: bool) -> str:
    """Docker labels a non-TTY stream as multiplexed from API 1.42 on."""
    if not tty and versions.at_least(request.get("api_version", versions.MAX_VERSION), "1.42"):
        return MULTIPLEXED_STREAM
    return RAW_STREAM


def wants_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


class ClientInput:
    """What the client sends after the upgrade; ``read()`` gives b"" at EOF."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False
        self.lost = False  # the connection is gone, not just half-closed

    # the parser interface aiohttp's protocol feeds (``set_parser``)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data and not self._eof:
            self._queue.put_nowait(data)
        return False, b""

    def feed_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        if self._eof and self._queue.empty():
            return b""
        return await self._queue.get()


class _HijackedProtocol(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, client: ClientInput) -> None:
        self._inner = inner
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client.feed_data(data)

    def eof_received(self) -> bool:
        self._client.feed_eof()
        return True  # keep the write side open: the client still reads our output

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.lost = True
        self._client.feed_eof()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


async def upgrade(request: web.Request, content_type: str) -> tuple[web.StreamResponse, ClientInput]:
    """Answer ``101 UPGRADED`` (or 200 for a client that did not ask) and take the connection."""
    if wants_upgrade(request):
        resp = web.StreamResponse(status=101, reason="UPGRADED", headers={
            "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
    else:
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        resp.force_close()
    await resp.prepare(request)
    client = ClientInput()
    protocol = request.protocol
    transport = request.transport
    if transport is None:
        client.lost = True
        client.feed_eof()
        return resp, client
    protocol.keep_alive(False)
    if wants_upgrade(request):
        protocol.set_parser(client)  # type: ignore[arg-type]  # hands us bytes already buffered
        transport.set_protocol(_HijackedProtocol(protocol, client))
        transport.resume_reading()
    else:
        client.feed_eof()  # a plain request has no stdin channel
    return resp, client


def close(request: web.Request) -> None:
    """End the hijacked connection once everything written has been sent."""
    if request.transport is not None:
        request.transport.close()
