"""Container routes: /containers/... (create, list, inspect, start/stop/kill/restart,
pause/unpause, wait, remove, rename, prune, logs, export, resize, attach, archive (docker cp))."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import AsyncIterator, Iterator, Protocol

import msgspec
from aiohttp import web

from dockyard import errdefs
from dockyard.api import hijack, versions
from dockyard.api.app import add_plain_route, api_version, json_response, read_json
from dockyard.api.fastpath import Plain
from dockyard.api.routers.system import parse_filters
from dockyard.apitypes.container import (
    ContainerInspect, ContainerSummary, CreateRequest, CreateResponse, PruneResponse, UpdateRequest,
)

log = logging.getLogger("dockyard.api.containers")


class AttachSession(Protocol):
    tty: bool

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...
    async def write_stdin(self, data: bytes) -> None: ...
    async def stdin_closed(self) -> None: ...
    async def close(self) -> None: ...


class ContainersBackend(Protocol):
    async def create_async(self, request: CreateRequest, name: str | None = None,
                           default_read_only_non_recursive: bool = False) -> CreateResponse: ...
    def list(self, all: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[ContainerSummary]: ...
    def inspect(self, ref: str, size: bool = False) -> ContainerInspect: ...
    async def start(self, ref: str) -> None: ...
    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None: ...
    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None: ...
    async def kill(self, ref: str, signal: str | None = None) -> None: ...
    async def pause(self, ref: str) -> None: ...
    async def unpause(self, ref: str) -> None: ...
    def wait(self, ref: str, condition: str = "not-running") -> asyncio.Future: ...
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
    def rename(self, ref: str, new_name: str) -> None: ...
    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse: ...
    def logs(self, ref: str, *, stdout: bool, stderr: bool, follow: bool, since: str, until: str,
             timestamps: bool, tail: str, details: bool = False) -> AsyncIterator[tuple[int, bytes]]: ...
    def tty(self, ref: str) -> bool: ...
    async def resize(self, ref: str, height: int, width: int) -> None: ...
    def export(self, ref: str) -> Iterator[bytes]: ...
    async def top(self, ref: str, ps_args: str = "") -> object: ...
    async def changes(self, ref: str) -> list: ...
    async def update(self, ref: str, request: UpdateRequest) -> dict: ...
    async def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> AsyncIterator[dict]: ...
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True, detach_keys: str | None = None) -> AttachSession: ...
    async def detach(self, session: AttachSession) -> None: ...
    async def stat_path(self, ref: str, path: str) -> object: ...
    async def get_archive(self, ref: str, path: str) -> tuple[object, AsyncIterator[bytes]]: ...
    async def put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], copy_uid_gid: bool = False,
                          no_overwrite_dir_non_dir: bool = False) -> None: ...


def bool_value(query: Mapping[str, str], key: str) -> bool:
    """moby's httputils.BoolValue: absent, "", "0", "no", "false", "none" are false."""
    return query.get(key, "").strip().lower() not in ("", "0", "no", "false", "none")


