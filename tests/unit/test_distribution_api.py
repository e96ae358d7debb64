"""The distribution routes over HTTP with a fake backend: progress streams, errors before and
after the first line, X-Registry-Auth, /auth, search, distribution inspect."""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp.test_utils import TestClient, TestServer

from dockyard import errdefs
from dockyard.api.app import make_app
from dockyard.api.routers import distribution, images
from dockyard.apitypes.distribution import (AuthResponse, DistributionDescriptor, DistributionInspect,
                                            DistributionPlatform, JSONMessage, ProgressDetail, SearchResult)


class Backend:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def pull(self, image, tag, platform, auth, emit):
        self.calls.append(("pull", image, tag, platform, auth.username))
        if image == "missing":
            raise errdefs.NotFound("manifest for missing:latest not found: manifest unknown: manifest unknown")
        emit(JSONMessage(status="Pulling from library/busybox", id=tag))
        emit(JSONMessage(status="Downloading", id="abc", progressDetail=ProgressDetail(current=1, total=2),
                         progress="[==>   ]"))
        if image == "broken":
            raise errdefs.InvalidParameter("filesystem layer verification failed for digest sha256:x")
        emit(JSONMessage(status="Status: Downloaded newer image for busybox:latest"))

    def push(self, name, tag, auth, emit):
        self.calls.append(("push", name, tag, auth.username))
        emit(JSONMessage(status=f"{tag}: digest: sha256:abc size: 527"))
        emit(JSONMessage(progressDetail=ProgressDetail(), aux={"Tag": tag, "Digest": "sha256:abc", "Size": 527}))

    def login(self, auth):
        if auth.password != "good":
            raise errdefs.Unauthorized("login attempt to http://r/v2/ failed with status: 401 Unauthorized")
        return AuthResponse(status="Login Succeeded")

    def search(self, term, limit, filters, auth):
        self.calls.append(("search", term, limit, filters))
        return [SearchResult(name="busybox", description="d", star_count=3, is_official=True)]

    def inspect(self, name, auth):
        return DistributionInspect(
            descriptor=DistributionDescriptor(media_type="application/vnd.oci.image.index.v1+json",
                                              digest="sha256:d", size=10),
            platforms=[DistributionPlatform(architecture="amd64", os="linux")])


def run(backend, scenario) -> None:
    async def main() -> None:
        def routes(app):
            images.setup(app, object())  # type: ignore[arg-type]
            distribution.setup(app, backend)
        async with TestClient(TestServer(make_app(routes))) as client:
            await scenario(client)
    asyncio.run(main())


def _auth(**fields) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def test_pull_stream_and_errors():
    backend = Backend()

    async def scenario(client):
        resp = await client.post("/v1.50/images/create", params={"fromImage": "busybox", "tag": "latest",
                                                                  "platform": "linux/amd64"},
                                 headers={"X-Registry-Auth": _auth(username="u", password="p")})
        assert resp.status == 200 and resp.content_type == "application/json"
        lines = [json.loads(line) for line in (await resp.text()).splitlines()]
        assert lines[0] == {"status": "Pulling from library/busybox", "id": "latest"}
        assert lines[1] == {"status": "Downloading", "progressDetail": {"current": 1, "total": 2},
                            "progress": "[==>   ]", "id": "abc"}
        assert backend.calls[0] == ("pull", "busybox", "latest", "linux/amd64", "u")
        resp = await client.post("/v1.50/images/create", params={"fromImage": "missing"})
        assert resp.status == 404
        assert (await resp.json())["message"].startswith("manifest for missing:latest not found")
        resp = await client.post("/v1.50/images/create", params={"fromImage": "broken"})
        assert resp.status == 200
        last = json.loads((await resp.text()).splitlines()[-1])
        message = "filesystem layer verification failed for digest sha256:x"
        assert last == {"errorDetail": {"message": message}, "error": message}
        resp = await client.post("/v1.50/images/create", params={"fromImage": "busybox"},
                                 headers={"X-Registry-Auth": "%%%"})
        assert resp.status == 400

    run(backend, scenario)


def test_push_auth_search_inspect():
    backend = Backend()

    async def scenario(client):
        resp = await client.post("/v1.50/images/localhost:5000/a/b/push", params={"tag": "v1"},
                                 headers={"X-Registry-Auth": _auth(username="me")})
        lines = [json.loads(line) for line in (await resp.text()).splitlines()]
        assert lines[-1]["aux"] == {"Tag": "v1", "Digest": "sha256:abc", "Size": 527}
        assert backend.calls[-1] == ("push", "localhost:5000/a/b", "v1", "me")
        resp = await client.post("/v1.50/auth", json={"username": "u", "password": "good", "serveraddress": "r"})
        assert await resp.json() == {"Status": "Login Succeeded"}
        resp = await client.post("/v1.50/auth", json={"username": "u", "password": "bad", "serveraddress": "r"})
        assert resp.status == 401
        resp = await client.get("/v1.50/images/search", params={"term": "busybox", "limit": "5",
                                                                 "filters": json.dumps({"is-official": ["true"]})})
        assert await resp.json() == [{"name": "busybox", "description": "d", "star_count": 3,
                                      "is_official": True, "is_automated": False}]
        assert backend.calls[-1] == ("search", "busybox", 5, {"is-official": ["true"]})
        resp = await client.get("/v1.50/distribution/busybox:latest/json")
        assert await resp.json() == {"Descriptor": {"mediaType": "application/vnd.oci.image.index.v1+json",
                                                    "digest": "sha256:d", "size": 10},
                                     "Platforms": [{"architecture": "amd64", "os": "linux"}]}

    run(backend, scenario)
