"""The API's fast path: plain GETs answered from a connection's bytes, before aiohttp.

Every docker command opens a connection and begins with ``HEAD /_ping``; ``docker ps``
then asks ``GET /containers/json`` on it. Served by aiohttp, a new connection's first
answer waited for four turns of the event loop (the accept, a task making the transport,
its ``connection_made``, its first read), and each request cost ~100 us of aiohttp's
machinery (its parser, Request, middleware, response writer) more than the work behind
it: ``docker ps`` was slower than dockerd's.

So the listeners (``Listeners``) are ours. A connection is read as soon as it is
accepted, and a request the fast path can answer alone is answered at once, with a
plain ``send``: GET or HEAD, no body, no upgrade, a *plain route*'s path (its answer a
function of the query and the API version, ``Plain``). At its first request that is
anything else, or that fails, or whose answer does not fit in the socket's buffer, the
connection is handed to aiohttp with what was read and not answered (and what was not
sent), and aiohttp serves it from then on as it serves any other; a failing plain route
is run again there, which answers with its error. TLS connections go to aiohttp at once.

Both ways answer alike: a plain route's handler is its aiohttp route's too
(``app.add_plain_route``), with the same headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web
from yarl import URL

from dockyard.api import versions

log = logging.getLogger("dockyard.api")

_VERSIONED = re.compile(versions.VERSIONED_PATH.encode())  # the request's bytes
_HAND_OFF_HEADERS = (b"\r\ncontent-length:", b"\r\ntransfer-encoding:", b"\r\nupgrade:", b"\r\nexpect:")
MAX_HEAD = 8190  # aiohttp's default limit on the request line and on each header line
KEEPALIVE_TIMEOUT = 75.0  # aiohttp's default: an idle connection is closed after it
IDLE_SWEEP = 15.0  # how often connections are checked for that
BACKLOG = 128  # aiohttp's sites' default
ACCEPT_PAUSE = 1.0  # out of fds (EMFILE): accepting waits this long, as asyncio's servers do


@dataclass
class Plain:
    """A plain route's answer."""
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


# (query, API version, method) -> answer; raises (a DockyardError) for an error answer
PlainHandler = Callable[[Mapping[str, str], str, str], Plain]
PlainRoutes = dict[tuple[bytes, bytes], PlainHandler]  # (method, path without the version)


class _DateHeader:
    """The Date header, formatted once a second (as aiohttp does)."""
    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = email.utils.formatdate(now, usegmt=True)
        return self.value


_date = _DateHeader()


