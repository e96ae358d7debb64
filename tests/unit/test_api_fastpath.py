"""The API's fast path (``dockyard.api.fastpath``) over a real unix socket: plain routes are
answered before aiohttp, byte for byte as aiohttp answers them; everything else (errors,
bodies, pipelined requests behind them, answers too big for the socket) is handed to aiohttp
in order and intact."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiohttp import web

from dockyard import errdefs
from dockyard.api import fastpath
from dockyard.api.app import COMMON_HEADERS, PLAIN_ROUTES, add_plain_route, make_app
from dockyard.api.fastpath import Listeners, Plain
from dockyard.api.routers import system

BIG = 4 << 20  # more than a unix socket's buffer takes at once


class FakeSystem:
    def version(self) -> dict:
        return {"Version": "0.1.0", "ApiVersion": "1.50"}

    def info(self) -> dict:
        return {"Containers": 0, "Name": "fast"}

    def disk_usage(self) -> dict:
        return {}


def _routes(app: web.Application) -> None:
    system.setup(app, FakeSystem(), None, None)

    def items(query: Mapping[str, str], version: str, method: str) -> Plain:
        if "bad" in query:
            raise errdefs.InvalidParameter(f"bad query: {query['bad']}")
        return Plain(json.dumps({"version": version, "query": sorted(query.items())}).encode())

    def big(query: Mapping[str, str], version: str, method: str) -> Plain:
        return Plain(bytes(range(256)) * (BIG // 256), content_type="application/octet-stream")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    add_plain_route(app, ("GET",), "/items", items)
    add_plain_route(app, ("GET",), "/big", big)
    app.router.add_post("/echo", echo)


class Served:
    """The app behind fast-path listeners on a unix socket, counting aiohttp's connections."""

    def __init__(self, root: Path) -> None:
        self.sock = str(root / "api.sock")
        self.aiohttp_connections = 0

    async def __aenter__(self) -> Served:
        app = make_app(_routes)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.listeners = Listeners(self.runner, app[PLAIN_ROUTES], COMMON_HEADERS)
        make_handler = self.listeners.server

        def counting():
            self.aiohttp_connections += 1
            return make_handler()
        self.listeners.server = counting
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.sock)
        await self.listeners.unix(listener)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.listeners.close()


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> tuple[str, dict, bytes]:
    """(status line, headers without Date, body) of one response."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status, *lines = head.rstrip("\r\n").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers.pop("Date")
    body = b"" if head_only else await reader.readexactly(int(headers["Content-Length"]))
    return status, headers, body


def request(method: str, path: str, extra: str = "", body: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: docker\r\n{extra}\r\n".encode() + body


REQUESTS = [("HEAD", "/_ping"), ("GET", "/_ping"), ("GET", "/v1.41/version"), ("GET", "/info"),
            ("GET", "/v1.50/items?all=1&filters=%7B%22a%22%3A%5B%22b%22%5D%7D&x=a+b")]


@pytest.mark.parametrize("method,path", REQUESTS)
def test_fast_path_answers_as_aiohttp_does(tmp_path, method, path):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            writer.write(request(method, path))
            fast = await read_response(reader, method == "HEAD")
            assert served.aiohttp_connections == 0
            # a request with a body (even an empty one) is aiohttp's, and so is what follows
            writer.write(request("POST", "/echo", "Content-Length: 0\r\n") + request(method, path))
            assert (await read_response(reader))[0] == "HTTP/1.1 200 OK"
            slow = await read_response(reader, method == "HEAD")
            assert served.aiohttp_connections == 1
            writer.close()
            return fast, slow

    fast, slow = asyncio.run(main())
    assert fast == slow
    status, headers, body = fast
    assert status == "HTTP/1.1 200 OK"
    assert headers["Server"] == "Dockyard/0.1.0 (linux)" and headers["Ostype"] == "linux"
    if path == "/_ping":
        assert headers["Api-Version"] == "1.50" and headers["Swarm"] == "inactive"
        assert body == (b"" if method == "HEAD" else b"OK")
        assert headers["Content-Length"] == ("0" if method == "HEAD" else "2")
    if "items" in path:
        assert json.loads(body) == {"version": "1.50", "query": [
            ["all", "1"], ["filters", '{"a":["b"]}'], ["x", "a b"]]}


@pytest.mark.parametrize("path,message", [
    ("/v1.99/_ping", "client version 1.99 is too new. Maximum supported API version is 1.50"),
    ("/v1.12/items", "client version 1.12 is too old. Minimum supported API version is 1.24, "
                     "please upgrade your client to a newer version"),
    ("/items?bad=yes", "bad query: yes"),
])
def test_errors_are_answered_by_aiohttp(tmp_path, path, message):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            writer.write(request("GET", path))
            status, _, body = await read_response(reader)
            writer.write(request("GET", "/_ping"))  # the connection goes on, aiohttp's now
            again = await read_response(reader)
            writer.close()
            return status, body, again, served.aiohttp_connections

    status, body, again, handed = asyncio.run(main())
    assert status == "HTTP/1.1 400 Bad Request"
    assert json.loads(body) == {"message": message}
    assert again[0] == "HTTP/1.1 200 OK" and again[2] == b"OK"
    assert handed == 1


def test_pipelined_requests_are_answered_in_order(tmp_path):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            writer.write(request("GET", "/items?n=1") + request("POST", "/echo", "Content-Length: 5\r\n", b"hello")
                         + request("GET", "/items?n=3") + request("GET", "/nowhere"))
            out = [await read_response(reader) for _ in range(4)]
            writer.close()
            return out

    first, echoed, third, missing = asyncio.run(main())
    assert json.loads(first[2])["query"] == [["n", "1"]]
    assert echoed[2] == b"hello"
    assert json.loads(third[2])["query"] == [["n", "3"]]
    assert missing[0] == "HTTP/1.1 404 Not Found"
    assert json.loads(missing[2]) == {"message": "page not found"}


def test_a_request_split_across_reads(tmp_path):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            data = request("GET", "/items?split=yes") + request("HEAD", "/_ping")
            for i in range(len(data)):  # one byte at a time
                writer.write(data[i:i + 1])
                await writer.drain()
                await asyncio.sleep(0)
            out = [await read_response(reader), await read_response(reader, head_only=True)]
            writer.close()
            return out, served.aiohttp_connections

    (items, ping), handed = asyncio.run(main())
    assert json.loads(items[2])["query"] == [["split", "yes"]]
    assert ping[0] == "HTTP/1.1 200 OK"
    assert handed == 0


def test_an_answer_bigger_than_the_socket_takes(tmp_path):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            writer.write(request("GET", "/big") + request("GET", "/_ping"))
            await asyncio.sleep(0.2)  # the fast path's send fills the socket; aiohttp sends the rest
            big = await read_response(reader)
            ping = await read_response(reader)
            writer.close()
            return big, ping, served.aiohttp_connections

    big, ping, handed = asyncio.run(main())
    assert big[2] == bytes(range(256)) * (BIG // 256)
    assert ping[2] == b"OK"
    assert handed == 1


def test_connection_close_is_honoured(tmp_path):
    async def main():
        async with Served(tmp_path) as served:
            reader, writer = await asyncio.open_unix_connection(served.sock)
            writer.write(request("GET", "/_ping", "Connection: close\r\n"))
            status, headers, body = await read_response(reader)
            rest = await reader.read()
            return headers, body, rest, served.listeners.connections

    headers, body, rest, connections = asyncio.run(main())
    assert headers["Connection"] == "close" and body == b"OK"
    assert rest == b""  # closed by the daemon
    assert not connections


def test_idle_and_remaining_connections_are_closed(tmp_path, monkeypatch):
    monkeypatch.setattr(fastpath, "KEEPALIVE_TIMEOUT", 0.2)
    monkeypatch.setattr(fastpath, "IDLE_SWEEP", 0.1)

    async def main():
        async with Served(tmp_path) as served:
            idle_reader, idle = await asyncio.open_unix_connection(served.sock)
            idle.write(request("HEAD", "/_ping"))
            await read_response(idle_reader, head_only=True)
            assert await asyncio.wait_for(idle_reader.read(), 2) == b""  # closed once idle
            busy_reader, busy = await asyncio.open_unix_connection(served.sock)
            busy.write(request("HEAD", "/_ping"))
            await read_response(busy_reader, head_only=True)
        # the listeners closed: so is the connection still open on the fast path
        return await asyncio.wait_for(busy_reader.read(), 2)

    assert asyncio.run(main()) == b""
