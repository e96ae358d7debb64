"""Network routes: /networks (list, inspect, create, remove, prune, connect, disconnect)."""

from __future__ import annotations

import time
from typing import Protocol

from aiohttp import web

from dockyard import errdefs
from dockyard.api.app import json_response, read_json
from dockyard.api.routers.system import parse_filters, parse_timestamp
from dockyard.apitypes.container import EndpointSettings
from dockyard.apitypes.network import ConnectRequest, CreateRequest, CreateResponse, DisconnectRequest, Network


class NetworksBackend(Protocol):
    def list(self, filters: dict[str, list[str]]) -> list[Network]: ...
    def inspect(self, ref: str) -> Network: ...
    async def create(self, request: CreateRequest) -> CreateResponse: ...
    async def remove(self, ref: str) -> None: ...
    async def prune(self, filters: dict[str, list[str]], until_ns: int | None = None) -> list[str]: ...
    async def connect(self, network_ref: str, container: str,
                      endpoint_config: EndpointSettings | None = None) -> None: ...
    async def disconnect(self, network_ref: str, container: str, force: bool = False) -> None: ...


def setup(app: web.Application, backend: NetworksBackend) -> None:
    async def list_networks(request: web.Request) -> web.Response:
        return json_response(backend.list(parse_filters(request.query.get("filters"))))

    async def inspect_network(request: web.Request) -> web.Response:
        return json_response(backend.inspect(request.match_info["id"]))

    async def create_network(request: web.Request) -> web.Response:
        body = await read_json(request, CreateRequest, default=CreateRequest())
        return json_response(await backend.create(body), status=201)

    async def remove_network(request: web.Request) -> web.Response:
        await backend.remove(request.match_info["id"])
        return web.Response(status=204)

    async def prune_networks(request: web.Request) -> web.Response:
        filters = parse_filters(request.query.get("filters"))
        until = filters.pop("until", [])
        until_ns = min(parse_timestamp(v, time.time()) for v in until) if until else None
        deleted = await backend.prune(filters, until_ns)
        return json_response({"NetworksDeleted": deleted})

    async def connect(request: web.Request) -> web.Response:
        body = await read_json(request, ConnectRequest, default=ConnectRequest())
        if not body.container:
            raise errdefs.InvalidParameter("no container was specified")
        await backend.connect(request.match_info["id"], body.container, body.endpoint_config)
        return web.Response(status=200)

    async def disconnect(request: web.Request) -> web.Response:
        body = await read_json(request, DisconnectRequest, default=DisconnectRequest())
        if not body.container:
            raise errdefs.InvalidParameter("no container was specified")
        await backend.disconnect(request.match_info["id"], body.container, body.force)
        return web.Response(status=200)

    app.router.add_get("/networks", list_networks)
    app.router.add_get("/networks/{id}", inspect_network)
    app.router.add_post("/networks/create", create_network)
    app.router.add_delete("/networks/{id}", remove_network)
    app.router.add_post("/networks/prune", prune_networks)
    app.router.add_post("/networks/{id}/connect", connect)
    app.router.add_post("/networks/{id}/disconnect", disconnect)