class Listeners:
    """The API's listening sockets. Each connection begins on the fast path (``_Connection``);
    aiohttp's ``runner`` serves what the fast path hands it."""

    def __init__(self, runner: web.AppRunner, routes: PlainRoutes, common_headers: Mapping[str, str]) -> None:
        assert runner.server is not None, "runner.setup() first"
        self.loop = asyncio.get_running_loop()
        self.runner = runner
        self.server = runner.server
        self.routes = routes
        self.common_headers = common_headers
        self.connections: set[_Connection] = set()
        self.hand_offs: set[asyncio.Task] = set()
        self._listening: list[socket.socket] = []
        self._servers: list[asyncio.AbstractServer] = []  # TLS: aiohttp's alone
        self._sweep: asyncio.TimerHandle | None = None  # while there are connections

    async def unix(self, sock: socket.socket) -> None:
        sock.listen(BACKLOG)
        self._listen(sock)

    async def tcp(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        if ssl_context is not None:
            self._servers.append(await self.loop.create_server(self.server, host, port, ssl=ssl_context,
                                                          backlog=BACKLOG, reuse_address=True))
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listen(socket.create_server((host, port), family=family, backlog=BACKLOG))

    async def close(self) -> None:
        """Stop listening, close the connections still on the fast path, then let aiohttp end
        the ones it serves (``runner.cleanup``)."""
        if self._sweep is not None:
            self._sweep.cancel()
        for sock in self._listening:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close()
        for task in list(self.hand_offs):
            task.cancel()
        await self.runner.cleanup()
        for server in self._servers:
            await server.wait_closed()

    def _listen(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept, sock)
        self._listening.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(BACKLOG):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: wait, as asyncio's servers do
                log.warning("API: accepting a connection: %s; pausing for %.0f s", err, ACCEPT_PAUSE)
                self.loop.remove_reader(listener.fileno())
                self.loop.call_later(ACCEPT_PAUSE, self._resume, listener)
                return
            _Connection(sock, self).readable()  # its request is usually there already

    def _resume(self, listener: socket.socket) -> None:
        if listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    def track(self, connection: _Connection) -> None:
        self.connections.add(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_later(IDLE_SWEEP, self._close_idle)

    def _close_idle(self) -> None:
        deadline = time.monotonic() - KEEPALIVE_TIMEOUT
        for connection in [c for c in self.connections if c.active < deadline]:
            connection.close()
        self._sweep = self.loop.call_later(IDLE_SWEEP, self._close_idle) if self.connections else None


class _Connection:
    """A connection on the fast path: until its first request that only aiohttp can serve."""

    __slots__ = ("sock", "listeners", "buffer", "active")

    def __init__(self, sock: socket.socket, listeners: Listeners) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.listeners = listeners
        self.buffer = b""
        self.active = time.monotonic()  # when it last had a request (``Listeners._close_idle``)
        listeners.loop.add_reader(sock.fileno(), self.readable)
        listeners.track(self)

    def readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    break  # aiohttp says what is wrong with it
                self.buffer = buffer
                self.active = time.monotonic()
                return
            answer = self._answer(buffer[:end])
            if answer is None:
                break
            response, close = answer
            buffer = buffer[end + 4:]
            try:
                sent = self.sock.send(response)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent < len(response):  # the rest waits for the socket: aiohttp's transport sends it
                self._hand_off(buffer, response[sent:], close)
                return
            if close:
                self.close()
                return
        self._hand_off(buffer)

    def close(self) -> None:
        self._detach()
        self.sock.close()

    def _answer(self, head: bytes) -> tuple[bytes, bool] | None:
        """The response to a request whose head (request line and headers) is ``head``, and
        whether to close after it; None if aiohttp is to serve it."""
        line, _, _ = head.partition(b"\r\n")
        try:
            method, target, protocol = line.split(b" ")
        except ValueError:
            return None
        if protocol != b"HTTP/1.1" or method not in (b"GET", b"HEAD"):
            return None
        lowered = head.lower()
        if any(h in lowered for h in _HAND_OFF_HEADERS):
            return None
        path, _, query = target.partition(b"?")
        version = versions.MAX_VERSION
        versioned = _VERSIONED.match(path)
        if versioned:
            version, path = versioned.group(1).decode(), versioned.group(2)
        handler = self.listeners.routes.get((method, path))
        if handler is None:
            return None
        try:
            if versioned:
                versions.check(version)
            params = URL.build(query_string=query.decode("ascii"), encoded=True).query
            plain = handler(params, version, method.decode())
        except Exception:
            return None
        close = b"\r\nconnection: close" in lowered
        return self._serialize(plain, method == b"HEAD", close), close

    def _serialize(self, plain: Plain, head_only: bool, close: bool) -> bytes:
        status = HTTPStatus(plain.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
        lines += [f"{k}: {v}" for k, v in plain.headers.items()]
        if "Content-Type" not in plain.headers:
            lines.append(f"Content-Type: {plain.content_type}")
        if "Content-Length" not in plain.headers:
            lines.append(f"Content-Length: {len(plain.body)}")
        lines.append(f"Date: {_date()}")
        lines += [f"{k}: {v}" for k, v in self.listeners.common_headers.items() if k not in plain.headers]
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return head if head_only else head + plain.body

    def _detach(self) -> None:
        self.listeners.connections.discard(self)
        if self.sock.fileno() >= 0:
            self.listeners.loop.remove_reader(self.sock.fileno())

    def _hand_off(self, unanswered: bytes, unsent: bytes = b"", close: bool = False) -> None:
        """From here on aiohttp serves the connection: first ``unsent`` goes out, then it reads
        ``unanswered`` and what follows (or it closes, with ``close``)."""
        self._detach()
        listeners = self.listeners
        handler = listeners.server()
        loop = listeners.loop
        task = loop.create_task(loop.connect_accepted_socket(
            lambda: _HandOff(handler, unanswered, unsent, close), self.sock))
        listeners.hand_offs.add(task)
        task.add_done_callback(_handed_off(listeners.hand_offs))


def _handed_off(tasks: set[asyncio.Task]) -> Callable[[asyncio.Task], None]:
    def done(task: asyncio.Task) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("API: handing a connection to aiohttp: %s", task.exception())
    return done


class _HandOff(asyncio.Protocol):
    """Gives the new transport to aiohttp's ``handler`` before any read reaches it, so that
    ``unanswered`` comes first."""

    def __init__(self, handler: asyncio.Protocol, unanswered: bytes, unsent: bytes, close_after: bool) -> None:
        self.handler = handler
        self.unanswered = unanswered
        self.unsent = unsent
        self.close_after = close_after

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.unsent:
            transport.write(self.unsent)
        if self.close_after:
            transport.close()  # once the rest is out
            return
        transport.set_protocol(self.handler)
        self.handler.connection_made(transport)
        if self.unanswered:
            self.handler.data_received(self.unanswered)
