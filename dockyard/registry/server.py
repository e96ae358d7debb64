"""The hub's HTTP face (aiohttp): the OCI distribution API under /v2/, the token endpoint,
/v1/search, hub metadata, web pages, /healthz and /metrics.

Handlers parse the request, call the store (blocking file work in a thread) and write the
answer; every RegistryError becomes the spec's JSON error body with its status. Auth is one
middleware: it works out which repository actions the request needs, and with accounts
configured answers 401 with a Bearer challenge (or 403 DENIED when the token lacks the scope).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections import Counter
from pathlib import Path

from aiohttp import web

from dockyard import errdefs
from dockyard.oci import image_spec as spec
from dockyard.registry import auth, errors, hub, pages
from dockyard.registry.tokenserver import basic_user, get_token, post_token, revoke_token
from dockyard.registry.blobs import make_blobs
from dockyard.registry.config import HubConfig
from dockyard.registry.keys import CONFIG, ISSUER, METRICS, POLICY, REFRESH, STORE, UPSTREAM
from dockyard.registry.names import is_digest
from dockyard.registry.proxy import Upstream
from dockyard.registry.store import Store, check_digest, check_name

log = logging.getLogger("dockyard.registry")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
_ROUTES = [
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)")),
    ("uploads", re.compile(r"(?P<name>.+)/blobs/uploads/?")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)")),
]
# the repository action a method needs (uploads always need push, see _required)
_NEEDS = {"GET": "pull", "HEAD": "pull", "PUT": "push", "POST": "push", "PATCH": "push", "DELETE": "delete"}
_CHUNK = 1 << 20


def _error(e: errors.RegistryError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(e.body(), status=e.status, headers={**API_VERSION, **(headers or {})})


async def _blocking(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _int_param(request: web.Request, key: str) -> int | None:
    value = request.query.get(key)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise errors.PaginationInvalid(f"invalid {key}: {value!r}")
    return int(value)


def _page(items: list[str], request: web.Request, base: str) -> tuple[list[str], dict[str, str]]:
    """The spec's n/last pagination with a Link header to the next page."""
    n, last = _int_param(request, "n"), request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    if n is None or len(items) <= n:
        return items, {}
    items = items[:n]
    if not items:
        return items, {}
    query = urllib.parse.urlencode({"n": n, "last": items[-1]})
    return items, {"Link": f'<{base}?{query}>; rel="next"'}


# ---- auth -----------------------------------------------------------------------------

def _required(request: web.Request) -> list[auth.Access]:
    """What a /v2/ request needs: [] for the base check, else one or two scopes."""
    path = request.path[len("/v2/"):]
    if path == "":
        return []
    if path == "_catalog":
        return [auth.Access("registry", "catalog", ("*",))]
    for kind, pattern in _ROUTES:
        m = pattern.fullmatch(path)
        if m:
            action = _NEEDS.get(request.method, "pull")
            if kind in ("uploads", "upload"):
                action = "push"  # an upload's status and cancel belong to the pusher too
            elif request.method == "DELETE":
                action = "delete"
            needs = [auth.Access("repository", m["name"], (action,))]
            source = request.query.get("from")
            if kind == "uploads" and source:
                needs.append(auth.Access("repository", source, ("pull",)))
            return needs
    return []


def _challenge(request: web.Request, needs: list[auth.Access], error: str = "") -> dict[str, str]:
    config = request.app[CONFIG]
    realm = f"{request.scheme}://{request.host}/token"
    value = f'Bearer realm="{realm}",service="{config.service}"'
    if needs:
        scope = " ".join(f"{a.type}:{a.name}:{','.join('pull,push' if x == 'push' else x for x in a.actions)}"
                         for a in needs)
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return {"WWW-Authenticate": value}


