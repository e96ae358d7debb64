"""Volume routes: /volumes (list, create, inspect, remove, prune), as moby's volume router."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from dockyard import errdefs
from dockyard.api import versions
from dockyard.api.app import api_version, json_response, read_json
from dockyard.api.routers.containers import bool_value
from dockyard.api.routers.system import parse_filters
from dockyard.apitypes.volume import CreateRequest, ListResponse, PruneResponse, Volume


class VolumesBackend(Protocol):
    async def list(self, filters: dict[str, list[str]]) -> ListResponse: ...
    async def inspect(self, name: str) -> Volume: ...
    async def create(self, request: CreateRequest) -> Volume: ...
    async def remove(self, name: str, force: bool = False) -> None: ...
    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse: ...


def setup(app: web.Application, backend: VolumesBackend) -> None:
    async def list_volumes(request: web.Request) -> web.Response:
        return json_response(await backend.list(parse_filters(request.query.get("filters"))))

    async def inspect_volume(request: web.Request) -> web.Response:
        return json_response(await backend.inspect(request.match_info["name"]))

    async def create_volume(request: web.Request) -> web.Response:
        body = await read_json(request, CreateRequest, default=CreateRequest())
        return json_response(await backend.create(body), status=201)

    async def update_volume(request: web.Request) -> web.Response:
        await backend.inspect(request.match_info["name"])  # 404 first, as Docker
        raise errdefs.Unavailable("This node is not a swarm manager. Only cluster volumes can be updated, "
                                  "and this daemon has no cluster volumes.")

    async def remove_volume(request: web.Request) -> web.Response:
        await backend.remove(request.match_info["name"], force=bool_value(request.query, "force"))
        return web.Response(status=204)

    async def prune_volumes(request: web.Request) -> web.Response:
        filters = parse_filters(request.query.get("filters"))
        if not versions.at_least(api_version(request), "1.42"):
            filters["all"] = ["true"]  # before API 1.42 prune removed named volumes too
        return json_response(await backend.prune(filters))

    app.router.add_get("/volumes", list_volumes)
    app.router.add_post("/volumes/create", create_volume)
    app.router.add_post("/volumes/prune", prune_volumes)
    app.router.add_get("/volumes/{name}", inspect_volume)
    app.router.add_put("/volumes/{name}", update_volume)
    app.router.add_delete("/volumes/{name}", remove_volume)
