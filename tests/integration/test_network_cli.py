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


def test_connect_disconnect_and_create_options(env, docker):
    run, svc = docker
    a = cid()
    env.sandbox(svc, a, container_name="web")
    subnet = _free_subnet()
    base = subnet.network_address
    made = run("network", "create", "--subnet", str(subnet), "--ip-range", f"{base + 128}/25",
               "--aux-address", f"rtr={base + 130}", "--internal", "--attachable", "-o",
               "com.docker.network.bridge.name=dyc" + a[:6], "cnet")
    assert made.returncode == 0, made.stderr
    shown = run("network", "inspect", "-f", "{{json .IPAM.Config}} {{.Internal}} {{.Attachable}}", "cnet").stdout
    assert shown.strip() == (f'[{{"Subnet":"{subnet}","IPRange":"{base + 128}/25","Gateway":"{base + 129}",'
                             f'"AuxiliaryAddresses":{{"rtr":"{base + 130}"}}}}] true true')
    overlap = run("network", "create", "--subnet", str(subnet), "other")
    assert overlap.returncode == 1 and "Pool overlaps with other one on this address space" in overlap.stderr

    done = run("network", "connect", "--alias", "api", "--ip", str(base + 200), "cnet", "web")
    assert done.returncode == 0, done.stderr
    members = run("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "cnet")
    assert members.stdout.strip() == f"web {base + 200}/24"
    twice = run("network", "connect", "cnet", "web")
    assert twice.returncode == 1 and "endpoint with name web already exists in network cnet" in twice.stderr
    assert run("network", "disconnect", "cnet", "web").returncode == 0
    again = run("network", "disconnect", "cnet", "web")
    assert again.returncode == 1 and f"container {a} is not connected to network cnet" in again.stderr
    assert run("network", "rm", "cnet").returncode == 0

    unknown = run("network", "create", "-d", "nosuch", "x")
    assert unknown.returncode == 1 and 'plugin "nosuch" not found' in unknown.stderr
    ipvlan = run("network", "create", "-d", "ipvlan", "x")
    assert ipvlan.returncode == 1 and "ipvlan networks are not supported" in ipvlan.stderr