@web.middleware
async def auth_middleware(request: web.Request, handler):
    if not request.path.startswith("/v2/") or request.app[POLICY].open:
        return await handler(request)
    needs = _required(request)
    header = request.headers.get("Authorization", "")
    claims = request.app[ISSUER].verify(header[7:]) if header.startswith("Bearer ") else None
    if claims is None:
        e = errors.Unauthorized("authentication required",
                                [{"Type": a.type, "Name": a.name, "Action": a.actions[0]} for a in needs] or None)
        return _error(e, _challenge(request, needs))
    for access in needs:
        if not auth.allows(claims, access.type, access.name, access.actions[0]):
            e = errors.Denied("requested access to the resource is denied")
            return _error(e, _challenge(request, needs, "insufficient_scope"))
    request["user"] = claims.get("sub", "")
    return await handler(request)


# ---- distribution API -----------------------------------------------------------------

async def base(request: web.Request) -> web.Response:
    return web.json_response({}, headers=API_VERSION)


async def catalog(request: web.Request) -> web.Response:
    names, link = _page(await _blocking(request.app[STORE].catalog), request, "/v2/_catalog")
    return web.json_response({"repositories": names}, headers={**API_VERSION, **link})


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path[len("/v2/"):]
    for kind, pattern in _ROUTES:
        m = pattern.fullmatch(path)
        if m:
            args = m.groupdict()
            check_name(args["name"])
            handler = _HANDLERS.get((kind, request.method))
            if request.app[UPSTREAM] is not None and request.method not in ("GET", "HEAD"):
                raise errors.Unsupported("this hub is a pull-through cache: it does not take pushes or deletes")
            if handler is None:
                raise errors.Unsupported(f"{request.method} is not supported on {kind}")
            return await handler(request, **args)
    raise web.HTTPNotFound()


async def tags_list(request: web.Request, name: str) -> web.Response:
    tags, link = _page(await _blocking(request.app[STORE].tags, name), request, f"/v2/{name}/tags/list")
    return web.json_response({"name": name, "tags": tags}, headers={**API_VERSION, **link})


def _acceptable(request: web.Request, media_type: str) -> bool:
    accepted = set()
    for header in request.headers.getall("Accept", []):
        accepted.update(part.split(";")[0].strip() for part in header.split(","))
    accepted.discard("")
    return not accepted or media_type in accepted or "*/*" in accepted or \
        media_type in spec.MANIFEST_TYPES and not accepted & set(spec.MANIFEST_TYPES + spec.INDEX_TYPES)


def _holds_manifest(store: Store, name: str, digest: str) -> bool:
    """Whether the repository itself has the manifest (its bytes may be in the store for another
    repository only, or stay after the cache's TTL removed this repository's link)."""
    try:
        store.resolve(name, digest)
    except (errors.ManifestUnknown, errors.NameUnknown):
        return False
    return True


async def get_manifest(request: web.Request, name: str, ref: str) -> web.Response:
    store = request.app[STORE]
    upstream = request.app[UPSTREAM]
    if upstream is not None:
        await upstream.expire_due()  # what the cache TTL took is not served
        if not is_digest(ref) or not await _blocking(_holds_manifest, store, name, ref):
            await upstream.manifest(name, ref)
    info = await _blocking(store.resolve, name, ref)
    if not _acceptable(request, info.media_type):
        raise errors.ManifestUnknown(f"manifest unknown: {info.media_type} is not in the Accept header",
                                     {"mediaType": info.media_type})
    headers = {**API_VERSION, "Docker-Content-Digest": info.digest, "Content-Type": info.media_type,
               "Etag": f'"{info.digest}"'}
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(info.size)})
    body = await _blocking(store.manifest_bytes, info.digest)
    await _blocking(store.update_meta, name, _count_pull)
    request.app[METRICS]["manifest_pulls"] += 1
    return web.Response(body=body, headers=headers)


def _count_pull(meta) -> None:
    meta.pulls += 1


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise errors.ManifestTooBig(f"manifest too big: {request.content_length} bytes, the limit is {limit}")
    # read(n) returns what has arrived so far, not n bytes: a manifest that comes in several
    # pieces (dockerd's 100-layer manifest, now and then) must be read to its end
    chunks, size = [], 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise errors.ManifestTooBig(f"manifest too big: more than {limit} bytes")
    return b"".join(chunks)


