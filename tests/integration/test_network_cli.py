"""The real docker CLI's network commands against the network routes and a real NetworkService."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from aiohttp import web

from dockyard.api.app import make_app
from dockyard.api.routers import networks as networks_router
from tests.integration.test_network_sandbox import _free_subnet, cid, env  # noqa: F401 (fixture)

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not shutil.which(DOCKER), reason="needs the docker CLI")


@pytest.fixture
def docker(env):
    svc = env.service()
    sock = env.root / "api.sock"

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="OK", headers={"Api-Version": "1.50"})

    def register(app: web.Application) -> None:
        networks_router.setup(app, svc)
        app.router.add_get("/_ping", ping)

    runner = web.AppRunner(make_app(register))
    env.run(runner.setup())
    env.run(web.UnixSite(runner, str(sock)).start())

    def run(*args: str) -> subprocess.CompletedProcess:
        async def go():
            proc = await asyncio.create_subprocess_exec(
                DOCKER, "-H", f"unix://{sock}", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await proc.communicate()
            return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
        return env.run(go())  # the CLI runs while the loop serves it

    try:
        yield run, svc
    finally:
        env.run(runner.cleanup())


def test_network_commands(env, docker):
    run, svc = docker
    env.sandbox(svc, cid(), container_name="web")
    listed = run("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split("\n")[:-1]) == ["bridge bridge local", "host host local", "none null local"]
    shown = run("network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}} {{index .Options "
                "\"com.docker.network.bridge.name\"}}", "bridge")
    assert shown.stdout.strip() == f"web {env.bridge}"

    subnet = str(_free_subnet())
    made = run("network", "create", "--subnet", subnet, "--label", "a=b", "mynet")
    assert made.returncode == 0 and len(made.stdout.strip()) == 64, made.stderr
    assert run("network", "ls", "-q", "-f", "type=custom", "--no-trunc").stdout.strip() == made.stdout.strip()
    assert run("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "mynet").stdout.strip() == subnet
    again = run("network", "create", "mynet")
    assert again.returncode == 1 and "network with name mynet already exists" in again.stderr
    assert run("network", "rm", "mynet").stdout.strip() == "mynet"
    refused = run("network", "rm", "host")
    assert "host is a pre-defined network and cannot be removed" in refused.stderr
    missing = run("network", "inspect", "nosuch")
    assert missing.returncode == 1 and "network nosuch not found" in missing.stderr
