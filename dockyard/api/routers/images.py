"""Image routes: list, inspect, history, tag, remove, prune, load, save, import, commit
(pull, push and search are in ``distribution``).

Image names contain slashes (``localhost:5000/a/b``), so per-image routes match
``{name:.+}`` and the fixed routes (``/images/json``, ``/images/get``) are added first.
Tar work (load, import, save, commit) runs in a worker thread; uploads are spooled to
a temporary file first because an archive's index (``manifest.json``) may come last.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from typing import IO, Any, Iterator, Protocol

import msgspec
from aiohttp import web

from dockyard import errdefs
from dockyard.api import versions
from dockyard.api.app import add_plain_route, api_version, json_response, read_json
from dockyard.api.fastpath import Plain
from dockyard.api.routers import distribution
from dockyard.api.routers.system import parse_filters
from dockyard.apitypes import image as api
from dockyard.oci.image_spec import ContainerConfig

_SPOOL_IN_MEMORY = 8 << 20  # uploads larger than this go to disk
_BATCH = 1 << 20  # bytes handed from the worker thread to the event loop at a time


class ImagesBackend(Protocol):
    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None,
             shared_size: bool = False) -> list[api.ImageSummary]: ...
    def inspect(self, ref: str) -> api.ImageInspect: ...
    def history(self, ref: str) -> list[api.HistoryResponseItem]: ...
    def tag(self, ref: str, repo: str, tag_name: str) -> Any: ...
    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[api.DeleteResponse]: ...
    def prune(self, filters: dict[str, list[str]] | None = None) -> api.PruneReport: ...
    def load(self, archive: IO[bytes]) -> list[api.ProgressMessage]: ...
    def save(self, refs: list[str]) -> Iterator[bytes]: ...
    def import_image(self, source: IO[bytes], repo: str = "", tag_name: str = "", message: str = "",
                     changes: list[str] | None = None, platform: str = "") -> list[api.ProgressMessage]: ...
    def commit_container(self, container: str, repo: str = "", tag_name: str = "", author: str = "",
                         comment: str = "", changes: list[str] | None = None, pause: bool = True,
                         overrides: dict[str, Any] | None = None) -> api.CommitResponse: ...


def query_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Docker's boolValue: absent -> default; "", 0, no, false, none -> false; anything else true."""
    if name not in query:
        return default
    return query[name].strip().lower() not in ("", "0", "no", "false", "none")


async def _spool(request: web.Request) -> IO[bytes]:
    upload = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    async for chunk in request.content.iter_chunked(1 << 16):
        upload.write(chunk)
    upload.seek(0)
    return upload  # type: ignore[return-value]


def _next_batch(chunks: Iterator[bytes]) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) >= _BATCH:
            break
    return bytes(out)


async def write_stream(request: web.Request, chunks: Iterator[bytes], content_type: str) -> web.StreamResponse:
    """Send an iterator made in a worker thread, a batch at a time; closes it in any case."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    try:
        first = await asyncio.to_thread(_next_batch, chunks)  # errors before any byte keep their status
        await resp.prepare(request)
        batch = first
        while batch:
            await resp.write(batch)
            batch = await asyncio.to_thread(_next_batch, chunks)
        await resp.write_eof()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
    return resp


def _progress(messages: list[api.ProgressMessage]) -> web.Response:
    body = b"".join(msgspec.json.encode(m) + b"\n" for m in messages)
    return web.Response(body=body, content_type="application/json")


def setup(app: web.Application, backend: ImagesBackend) -> None:
    def list_images(query: Mapping[str, str], version: str, method: str) -> Plain:
        return Plain(msgspec.json.encode(backend.list(
            all=query_bool(query, "all"), filters=parse_filters(query.get("filters")),
            shared_size=query_bool(query, "shared-size"))))

    async def inspect_image(request: web.Request) -> web.Response:
        body = backend.inspect(request.match_info["name"])
        if versions.at_least(api_version(request), "1.50") and isinstance(body.config, ContainerConfig):
            body.config = api.ImageConfig.of(body.config)  # Docker 28: OCI fields only from 1.50
        return json_response(body)

    async def image_history(request: web.Request) -> web.Response:
        return json_response(backend.history(request.match_info["name"]))

    async def tag_image(request: web.Request) -> web.Response:
        backend.tag(request.match_info["name"], request.query.get("repo", ""), request.query.get("tag", ""))
        return web.Response(status=201)

    async def remove_image(request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(
            backend.remove, request.match_info["name"], query_bool(request.query, "force"),
            not query_bool(request.query, "noprune")))

    async def prune_images(request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(backend.prune, parse_filters(request.query.get("filters"))))

    async def load_images(request: web.Request) -> web.Response:
        upload = await _spool(request)
        try:
            # quiet only hides progress bars, which a load from a spooled file does not have
            return _progress(await asyncio.to_thread(backend.load, upload))
        except errdefs.DockyardError as e:
            # dockerd has answered 200 before reading the archive: what went wrong is the
            # stream's error line, which the docker CLI prints as is (no "Error response from daemon")
            return _progress([api.ProgressMessage(errorDetail={"message": str(e)}, error=str(e))])
        finally:
            upload.close()

    async def save_images(request: web.Request) -> web.StreamResponse:
        names = request.query.getall("names", [])
        chunks = await asyncio.to_thread(backend.save, names)
        return await write_stream(request, chunks, "application/x-tar")

    async def save_image(request: web.Request) -> web.StreamResponse:
        chunks = await asyncio.to_thread(backend.save, [request.match_info["name"]])
        return await write_stream(request, chunks, "application/x-tar")

    async def create_image(request: web.Request) -> web.StreamResponse:
        q = request.query
        if "fromImage" in q:
            return await distribution.pull_image(request)
        source = q.get("fromSrc", "")
        if not source:
            raise errdefs.InvalidParameter("fromImage or fromSrc is required")
        lead: list[api.ProgressMessage] = []
        if source == "-":
            upload = await _spool(request)
        else:  # a URL: the daemon downloads the archive (docker import http://...)
            upload = await distribution.open_url(request, source)
            lead.append(api.ProgressMessage(status=f"Downloading from {upload.url}"))  # type: ignore[attr-defined]
        try:
            return _progress(lead + await asyncio.to_thread(
                backend.import_image, upload, q.get("repo", ""), q.get("tag", ""), q.get("message", ""),
                q.getall("changes", []), q.get("platform", "")))
        finally:
            upload.close()

    async def commit(request: web.Request) -> web.Response:
        q = request.query
        overrides = await read_json(request, default=None)
        result = await asyncio.to_thread(
            backend.commit_container, q.get("container", ""), q.get("repo", ""), q.get("tag", ""),
            q.get("author", ""), q.get("comment", ""), q.getall("changes", []),
            query_bool(request.query, "pause", True), overrides if isinstance(overrides, dict) else None)
        return json_response(result, status=201)

    r = app.router
    add_plain_route(app, ("GET",), "/images/json", list_images)
    r.add_post("/images/prune", prune_images)
    r.add_post("/images/load", load_images)
    r.add_get("/images/get", save_images)
    r.add_post("/images/create", create_image)
    r.add_post("/commit", commit)
    r.add_get("/images/{name:.+}/json", inspect_image)
    r.add_get("/images/{name:.+}/history", image_history)
    r.add_get("/images/{name:.+}/get", save_image)
    r.add_post("/images/{name:.+}/tag", tag_image)
    r.add_delete("/images/{name:.+}", remove_image)