async def put_manifest(request: web.Request, name: str, ref: str) -> web.Response:
    store = request.app[STORE]
    data = await _read_limited(request, request.app[CONFIG].max_manifest)
    digest, parsed = await _blocking(store.put_manifest, name, ref, data, request.headers.get("Content-Type", ""))
    request.app[METRICS]["manifests_pushed"] += 1
    headers = {**API_VERSION, "Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if parsed.subject is not None:
        headers["OCI-Subject"] = parsed.subject.digest
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request, name: str, ref: str) -> web.Response:
    await _blocking(request.app[STORE].delete_manifest, name, ref)
    return web.Response(status=202, headers=API_VERSION)


async def get_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    store = request.app[STORE]
    check_digest(digest)
    if request.app[UPSTREAM] is not None:
        await request.app[UPSTREAM].expire_due()  # what the cache TTL took is not served
    try:
        desc = await _blocking(store.blob, name, digest)
    except errors.BlobUnknown:
        if request.app[UPSTREAM] is None:
            raise
        await request.app[UPSTREAM].blob(name, digest)
        desc = await _blocking(store.blob, name, digest)
    headers = {**API_VERSION, "Docker-Content-Digest": desc.digest, "Content-Type": "application/octet-stream",
               "Etag": f'"{desc.digest}"', "Accept-Ranges": "bytes"}
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(desc.size)})
    request.app[METRICS]["blob_pulls"] += 1
    location = store.blob_location(digest)
    if isinstance(location, str):  # an object store serves the bytes itself
        raise web.HTTPTemporaryRedirect(location, headers=headers)
    request.app[METRICS]["bytes_served"] += desc.size
    return web.FileResponse(location, headers=headers)


async def delete_blob(request: web.Request, name: str, digest: str) -> web.Response:
    check_digest(digest)
    await _blocking(request.app[STORE].delete_blob, name, digest)
    return web.Response(status=202, headers=API_VERSION)


def _upload_headers(name: str, uuid: str, size: int) -> dict[str, str]:
    return {**API_VERSION, "Location": f"/v2/{name}/blobs/uploads/{uuid}", "Docker-Upload-UUID": uuid,
            "Range": f"0-{max(size - 1, 0)}"}


def _committed(request: web.Request, name: str, digest: str) -> web.Response:
    request.app[METRICS]["blobs_pushed"] += 1
    return web.Response(status=201, headers={**API_VERSION, "Location": f"/v2/{name}/blobs/{digest}",
                                             "Docker-Content-Digest": digest})


async def _receive(request: web.Request, upload, start: int | None) -> int:
    """Append the request body to the upload; a broken body leaves the upload as it was."""
    async with upload.async_lock:
        before = upload.size
        size = await upload.append(request.content.iter_chunked(_CHUNK), start)
    request.app[METRICS]["bytes_received"] += size - before
    return size


async def start_upload(request: web.Request, name: str) -> web.Response:
    store = request.app[STORE]
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount and source:
        check_digest(mount)
        if await _blocking(store.mount, name, mount, source):
            return _committed(request, name, mount)
    digest = request.query.get("digest")
    upload = await _blocking(store.start_upload, name)
    if digest is None:
        return web.Response(status=202, headers=_upload_headers(name, upload.uuid, 0))
    try:
        check_digest(digest)
        await _receive(request, upload, None)
        async with upload.async_lock:
            await _blocking(store.finish_upload, upload, digest)
    except BaseException:
        await _blocking(store.cancel_upload, upload)
        raise
    return _committed(request, name, digest)


def _content_range_start(request: web.Request) -> int | None:
    value = request.headers.get("Content-Range")
    if not value:
        return None
    m = re.fullmatch(r"(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?", value.strip())
    if not m or int(m[2]) < int(m[1]):
        raise errors.RangeInvalid(f"invalid Content-Range: {value!r}")
    if request.content_length is not None and request.content_length != int(m[2]) - int(m[1]) + 1:
        raise errors.RangeInvalid(f"Content-Range {value!r} does not match Content-Length {request.content_length}")
    return int(m[1])


