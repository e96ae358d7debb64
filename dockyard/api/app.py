"""The aiohttp application: version prefix, headers, errors; routers plug in.

Routes are registered without the ``/vX.Y`` prefix; the middleware strips it,
checks it, and records ``request["api_version"]`` for handlers that vary by version.
"""

from __future__ import annotations

import logging
import re
from typing import Awaitable, Callable

import msgspec
from aiohttp import web
from yarl import URL

from dockyard import errdefs
from dockyard.api import errors, fastpath, versions

log = logging.getLogger("dockyard.api")

_VERSIONED = re.compile(versions.VERSIONED_PATH)
SERVER_HEADER = "Dockyard/0.1.0 (linux)"
# dockerd's headers on every answer; Api-Version is the daemon's own, whatever the request's
# (dockerd's VersionMiddleware); what dockerd --experimental gates (build --squash) is always on
COMMON_HEADERS = {"Api-Version": versions.MAX_VERSION, "Server": SERVER_HEADER,
                  "Docker-Experimental": "true", "Ostype": "linux"}
PLAIN_ROUTES = web.AppKey("plain_routes", dict)  # fastpath.PlainRoutes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_VERSION = web.RequestKey("api_version", str)


def api_version(request: web.Request) -> str:
    """The API version the client asked for (the path prefix), or the newest."""
    return request[API_VERSION]


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def error_response(message: str, status: int) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return json_response({"message": message}, status=status)


async def read_json(request: web.Request, type: type | None = None, default: object = None) -> object:
    """The request body as JSON (typed when ``type`` is given); a clear 400 when it is not."""
    body = await request.read()
    if not body.strip():
        return default
    try:
        if type is None:
            return msgspec.json.decode(body)
        return msgspec.json.decode(body, type=type)
    except msgspec.ValidationError as e:
        raise errdefs.InvalidParameter(f"invalid JSON: {e}") from None
    except msgspec.DecodeError as e:
        raise errdefs.InvalidParameter(f"invalid character in JSON body: {e}") from None


async def _common_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """``COMMON_HEADERS`` on every answer, as its headers go out: streamed ones (attach, wait,
    logs, events) included."""
    h = resp.headers
    for name, value in COMMON_HEADERS.items():
        h.setdefault(name, value)
    h["Server"] = SERVER_HEADER  # over aiohttp's own, set just before this hook


def add_plain_route(app: web.Application, methods: tuple[str, ...], path: str,
                    handler: fastpath.PlainHandler) -> None:
    """Route ``path`` to ``handler``, a plain route (``fastpath``): answered on a connection's
    fast path, and by aiohttp like any route (the same handler) once aiohttp serves it."""
    async def route(request: web.Request) -> web.Response:
        plain = handler(request.query, api_version(request), request.method)
        return web.Response(body=plain.body, status=plain.status,
                            headers={"Content-Type": plain.content_type, **plain.headers})

    for method in methods:
        app.router.add_route(method, path, route)
        app[PLAIN_ROUTES][(method.encode(), path.encode())] = handler


class _Unversioned:
    """What the router reads of a request (its path and method), with the path's version
    prefix stripped: resolving this costs far less than a clone of the request (~16 us)."""
    __slots__ = ("rel_url", "method")

    def __init__(self, request: web.Request, path: str) -> None:
        self.rel_url = URL.build(path=path)
        self.method = request.method


async def _versioned_route(request: web.Request) -> web.StreamResponse:
    """Never called: the middleware dispatches a versioned path to its route."""
    raise web.HTTPNotFound()


@web.middleware
async def versioned(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = _VERSIONED.match(request.path)
    version = versions.MAX_VERSION
    path = request.path
    try:
        if match:
            version = match.group(1)
            versions.check(version)
            path = match.group(2)
            match_info = await request.app.router.resolve(_Unversioned(request, path))
            match_info.add_app(request.app)
            match_info.freeze()
            # what aiohttp's own dispatch sets, over the versioned route's (read and cached
            # by then: match_info is a reified property)
            request._match_info = match_info
            request._cache["match_info"] = match_info
            handler = match_info.handler
        request[API_VERSION] = version
        resp = await handler(request)
    except errdefs.DockyardError as e:
        resp = error_response(e.message, errors.status_for(e))
    except web.HTTPNotFound:
        resp = error_response("page not found", 404)
    except web.HTTPMethodNotAllowed:
        resp = error_response(f"method {request.method} not allowed for {path}", 405)
    except web.HTTPException as e:
        if e.status >= 400:
            resp = error_response(e.text or e.reason, e.status)
        else:
            raise
    except (ConnectionResetError, BrokenPipeError):
        # the client went away mid-stream (docker CLI interrupted, wait abandoned): nothing to answer
        log.debug("client left during %s %s", request.method, request.path)
        return web.Response(status=499)
    except Exception as e:  # a real internal fault: log it, never show a traceback
        log.exception("internal error serving %s %s", request.method, request.path)
        resp = error_response(f"internal error: {type(e).__name__}: {e}", 500)
    return resp


def make_app(register_routes: Callable[[web.Application], None]) -> web.Application:
    """Build the app; ``register_routes`` adds every router's routes (composition root decides)."""
    app = web.Application(middlewares=[versioned], client_max_size=0)
    app[PLAIN_ROUTES] = {}
    app.on_response_prepare.append(_common_headers)
    register_routes(app)
    # Every /vX.Y/... path matches this route before the middleware runs: aiohttp's own
    # dispatch then finds a route instead of building a 404 (~10 us a request).
    app.router.add_route("*", r"/{version:v\d+\.\d+}/{path:.*}", _versioned_route)
    return app
