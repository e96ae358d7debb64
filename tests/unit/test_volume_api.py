"""The /volumes router on the real service (local driver): Docker's shapes and status codes."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import make_app
from dockyard.api.routers import volumes as router
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.volumes import VolumesService
from dockyard.storage.metadata import Database
from tests.unit.test_volume_service import Events


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="dy-vol-api-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def with_client(root: Path, body):
    async def main():
        config = DaemonConfig(data_root=root / "data", exec_root=root / "exec",
                          plugin_socket_dirs=[root / "plugins"], plugin_spec_dirs=[])
        db = Database(config.db_path)
        svc = VolumesService(config, db, Events())
        client = TestClient(TestServer(make_app(lambda app: router.setup(app, svc))))
        await client.start_server()
        try:
            await body(client, svc)
        finally:
            await client.close()
            db.close()
    asyncio.run(main())


def test_crud_shapes(root):
    async def body(client, svc):
        r = await client.post("/v1.50/volumes/create", json={"Name": "web", "Labels": {"a": "b"}})
        assert r.status == 201
        vol = await r.json()
        assert set(vol) == {"Name", "Driver", "Mountpoint", "Labels", "Scope", "Options", "CreatedAt"}
        assert vol["Options"] is None and vol["Labels"] == {"a": "b"}
        r = await client.post("/volumes/create", data=b"")
        anon = (await r.json())["Name"]
        r = await client.get("/v1.50/volumes", params={"filters": json.dumps({"label": ["a=b"]})})
        listing = await r.json()
        assert [v["Name"] for v in listing["Volumes"]] == ["web"] and listing["Warnings"] is None
        r = await client.get("/v1.50/volumes/web")
        assert (await r.json())["Mountpoint"].endswith("/volumes/web/_data")
        r = await client.get("/v1.50/volumes/nope")
        assert r.status == 404 and (await r.json())["message"] == "get nope: no such volume"
        r = await client.post("/v1.50/volumes/create", json={"Name": "a/b"})
        assert r.status == 400 and "includes invalid characters" in (await r.json())["message"]
        r = await client.post("/v1.50/volumes/create", json={"Name": "xy", "Driver": "nope"})
        assert r.status == 404
        r = await client.get("/v1.50/volumes", params={"filters": json.dumps({"bogus": ["1"]})})
        assert r.status == 400
        r = await client.post("/v1.50/volumes/prune")
        assert (await r.json()) == {"VolumesDeleted": [anon], "SpaceReclaimed": 0}
        r = await client.post("/v1.41/volumes/prune")  # before 1.42 named volumes went too
        assert (await r.json())["VolumesDeleted"] == ["web"]
        r = await client.delete("/v1.50/volumes/web")
        assert r.status == 404
        r = await client.delete("/v1.50/volumes/web", params={"force": "1"})
        assert r.status == 204

    with_client(root, body)


def test_remove_in_use_is_409(root):
    async def body(client, svc):
        from dockyard.apitypes.container import HostConfig
        svc.resolve_mounts("c1", HostConfig(binds=["used:/u"]), None, [], lambda r: r)
        r = await client.delete("/v1.50/volumes/used", params={"force": "true"})
        assert r.status == 409
        assert (await r.json())["message"] == "remove used: volume is in use - [c1]"

    with_client(root, body)