def int_value(query: Mapping[str, str], key: str, default: int | None = None) -> int | None:
    raw = query.get(key, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


def setup(app: web.Application, backend: ContainersBackend) -> None:
    async def create(request: web.Request) -> web.Response:
        body = await read_json(request, CreateRequest)
        if body is None:
            raise errdefs.InvalidParameter("config cannot be empty in order to create a container")
        # before API 1.44 read-only binds were not recursive (moby's DefaultReadOnlyNonRecursive)
        old_ro = not versions.at_least(api_version(request), "1.44")
        return json_response(await backend.create_async(body, request.query.get("name") or None, old_ro),
                             status=201)

    def list_containers(query: Mapping[str, str], version: str, method: str) -> Plain:
        return Plain(msgspec.json.encode(backend.list(
            all=bool_value(query, "all"), limit=int_value(query, "limit", -1),
            size=bool_value(query, "size"), filters=parse_filters(query.get("filters")))))

    async def inspect(request: web.Request) -> web.Response:
        return json_response(backend.inspect(request.match_info["id"], size=bool_value(request.query, "size")))

    async def start(request: web.Request) -> web.Response:
        await backend.start(request.match_info["id"])
        return web.Response(status=204)

    async def stop(request: web.Request) -> web.Response:
        await backend.stop(request.match_info["id"], int_value(request.query, "t"),
                           request.query.get("signal") or None)
        return web.Response(status=204)

    async def restart(request: web.Request) -> web.Response:
        await backend.restart(request.match_info["id"], int_value(request.query, "t"),
                              request.query.get("signal") or None)
        return web.Response(status=204)

    async def kill(request: web.Request) -> web.Response:
        await backend.kill(request.match_info["id"], request.query.get("signal") or None)
        return web.Response(status=204)

    async def pause(request: web.Request) -> web.Response:
        await backend.pause(request.match_info["id"])
        return web.Response(status=204)

    async def unpause(request: web.Request) -> web.Response:
        await backend.unpause(request.match_info["id"])
        return web.Response(status=204)

    async def wait(request: web.Request) -> web.StreamResponse:
        # Register the waiter, then send the headers at once, as dockerd does: the client
        # (docker run) starts the container once it knows the wait is in place.
        future = backend.wait(request.match_info["id"], request.query.get("condition", ""))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            await resp.prepare(request)
            result = await future
        except BaseException:
            future.cancel()
            raise
        await resp.write(msgspec.json.encode(result) + b"\n")
        await resp.write_eof()
        return resp

    async def remove(request: web.Request) -> web.Response:
        await backend.remove(request.match_info["id"], force=bool_value(request.query, "force"),
                             volumes=bool_value(request.query, "v"))
        return web.Response(status=204)

    async def rename(request: web.Request) -> web.Response:
        backend.rename(request.match_info["id"], request.query.get("name", ""))
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        return json_response(await backend.prune(parse_filters(request.query.get("filters"))))

    async def logs(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        q = request.query
        records = backend.logs(
            ref, stdout=bool_value(request.query, "stdout"), stderr=bool_value(request.query, "stderr"),
            follow=bool_value(request.query, "follow"), since=q.get("since", ""), until=q.get("until", ""),
            timestamps=bool_value(request.query, "timestamps"), tail=q.get("tail", "all"),
            details=bool_value(request.query, "details"))
        tty = backend.tty(ref)
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": hijack.stream_content_type(request, tty)})
        await resp.prepare(request)
        async for stream, data in records:
            await resp.write(data if tty else hijack.frame(stream, data))
        await resp.write_eof()
        return resp

    async def export(request: web.Request) -> web.StreamResponse:
        chunks = backend.export(request.match_info["id"])
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, next, chunks, None)  # errors before the headers
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        chunk = first
        while chunk is not None:
            await resp.write(chunk)
            chunk = await loop.run_in_executor(None, next, chunks, None)
        await resp.write_eof()
        return resp

    def archive_path(request: web.Request) -> str:
        path = request.query.get("path", "")
        if not path:
            raise errdefs.InvalidParameter("bad parameter: path cannot be empty")
        return path

    def path_stat_header(stat: object) -> dict[str, str]:
        return {"X-Docker-Container-Path-Stat": base64.b64encode(msgspec.json.encode(stat)).decode()}

    async def head_archive(request: web.Request) -> web.Response:
        stat = await backend.stat_path(request.match_info["id"], archive_path(request))
        return web.Response(status=200, headers=path_stat_header(stat))

    async def get_archive(request: web.Request) -> web.StreamResponse:
        stat, chunks = await backend.get_archive(request.match_info["id"], archive_path(request))
        try:
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar",
                                                           **path_stat_header(stat)})
            await resp.prepare(request)
            async for chunk in chunks:
                await resp.write(chunk)
            await resp.write_eof()
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        return resp

    async def put_archive(request: web.Request) -> web.Response:
        await backend.put_archive(request.match_info["id"], archive_path(request), request.content.iter_any(),
                                  copy_uid_gid=bool_value(request.query, "copyUIDGID"),
                                  no_overwrite_dir_non_dir=bool_value(request.query, "noOverwriteDirNonDir"))
        return web.Response(status=200)

    async def top(request: web.Request) -> web.Response:
        return json_response(await backend.top(request.match_info["id"], request.query.get("ps_args", "")))

    async def stats(request: web.Request) -> web.StreamResponse:
        stream = request.query.get("stream", "1") not in ("0", "false", "False")
        documents = await backend.stats(request.match_info["id"], stream=stream,
                                        one_shot=bool_value(request.query, "one-shot"))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            async for doc in documents:
                await resp.write(msgspec.json.encode(doc) + b"\n")
        except (ConnectionResetError, BrokenPipeError):
            return resp
        await resp.write_eof()
        return resp

    async def update(request: web.Request) -> web.Response:
        body = await read_json(request, UpdateRequest, default=UpdateRequest())
        return json_response(await backend.update(request.match_info["id"], body))

    async def changes(request: web.Request) -> web.Response:
        return json_response(await backend.changes(request.match_info["id"]) or None)

    async def resize(request: web.Request) -> web.Response:
        await backend.resize(request.match_info["id"], int_value(request.query, "h", 0) or 0,
                             int_value(request.query, "w", 0) or 0)
        return web.Response(status=200)

    async def attach(request: web.Request) -> web.StreamResponse:
        session = await backend.attach(
            request.match_info["id"], stdin=bool_value(request.query, "stdin"),
            stdout=bool_value(request.query, "stdout"), stderr=bool_value(request.query, "stderr"),
            logs=bool_value(request.query, "logs"), stream=bool_value(request.query, "stream"),
            detach_keys=request.query.get("detachKeys") or None)
        try:
            resp, client = await hijack.upgrade(request, hijack.stream_content_type(request, session.tty))
        except BaseException:
            await backend.detach(session)
            raise
        pump = asyncio.ensure_future(_pump_stdin(client, session))
        try:
            async for stream, data in session.output():
                await resp.write(data if session.tty else hijack.frame(stream, data))
        except (ConnectionResetError, BrokenPipeError) as e:
            log.debug("attach: client went away: %s", e)
        finally:
            pump.cancel()
            await backend.detach(session)
            hijack.close(request)
        return resp

    async def attach_ws(request: web.Request) -> web.StreamResponse:
        session = await backend.attach(
            request.match_info["id"], stdin=bool_value(request.query, "stdin"),
            stdout=bool_value(request.query, "stdout"), stderr=bool_value(request.query, "stderr"),
            logs=bool_value(request.query, "logs"), stream=bool_value(request.query, "stream"),
            detach_keys=request.query.get("detachKeys") or None)
        ws = web.WebSocketResponse()
        try:
            await ws.prepare(request)
        except BaseException:
            await backend.detach(session)
            raise
        pump = asyncio.ensure_future(_pump_ws(ws, session))
        try:
            async for _, data in session.output():  # raw, as dockerd sends it (binary frames)
                await ws.send_bytes(data)
        except (ConnectionResetError, BrokenPipeError) as e:
            log.debug("attach/ws: client went away: %s", e)
        finally:
            pump.cancel()
            await backend.detach(session)
            await ws.close()
        return ws

    app.router.add_post("/containers/create", create)
    add_plain_route(app, ("GET",), "/containers/json", list_containers)
    app.router.add_post("/containers/prune", prune)
    app.router.add_get("/containers/{id}/json", inspect)
    app.router.add_post("/containers/{id}/start", start)
    app.router.add_post("/containers/{id}/stop", stop)
    app.router.add_post("/containers/{id}/restart", restart)
    app.router.add_post("/containers/{id}/kill", kill)
    app.router.add_post("/containers/{id}/pause", pause)
    app.router.add_post("/containers/{id}/unpause", unpause)
    app.router.add_post("/containers/{id}/wait", wait)
    app.router.add_delete("/containers/{id}", remove)
    app.router.add_post("/containers/{id}/rename", rename)
    app.router.add_get("/containers/{id}/logs", logs)
    app.router.add_get("/containers/{id}/export", export)
    app.router.add_head("/containers/{id}/archive", head_archive)
    app.router.add_get("/containers/{id}/archive", get_archive, allow_head=False)
    app.router.add_put("/containers/{id}/archive", put_archive)
    app.router.add_post("/containers/{id}/resize", resize)
    app.router.add_get("/containers/{id}/top", top)
    app.router.add_get("/containers/{id}/changes", changes)
    app.router.add_post("/containers/{id}/update", update)
    app.router.add_get("/containers/{id}/stats", stats)
    app.router.add_post("/containers/{id}/attach", attach)
    app.router.add_get("/containers/{id}/attach/ws", attach_ws)


async def _pump_stdin(client: hijack.ClientInput, session: AttachSession) -> None:
    while True:
        data = await client.read()
        if not data:
            if client.lost:
                await session.close()  # the client is gone: nothing left to serve
            else:
                await session.stdin_closed()
            return
        await session.write_stdin(data)


async def _pump_ws(ws: web.WebSocketResponse, session: AttachSession) -> None:
    async for msg in ws:
        if msg.type == web.WSMsgType.BINARY:
            await session.write_stdin(msg.data)
        elif msg.type == web.WSMsgType.TEXT:
            await session.write_stdin(msg.data.encode())
    await session.close()  # the websocket closed: the client is gone
