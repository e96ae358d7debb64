"""The containers router over a real unix socket, with the service on fakes: the docker run
flow (create -> attach with hijack -> wait -> start -> output), half-close, errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from dockyard.api.app import make_app
from dockyard.api.routers import containers as router
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers.service import ContainerService
from dockyard.storage.metadata import Database
from tests.unit.containers_fakes import FakeEvents, FakeImages, FakeNetworks, FakeShims, FakeVolumes


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="dy-ctrapi-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def serve(root: Path, shims: FakeShims):
    config = DaemonConfig(data_root=root / "data", exec_root=root / "exec")
    db = Database(config.db_path)
    svc = ContainerService(config, db, FakeImages(root / "img"), FakeNetworks(), shims, FakeEvents(),
                           FakeVolumes())
    app = make_app(lambda a: router.setup(a, svc))
    runner = web.AppRunner(app)
    await runner.setup()
    sock = str(root / "api.sock")
    await web.UnixSite(runner, sock).start()
    return runner, db, sock


async def request(sock: str, method: str, path: str, body: bytes = b"", headers: str = ""):
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(body)}\r\n"
                 f"Content-Type: application/json\r\n{headers}\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head.decode()


async def simple(sock: str, method: str, path: str, body: dict | None = None):
    reader, writer, head = await request(sock, method, path, json.dumps(body).encode() if body else b"",
                                         "Connection: close\r\n")
    data = await reader.read()
    writer.close()
    status = int(head.split()[1])
    if "Transfer-Encoding: chunked" in head:
        out, rest = b"", data
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            out, rest = out + rest[:n], rest[n + 2:]
        data = out
    return status, data


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_docker_run_flow(root):
    async def flow():
        runner, db, sock = await serve(root, FakeShims())
        try:
            status, data = await simple(sock, "POST", "/v1.50/containers/create?name=web",
                                        {"Image": "busybox", "AttachStdout": True, "AttachStderr": True,
                                         "HostConfig": {"NetworkMode": "default"}})
            assert status == 201, data
            cid = json.loads(data)["Id"]
            assert json.loads(data)["Warnings"] == []
            reader, writer, head = await request(
                sock, "POST", f"/v1.50/containers/{cid}/attach?stream=1&stdout=1&stderr=1",
                headers="Connection: Upgrade\r\nUpgrade: tcp\r\n")
            assert head.startswith("HTTP/1.1 101 UPGRADED")
            assert "application/vnd.docker.multiplexed-stream" in head
            assert "Transfer-Encoding" not in head
            wreader, wwriter, whead = await request(sock, "POST", f"/v1.50/containers/{cid}/wait?condition=next-exit")
            assert whead.startswith("HTTP/1.1 200")  # headers before the container even started
            status, _ = await simple(sock, "POST", f"/v1.50/containers/{cid}/start")
            assert status == 204
            output = await asyncio.wait_for(reader.read(), 5)
            assert frames(output) == [(1, b"hello\n"), (2, b"oops\n")]
            waited = await asyncio.wait_for(wreader.readuntil(b"0\r\n\r\n"), 5)  # kept alive
            assert b'{"StatusCode":0' in waited
            for w in (writer, wwriter):
                w.close()
            status, data = await simple(sock, "GET", f"/v1.50/containers/{cid}/json")
            assert json.loads(data)["State"]["Status"] == "exited"
            status, data = await simple(sock, "GET", "/v1.50/containers/json?all=1")
            assert json.loads(data)[0]["Names"] == ["/web"]
            status, data = await simple(sock, "POST", f"/v1.50/containers/{cid}/start")
            assert status == 204
            status, data = await simple(sock, "DELETE", "/v1.50/containers/web?force=1")
            assert status == 204
        finally:
            await runner.cleanup()
            db.close()

    asyncio.run(flow())


def test_half_close_keeps_output(root):
    shims = FakeShims()
    shims.echo, shims.output, shims.exit_code = True, [], None

    async def flow():
        runner, db, sock = await serve(root, shims)
        try:
            status, data = await simple(sock, "POST", "/containers/create",
                                        {"Image": "busybox", "OpenStdin": True, "StdinOnce": True,
                                         "AttachStdin": True})
            cid = json.loads(data)["Id"]
            reader, writer, head = await request(
                sock, "POST", f"/v1.50/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1",
                headers="Connection: Upgrade\r\nUpgrade: tcp\r\n")
            assert head.startswith("HTTP/1.1 101")
            assert (await simple(sock, "POST", f"/containers/{cid}/start"))[0] == 204
            writer.write(b"hi\n")
            await writer.drain()
            writer.write_eof()  # docker run -i: CloseWrite after stdin ends
            output = await asyncio.wait_for(reader.read(), 5)
            assert frames(output) == [(1, b"hi\n")]
            writer.close()
        finally:
            await runner.cleanup()
            db.close()

    asyncio.run(flow())


def test_errors(root):
    async def flow():
        runner, db, sock = await serve(root, FakeShims())
        try:
            status, data = await simple(sock, "POST", "/v1.50/containers/create", {"Image": "nope"})
            assert (status, json.loads(data)) == (404, {"message": "No such image: nope:latest"})
            status, data = await simple(sock, "POST", "/v1.50/containers/create",
                                        {"Image": "busybox", "HostConfig": {"Memory": 1000}})
            assert (status, json.loads(data)) == (400, {"message": "Minimum memory limit allowed is 6MB"})
            status, data = await simple(sock, "POST", "/v1.50/containers/nope/start")
            assert (status, json.loads(data)) == (404, {"message": "No such container: nope"})
            status, data = await simple(sock, "POST", "/v1.50/containers/create", {"Image": "busybox"})
            cid = json.loads(data)["Id"]
            status, data = await simple(sock, "POST", f"/v1.50/containers/{cid}/kill")
            assert (status, json.loads(data)) == (409, {"message": f"Container {cid} is not running"})
            status, _ = await simple(sock, "POST", f"/v1.50/containers/{cid}/stop")
            assert status == 304
            status, data = await simple(sock, "POST", f"/v1.50/containers/{cid}/wait")
            assert json.loads(data) == {"StatusCode": 0, "Error": None}
            status, data = await simple(sock, "GET", f"/v1.50/containers/{cid}/logs?stdout=1")
            assert status == 200 and data == b""
        finally:
            await runner.cleanup()
            db.close()

    asyncio.run(flow())


def test_attach_websocket(root):
    shims = FakeShims()
    shims.echo, shims.output, shims.exit_code = True, [(1, b"hello\n")], None

    async def flow():
        import aiohttp
        runner, db, sock = await serve(root, shims)
        try:
            status, data = await simple(sock, "POST", "/containers/create", {"Image": "busybox", "OpenStdin": True})
            cid = json.loads(data)["Id"]
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as http:
                async with http.ws_connect(f"http://d/v1.50/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1") as ws:
                    assert (await simple(sock, "POST", f"/containers/{cid}/start"))[0] == 204
                    assert (await asyncio.wait_for(ws.receive_bytes(), 5)) == b"hello\n"
                    await ws.send_bytes(b"typed\n")
                    assert (await asyncio.wait_for(ws.receive_bytes(), 5)) == b"typed\n"
            assert shims.handles[cid].stdin == [b"typed\n"]
            await simple(sock, "DELETE", f"/containers/{cid}?force=1")
        finally:
            await runner.cleanup()
            db.close()

    asyncio.run(flow())
