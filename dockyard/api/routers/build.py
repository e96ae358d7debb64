"""Build routes: ``POST /build`` (the classic builder's stream) and ``POST /build/prune``.

The query is moby's (``t`` repeated, ``dockerfile``, ``remote``, ``buildargs``/``labels``/
``cachefrom``/``ulimits`` as JSON, ``target``, ``nocache``, ``q``, ``rm``, ``forcerm``,
``pull``, ``networkmode``, ``extrahosts``, ``shmsize``, ``cpu*``, ``memory``, ``memswap``,
``squash``, ``platform``, ``version``). The body (the context tar) is spooled to a temp
file first. Messages are written as they come; an error before the first one is an
ordinary error response, a later one the stream's ``errorDetail`` line. A client that goes
away cancels the build (its containers and scratch snapshots are removed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import tempfile
from typing import IO, Any, AsyncIterator, Protocol

import msgspec
from aiohttp import web

from dockyard import errdefs
from dockyard.api.app import json_response
from dockyard.apitypes.container import Ulimit
from dockyard.apitypes.distribution import AuthConfig
from dockyard.daemon.build.options import BuildFailed, BuildOptions
from dockyard.daemon.build.run import RunResources

_SPOOL_MEMORY = 1 << 20
log = logging.getLogger("dockyard.api.build")


class BuildBackend(Protocol):
    def build(self, body: IO[bytes], options: BuildOptions) -> AsyncIterator[dict[str, Any]]: ...
    def prune(self) -> dict: ...


def _bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    return value.lower() not in ("0", "false", "no")


def _int(request: web.Request, name: str) -> int:
    value = request.query.get(name, "") or "0"
    try:
        return int(value)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid value for {name}: {value!r}") from None


def _json(request: web.Request, name: str, type: Any, default: Any) -> Any:
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        return msgspec.json.decode(value, type=type)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise errdefs.InvalidParameter(f"invalid {name} JSON: {e}") from None


def options_from(request: web.Request) -> BuildOptions:
    version = request.query.get("version", "1")
    if version not in ("", "1"):
        raise errdefs.InvalidParameter(f"BuildKit is not supported by this daemon (builder version {version}); "
                                       "use the classic builder (DOCKER_BUILDKIT=0)")
    hosts = [h for value in request.query.getall("extrahosts", []) for h in value.split(",") if h]
    resources = RunResources(
        network_mode=request.query.get("networkmode", "") if request.query.get("networkmode") != "default" else "",
        extra_hosts=hosts, shm_size=_int(request, "shmsize"),
        ulimits=_json(request, "ulimits", list[Ulimit], []), cpu_shares=_int(request, "cpushares"),
        cpu_period=_int(request, "cpuperiod"), cpu_quota=_int(request, "cpuquota"),
        cpuset_cpus=request.query.get("cpusetcpus", ""), cpuset_mems=request.query.get("cpusetmems", ""),
        memory=_int(request, "memory"), memory_swap=_int(request, "memswap"))
    return BuildOptions(
        tags=[t for t in request.query.getall("t", []) if t], dockerfile=request.query.get("dockerfile", ""),
        remote=request.query.get("remote", ""),
        build_args=_json(request, "buildargs", dict[str, str | None], {}),
        labels=_json(request, "labels", dict[str, str], {}), target=request.query.get("target", ""),
        no_cache=_bool(request, "nocache"), quiet=_bool(request, "q"), remove=_bool(request, "rm", True),
        force_remove=_bool(request, "forcerm"), pull=_bool(request, "pull"),
        cache_from=_json(request, "cachefrom", list[str], []), resources=resources,
        auth_configs=_registry_config(request), squash=_bool(request, "squash"),
        platform=request.query.get("platform", ""))


def _registry_config(request: web.Request) -> dict[str, AuthConfig]:
    """``X-Registry-Config``: base64url JSON of every registry's credentials (for FROM pulls)."""
    header = request.headers.get("X-Registry-Config", "")
    if not header:
        return {}
    try:
        data = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        return msgspec.json.decode(data, type=dict[str, AuthConfig])
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise errdefs.InvalidParameter("invalid X-Registry-Config header: not base64url JSON") from None


async def _spool(request: web.Request) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]


def _retrieved(task: asyncio.Future) -> None:
    """Mark the outcome seen: it is read below, or the client left and nobody needs it."""
    if not task.cancelled():
        task.exception()


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def setup(app: web.Application, backend: BuildBackend) -> None:
    async def build(request: web.Request) -> web.StreamResponse:
        options = options_from(request)
        body = await _spool(request)
        messages = backend.build(body, options).__aiter__()
        resp: web.StreamResponse | None = None
        try:
            while True:
                step = asyncio.ensure_future(messages.__anext__())
                step.add_done_callback(_retrieved)
                try:
                    while not step.done():  # a long silent RUN: notice a client that left
                        await asyncio.wait({step}, timeout=0.5)
                        if not step.done() and _client_gone(request):
                            step.cancel()
                            await asyncio.gather(step, return_exceptions=True)
                            return web.Response(status=499)
                    message = step.result()
                except StopAsyncIteration:
                    break
                except Exception as e:
                    if resp is None:
                        raise  # before the stream: the app's error response (500s logged there)
                    if not isinstance(e, errdefs.DockyardError):
                        log.exception("build failed with an internal error")
                    text = e.message if isinstance(e, errdefs.DockyardError) else \
                        f"internal error: {type(e).__name__}: {e}"
                    detail = {"message": text}
                    if isinstance(e, BuildFailed) and e.code is not None:
                        detail["code"] = e.code  # type: ignore[assignment]
                    await resp.write(msgspec.json.encode({"errorDetail": detail, "error": text}) + b"\r\n")
                    break
                if resp is None:
                    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
                    await resp.prepare(request)
                await resp.write(msgspec.json.encode(message) + b"\r\n")
        finally:
            await messages.aclose()  # type: ignore[attr-defined]
            body.close()
        if resp is None:
            return web.Response(status=200, content_type="application/json")
        await resp.write_eof()
        return resp

    async def prune(request: web.Request) -> web.Response:
        return json_response(backend.prune())

    app.router.add_post("/build", build)
    app.router.add_post("/build/prune", prune)
