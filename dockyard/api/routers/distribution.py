"""Registry routes: pull (``POST /images/create?fromImage=``), push, search, ``POST /auth``,
``GET /distribution/{name}/json``.

Pull and push answer with Docker's JSON progress stream. The work runs in a worker thread
and hands each message to the event loop; an error before the first message keeps its
status code (the docker CLI prints it as "Error response from daemon"), an error after it
is the stream's last line (``{"errorDetail":..., "error":...}``), as dockerd does. When the
client goes away the worker's next message raises, which stops it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol

import msgspec
from aiohttp import web

from dockyard import errdefs
from dockyard.api.app import json_response, read_json
from dockyard.api.routers.system import parse_filters
from dockyard.apitypes.distribution import (AuthConfig, AuthResponse, DistributionInspect, JSONMessage,
                                            SearchResult)

Emit = Callable[[JSONMessage], None]
# Pulls and pushes hold a thread for their whole length: a pool of their own, so a few of them
# cannot starve the default executor that every other route uses.
_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="registry-op")


class DistributionBackend(Protocol):
    def pull(self, image: str, tag: str, platform: str, auth: AuthConfig, emit: Emit) -> None: ...
    def push(self, name: str, tag: str, auth: AuthConfig, emit: Emit) -> None: ...
    def login(self, auth: AuthConfig) -> AuthResponse: ...
    def search(self, term: str, limit: int, filters: dict[str, list[str]], auth: AuthConfig) -> list[SearchResult]: ...
    def inspect(self, name: str, auth: AuthConfig) -> DistributionInspect: ...
    def open_url(self, url: str) -> Any: ...


BACKEND = web.AppKey("distribution_backend", object)


def _auth(request: web.Request) -> AuthConfig:
    """``X-Registry-Auth``: base64url JSON; absent or ``{}`` means anonymous."""
    header = request.headers.get("X-Registry-Auth", "")
    if not header:
        return AuthConfig()
    try:
        raw = base64.b64decode(header + "=" * (-len(header) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise errdefs.InvalidParameter("invalid X-Registry-Auth header: not base64url") from None
    try:
        return msgspec.json.decode(raw, type=AuthConfig) if raw.strip() else AuthConfig()
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errdefs.InvalidParameter(f"invalid X-Registry-Auth header: {e}") from None


async def stream_progress(request: web.Request, work: Callable[[Emit], Any]) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[JSONMessage] = asyncio.Queue()
    gone = threading.Event()

    def emit(message: JSONMessage) -> None:
        if gone.is_set():
            raise errdefs.Unavailable("operation cancelled: the client went away")
        loop.call_soon_threadsafe(queue.put_nowait, message)

    task = asyncio.ensure_future(loop.run_in_executor(_WORKERS, work, emit))
    resp: web.StreamResponse | None = None

    async def write(message: JSONMessage) -> None:
        nonlocal resp
        if resp is None:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
        await resp.write(msgspec.json.encode(message) + b"\r\n")

    try:
        while not task.done() or not queue.empty():
            if not queue.empty():
                await write(queue.get_nowait())
                continue
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await write(getter.result())
            else:
                getter.cancel()
        error = task.exception()
        if error is not None:
            if resp is None:
                raise error
            text = error.message if isinstance(error, errdefs.DockyardError) else f"{type(error).__name__}: {error}"
            await write(JSONMessage(errorDetail={"message": text}, error=text))
    finally:
        if not task.done():
            gone.set()  # the client went away: the worker stops at its next message
    if resp is None:
        return web.Response(status=200, content_type="application/json")
    await resp.write_eof()
    return resp


async def pull_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=&tag=&platform=`` (the images router hands it over)."""
    backend: DistributionBackend | None = request.app.get(BACKEND)  # type: ignore[assignment]
    if backend is None:
        raise errdefs.Unavailable("this daemon has no registry client")
    q = request.query
    auth = _auth(request)
    return await stream_progress(request, lambda emit: backend.pull(
        q["fromImage"], q.get("tag", ""), q.get("platform", ""), auth, emit))


async def open_url(request: web.Request, url: str) -> Any:
    """``fromSrc=<url>`` of an import: the archive's body as a readable file (with ``url``)."""
    backend: DistributionBackend | None = request.app.get(BACKEND)  # type: ignore[assignment]
    if backend is None:
        raise errdefs.Unavailable("this daemon cannot download: it has no registry client")
    return await asyncio.to_thread(backend.open_url, url)


def setup(app: web.Application, backend: DistributionBackend) -> None:
    app[BACKEND] = backend

    async def push_image(request: web.Request) -> web.StreamResponse:
        auth = _auth(request)
        name, tag = request.match_info["name"], request.query.get("tag", "")
        return await stream_progress(request, lambda emit: backend.push(name, tag, auth, emit))

    async def search(request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errdefs.InvalidParameter(f"invalid limit: {q.get('limit')}") from None
        results = await asyncio.to_thread(backend.search, q.get("term", ""), limit,
                                          parse_filters(q.get("filters")), _auth(request))
        return json_response(results)

    async def auth(request: web.Request) -> web.Response:
        body = await read_json(request, AuthConfig, default=AuthConfig())
        return json_response(await asyncio.to_thread(backend.login, body))  # type: ignore[arg-type]

    async def inspect(request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(backend.inspect, request.match_info["name"], _auth(request)))

    r = app.router
    r.add_get("/images/search", search)
    r.add_post("/auth", auth)
    r.add_post("/images/{name:.+}/push", push_image)
    r.add_get("/distribution/{name:.+}/json", inspect)
