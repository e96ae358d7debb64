"""The images router over HTTP (aiohttp test client) against a real ImageService."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile

from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import make_app
from dockyard.api.routers import images as images_router
from tests.integration.image_harness import BUSYBOX_ID, FIXTURES, Harness


def run(h: Harness, scenario) -> None:
    async def main() -> None:
        app = make_app(lambda app: images_router.setup(app, h.service))
        async with TestClient(TestServer(app)) as client:
            await scenario(client)
    asyncio.run(main())


def test_load_list_inspect_history_tag_delete(h):
    async def scenario(client):
        resp = await client.post("/v1.50/images/load?quiet=1", data=(FIXTURES / "busybox-docker-save.tar").read_bytes())
        assert resp.status == 200
        assert [json.loads(l) for l in (await resp.text()).splitlines()] == [
            {"stream": "Loaded image: busybox:latest\n"}]
        resp = await client.get("/v1.50/images/json")
        body = await resp.json()
        assert [i["Id"] for i in body] == [BUSYBOX_ID] and body[0]["RepoTags"] == ["busybox:latest"]
        resp = await client.get("/v1.41/images/json", params={"filters": json.dumps({"dangling": {"true": True}})})
        assert await resp.json() == []
        resp = await client.post("/v1.50/images/busybox/tag", params={"repo": "localhost:5000/a/b", "tag": "t"})
        assert resp.status == 201
        resp = await client.get("/v1.50/images/localhost:5000/a/b:t/json")
        body = await resp.json()
        assert resp.status == 200 and body["Id"] == BUSYBOX_ID
        assert body["Config"] == {"User": "", "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], "WorkingDir": ""}
        resp = await client.get("/v1.41/images/busybox/json")
        assert (await resp.json())["Config"]["Hostname"] == ""  # the container config, as API < 1.50 had
        resp = await client.get("/images/localhost:5000/a/b:t/history")
        assert (await resp.json())[0]["Tags"] == ["busybox:latest", "localhost:5000/a/b:t"]
        resp = await client.delete("/v1.50/images/localhost:5000/a/b:t")
        assert await resp.json() == [{"Untagged": "localhost:5000/a/b:t"}]
        resp = await client.get("/v1.50/images/nope/json")
        assert resp.status == 404 and await resp.json() == {"message": "No such image: nope:latest"}
        resp = await client.post("/v1.50/images/busybox/tag", params={"repo": "Upper"})
        assert resp.status == 400 and "must be lowercase" in (await resp.json())["message"]
        h.usage.by_image[BUSYBOX_ID] = [("f" * 64, True)]
        resp = await client.delete("/v1.50/images/busybox")
        assert resp.status == 409
        h.usage.by_image.clear()
        resp = await client.delete("/v1.50/images/busybox", params={"noprune": "0"})
        assert resp.status == 200 and (await resp.json())[1] == {"Deleted": BUSYBOX_ID}
    run(h, scenario)


def test_save_streams_a_loadable_archive(h):
    h.load("busybox-docker-save.tar")

    async def scenario(client):
        resp = await client.get("/v1.50/images/get", params=[("names", "busybox")])
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/x-tar"
        data = await resp.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["busybox:latest"]
        resp = await client.get("/v1.50/images/busybox:latest/get")
        assert await resp.read() == data
        resp = await client.get("/v1.50/images/get", params=[("names", "nope")])
        assert resp.status == 404
        # the saved archive loads back (same image: nothing moves)
        resp = await client.post("/images/load", data=data)
        assert "Loaded image: busybox:latest" in await resp.text()
    run(h, scenario)


def test_load_errors_are_the_stream_error_line(h):
    # dockerd answers 200 and puts what is wrong with the archive in the stream, in Go's words
    async def scenario(client):
        resp = await client.post("/v1.50/images/load", data=b"this is not a tar" * 100)
        assert resp.status == 200
        assert (await resp.json())["errorDetail"] == {"message": "archive/tar: invalid tar header"}
        truncated = (FIXTURES / "busybox-docker-save.tar").read_bytes()[:1_000_000]
        resp = await client.post("/v1.50/images/load", data=truncated)
        assert resp.status == 200
        assert (await resp.json())["error"] == "unexpected EOF"
        assert h.rows("images") == 0 and h.rows("layers") == 0
    run(h, scenario)


def test_import_and_pull(h):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))

    async def scenario(client):
        resp = await client.post("/v1.50/images/create", data=buf.getvalue(), params=[
            ("fromSrc", "-"), ("repo", "imp"), ("tag", "1"), ("changes", 'CMD ["/hello"]'), ("changes", "ENV X=1")])
        assert resp.status == 200
        status = json.loads((await resp.text()).splitlines()[0])["status"]
        resp = await client.get("/v1.50/images/imp:1/json")
        body = await resp.json()
        assert body["Id"] == status and body["Config"]["Cmd"] == ["/hello"] and body["Config"]["Env"] == ["X=1"]
        resp = await client.post("/v1.50/images/create", params={"fromImage": "alpine", "tag": "3"})
        assert resp.status == 503
        assert "no registry client" in (await resp.json())["message"]  # this app has no distribution router
        resp = await client.post("/v1.50/images/prune", params={"filters": json.dumps({"dangling": ["false"]})})
        assert resp.status == 200 and (await resp.json())["SpaceReclaimed"] > 0
    run(h, scenario)