async def patch_upload(request: web.Request, name: str, uuid: str) -> web.Response:
    store = request.app[STORE]
    upload = store.upload(name, uuid)
    try:
        size = await _receive(request, upload, _content_range_start(request))
    except errors.RangeInvalid:
        size = await _blocking(lambda: upload.size)
        return _error(errors.RangeInvalid("requested range not satisfiable"), _upload_headers(name, uuid, size))
    return web.Response(status=202, headers=_upload_headers(name, uuid, size))


async def upload_status(request: web.Request, name: str, uuid: str) -> web.Response:
    upload = request.app[STORE].upload(name, uuid)
    return web.Response(status=204, headers=_upload_headers(name, uuid, upload.size))


async def finish_upload(request: web.Request, name: str, uuid: str) -> web.Response:
    store = request.app[STORE]
    upload = store.upload(name, uuid)
    digest = request.query.get("digest", "")
    check_digest(digest)
    if request.content_length or request.headers.get("Transfer-Encoding"):
        await _receive(request, upload, _content_range_start(request))
    async with upload.async_lock:
        await _blocking(store.finish_upload, upload, digest)
    return _committed(request, name, digest)


async def cancel_upload(request: web.Request, name: str, uuid: str) -> web.Response:
    store = request.app[STORE]
    await _blocking(store.cancel_upload, store.upload(name, uuid))
    return web.Response(status=204, headers=API_VERSION)


async def referrers(request: web.Request, name: str, digest: str) -> web.Response:
    check_digest(digest)
    artifact_type = request.query.get("artifactType") or None
    found = await _blocking(request.app[STORE].referrers, name, digest, artifact_type)
    headers = {**API_VERSION}
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = json.dumps({"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": found})
    return web.Response(body=body.encode(), content_type=spec.OCI_INDEX, headers=headers)


_HANDLERS = {
    ("tags", "GET"): tags_list,
    ("manifest", "GET"): get_manifest, ("manifest", "HEAD"): get_manifest,
    ("manifest", "PUT"): put_manifest, ("manifest", "DELETE"): delete_manifest,
    ("uploads", "POST"): start_upload,
    ("upload", "PATCH"): patch_upload, ("upload", "GET"): upload_status,
    ("upload", "PUT"): finish_upload, ("upload", "DELETE"): cancel_upload,
    ("blob", "GET"): get_blob, ("blob", "HEAD"): get_blob, ("blob", "DELETE"): delete_blob,
    ("referrers", "GET"): referrers,
}


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except errors.RegistryError as e:
        return _error(e)
    except (errdefs.Unavailable, errdefs.System) as e:
        log.error(json.dumps({"msg": "storage failed", "path": request.path, "error": str(e)}))
        return _error(errors.Unavailable(f"storage unavailable: {e}"))


# ---- hub: search, metadata, health, metrics ----------------------------------------------

async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    try:
        n = min(max(int(request.query.get("n") or 25), 1), 100)
        page = max(int(request.query.get("page") or 1), 1)
    except ValueError:
        return web.json_response({"message": "n and page must be numbers"}, status=400)
    found = await _blocking(hub.search, request.app[STORE], request.app[POLICY], query)
    pages_count = (len(found) + n - 1) // n
    return web.json_response({"query": query, "num_results": len(found), "num_pages": pages_count,
                              "page": page, "page_size": n, "results": found[(page - 1) * n:page * n]})


async def repository_info(request: web.Request, user: str | None = None) -> web.Response:
    name = request.match_info["name"]
    store = request.app[STORE]
    check_name(name)
    if user is None:
        user, ok = await _blocking(basic_user, request)
        user = user if ok else ""
    if not await _blocking(store.exists, name) or not hub.visible(store, request.app[POLICY], name, user):
        raise errors.NameUnknown(f"repository name not known to registry: {name}", {"name": name})
    meta = await _blocking(store.meta, name)
    return web.json_response({"name": name, "description": meta.description, "star_count": len(meta.stars),
                              "pull_count": meta.pulls, "private": meta.private,
                              "tags": await _blocking(store.tags_of, name)})


async def _owner(request: web.Request, name: str) -> str:
    """The user changing a repository's metadata: an owner by Basic auth, or anyone on an open hub."""
    policy = request.app[POLICY]
    user, ok = await _blocking(basic_user, request)
    if policy.open:
        return user or "anonymous"
    if not ok or not user:
        raise errors.Unauthorized("authentication required")
    return user


