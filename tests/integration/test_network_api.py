"""The /networks routes over HTTP against a real NetworkService (its own bridges and subnets)."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import make_app
from dockyard.api.routers import networks as networks_router
from tests.compat.openapi import validate
from tests.integration.test_network_sandbox import Env, _free_subnet, cid, env  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root")


def call(env: Env, svc, method: str, path: str, body: object = None) -> tuple[int, object]:
    async def go():
        app = make_app(lambda a: networks_router.setup(a, svc))
        async with TestClient(TestServer(app)) as client:
            resp = await client.request(method, "/v1.50" + path, json=body)
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)
    return env.run(go())


def test_list_and_inspect_shapes(env):
    svc = env.service()
    a = cid()
    info = env.sandbox(svc, a, container_name="web")
    status, listed = call(env, svc, "GET", "/networks")
    assert status == 200
    validate("get", "/networks", 200, listed)
    assert sorted(n["Name"] for n in listed) == ["bridge", "host", "none"]
    assert all(n["Containers"] == {} and n["Scope"] == "local" for n in listed)

    status, bridge = call(env, svc, "GET", "/networks/bridge")
    assert status == 200
    validate("get", "/networks/{id}", 200, bridge)
    assert bridge["Driver"] == "bridge" and bridge["EnableIPv6"] is False
    assert bridge["IPAM"] == {"Driver": "default", "Options": None,
                              "Config": [{"Subnet": str(env.subnet), "Gateway": str(env.subnet.network_address + 1)}]}
    assert bridge["ConfigFrom"] == {"Network": ""}
    ep = bridge["Containers"][a]
    assert ep["Name"] == "web" and ep["IPv4Address"] == info.endpoints[0].ip_address + "/24"
    assert ep["MacAddress"] == info.endpoints[0].mac_address and len(ep["EndpointID"]) == 64

    status, host = call(env, svc, "GET", f"/networks/{listed[[n['Name'] for n in listed].index('host')]['Id'][:12]}")
    assert status == 200 and host["Driver"] == "host" and host["IPAM"]["Config"] == []


def test_filters_and_errors(env):
    svc = env.service()
    flt = lambda f: "/networks?filters=" + json.dumps(f)  # noqa: E731
    assert [n["Name"] for n in call(env, svc, "GET", flt({"name": ["brid"]}))[1]] == ["bridge"]
    assert [n["Name"] for n in call(env, svc, "GET", flt({"driver": {"null": True}}))[1]] == ["none"]
    assert call(env, svc, "GET", flt({"type": ["custom"]}))[1] == []
    assert call(env, svc, "GET", flt({"bogus": ["x"]}))[0] == 400
    assert call(env, svc, "GET", "/networks/nosuch") == (404, {"message": "network nosuch not found"})
    assert call(env, svc, "DELETE", "/networks/bridge") == (
        403, {"message": "bridge is a pre-defined network and cannot be removed"})
    assert call(env, svc, "POST", "/networks/create", {"Name": "x", "Driver": "nosuch"}) == (
        404, {"message": 'plugin "nosuch" not found'})
    assert call(env, svc, "POST", "/networks/create", {"Name": "x", "Driver": "macvlan"})[0] == 400
    assert call(env, svc, "POST", "/networks/create", {"Name": "x", "Driver": "ipvlan"}) == (
        501, {"message": "ipvlan networks are not supported on this host: its kernel has no ipvlan driver"})
    assert call(env, svc, "POST", "/networks/prune") == (200, {"NetworksDeleted": []})


def test_create_and_delete_over_http(env):
    svc = env.service()
    subnet = str(_free_subnet())
    body = {"Name": "h" + cid()[:8], "CheckDuplicate": True, "Driver": "bridge", "Scope": "",
            "EnableIPv6": None, "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet}], "Options": {}},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigOnly": False,
            "ConfigFrom": None, "Options": {}, "Labels": {"k": "v"}}
    status, created = call(env, svc, "POST", "/networks/create", body)
    assert status == 201, created
    validate("post", "/networks/create", 201, created)
    assert created["Warning"] == "" and len(created["Id"]) == 64
    status, shown = call(env, svc, "GET", "/networks/" + body["Name"])
    validate("get", "/networks/{id}", 200, shown)
    assert shown["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1")}]
    assert call(env, svc, "GET", '/networks?filters={"label":["k=v"]}')[1][0]["Id"] == created["Id"]
    assert call(env, svc, "POST", "/networks/create", body)[0] == 409
    assert call(env, svc, "DELETE", "/networks/" + created["Id"][:12]) == (204, None)


def test_prune_until(env):
    svc = env.service()
    body = {"Name": "old" + cid()[:6], "IPAM": {"Config": [{"Subnet": str(_free_subnet())}]}}
    assert call(env, svc, "POST", "/networks/create", body)[0] == 201
    flt = lambda f: "/networks/prune?filters=" + json.dumps(f)  # noqa: E731
    assert call(env, svc, "POST", flt({"until": ["1h"]})) == (200, {"NetworksDeleted": []})  # made just now
    assert call(env, svc, "POST", flt({"until": ["bogus"]}))[0] == 400
    assert call(env, svc, "POST", flt({"until": ["2100-01-01T00:00:00Z"]})) == (200, {"NetworksDeleted": [body["Name"]]})
