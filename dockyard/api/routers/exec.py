"""Exec routes: POST /containers/{id}/exec, POST /exec/{id}/start|resize, GET /exec/{id}/json.

``start`` without Detach hijacks the connection exactly as attach does (101
UPGRADED, multiplexed framing without a TTY); as dockerd does, the exec is
checked before the hijack (404/409 as plain answers) and an error starting the
process after it is written into the stream, followed by "\\r\\n".
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Protocol

from aiohttp import web

from dockyard import errdefs
from dockyard.api import hijack
from dockyard.api.app import json_response, read_json
from dockyard.api.routers.containers import int_value
from dockyard.apitypes.exec import ExecCreateRequest, ExecCreateResponse, ExecInspect, ExecStartRequest

log = logging.getLogger("dockyard.api.exec")


class ExecSession(Protocol):
    tty: bool

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...
    async def write_stdin(self, data: bytes) -> None: ...
    async def stdin_closed(self) -> None: ...
    async def close(self) -> None: ...


class ExecBackend(Protocol):
    def create(self, ref: str, body: ExecCreateRequest) -> ExecCreateResponse: ...
    def check(self, exec_id: str) -> None: ...
    async def start(self, exec_id: str, *, detach: bool,
                    console_size: list[int] | None = None) -> ExecSession | None: ...
    async def resize(self, exec_id: str, height: int, width: int) -> None: ...
    def inspect(self, exec_id: str) -> ExecInspect: ...


def setup(app: web.Application, backend: ExecBackend) -> None:
    async def create(request: web.Request) -> web.Response:
        body = await read_json(request, ExecCreateRequest, default=ExecCreateRequest())
        return json_response(backend.create(request.match_info["id"], body), status=201)

    async def start(request: web.Request) -> web.StreamResponse:
        exec_id = request.match_info["id"]
        body = await read_json(request, ExecStartRequest, default=ExecStartRequest())
        backend.check(exec_id)
        if body.detach:
            await backend.start(exec_id, detach=True, console_size=body.console_size)
            return web.Response(status=200)
        tty = bool(body.tty)
        resp, client = await hijack.upgrade(request, hijack.stream_content_type(request, tty))
        try:
            session = await backend.start(exec_id, detach=False, console_size=body.console_size)
        except errdefs.DockyardError as e:
            message = (e.message + "\r\n").encode()
            await resp.write(message if tty else hijack.frame(1, message))
            hijack.close(request)
            return resp
        if session is None:
            hijack.close(request)
            return resp
        pump = asyncio.ensure_future(_pump_stdin(client, session))
        try:
            async for stream, data in session.output():
                await resp.write(data if tty else hijack.frame(stream, data))
        except (ConnectionResetError, BrokenPipeError) as e:
            log.debug("exec: client went away: %s", e)
        finally:
            pump.cancel()
            await session.close()
            hijack.close(request)
        return resp

    async def resize(request: web.Request) -> web.Response:
        await backend.resize(request.match_info["id"], int_value(request.query, "h", 0) or 0,
                             int_value(request.query, "w", 0) or 0)
        return web.Response(status=200)

    async def inspect(request: web.Request) -> web.Response:
        return json_response(backend.inspect(request.match_info["id"]))

    app.router.add_post("/containers/{id}/exec", create)
    app.router.add_post("/exec/{id}/start", start)
    app.router.add_post("/exec/{id}/resize", resize)
    app.router.add_get("/exec/{id}/json", inspect)


async def _pump_stdin(client: hijack.ClientInput, session: ExecSession) -> None:
    while True:
        data = await client.read()
        if not data:
            if client.lost:
                await session.close()
            else:
                await session.stdin_closed()
            return
        await session.write_stdin(data)