async def update_repository(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    check_name(name)
    user = await _owner(request, name)
    if not request.app[POLICY].open and not request.app[POLICY].owns(user, name):
        raise errors.Denied("requested access to the resource is denied")
    try:
        body = await request.json()
        description, private = body.get("description"), body.get("private")
        if description is not None and not isinstance(description, str) or \
                private is not None and not isinstance(private, bool):
            raise ValueError
    except (ValueError, AttributeError):
        return web.json_response({"message": 'expected {"description": string, "private": bool}'}, status=400)

    def change(meta) -> None:
        if description is not None:
            meta.description = description
        if private is not None:
            meta.private = private
    await _blocking(request.app[STORE].update_meta, name, change)
    return await repository_info(request, user)


async def star(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    check_name(name)
    user = await _owner(request, name)
    if not await _blocking(request.app[STORE].exists, name):
        raise errors.NameUnknown(f"repository name not known to registry: {name}", {"name": name})
    starring = request.method == "PUT"

    def change(meta) -> None:
        if starring and user not in meta.stars:
            meta.stars.append(user)
        elif not starring and user in meta.stars:
            meta.stars.remove(user)
    meta = await _blocking(request.app[STORE].update_meta, name, change)
    return web.json_response({"star_count": len(meta.stars)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    lines = []
    for key, value in sorted(request.app[METRICS].items()):
        if key.startswith("http_requests"):
            continue
        lines += [f"# TYPE dockyard_registry_{key}_total counter", f"dockyard_registry_{key}_total {value}"]
    lines.append("# TYPE dockyard_registry_http_requests_total counter")
    for key, value in sorted(request.app[METRICS].items()):
        if key.startswith("http_requests"):
            _, method, status = key.split(":")
            lines.append(f'dockyard_registry_http_requests_total{{method="{method}",code="{status}"}} {value}')
    return web.Response(body=("\n".join(lines) + "\n").encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as e:
        request.app[METRICS][f"http_requests:{request.method}:{e.status}"] += 1
        raise
    request.app[METRICS][f"http_requests:{request.method}:{response.status}"] += 1
    return response


def make_app(config: HubConfig) -> web.Application:
    policy = auth.Policy(organisations=config.organisations, private=config.private, admins=config.admins,
                         htpasswd=Path(config.htpasswd) if config.htpasswd else None)
    store = Store(Path(config.data), make_blobs(Path(config.data), config.s3))
    store.blobs.gc_staging()
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth_middleware],
                          client_max_size=config.max_manifest + 1)
    app[STORE], app[CONFIG], app[POLICY], app[METRICS] = store, config, policy, Counter()
    app[ISSUER] = auth.TokenIssuer(Path(config.data) / "auth" / "token.key", config.service)
    app[REFRESH] = auth.RefreshTokens(Path(config.data) / "auth" / "refresh")
    app[REFRESH].purge(policy)  # passwords changed or users removed while the hub was down
    app[UPSTREAM] = None
    if config.proxy_remote_url:
        upstream = app[UPSTREAM] = Upstream(config.proxy_remote_url, store, config.proxy_username,
                                            config.proxy_password, str(config.proxy_ttl))

        async def start_upstream(app: web.Application) -> None:
            upstream.start()

        async def close_upstream(app: web.Application) -> None:
            await upstream.close()
        app.on_startup.append(start_upstream)
        app.on_cleanup.append(close_upstream)
    app.router.add_get("/v2/", base)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_route("*", "/v2/{path:.+}", dispatch)
    app.router.add_get("/token", get_token)
    app.router.add_post("/token", post_token)
    app.router.add_post("/token/revoke", revoke_token)
    app.router.add_get("/v1/search", search)
    app.router.add_put("/api/repositories/{name:.+}/star", star)
    app.router.add_delete("/api/repositories/{name:.+}/star", star)
    app.router.add_get("/api/repositories/{name:.+}", repository_info)
    app.router.add_patch("/api/repositories/{name:.+}", update_repository)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    pages.add_routes(app)
    return app
