"""User-defined bridge networks: create, attach, isolate from each other's names, remove, prune."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from dockyard import errdefs
from dockyard.apitypes.network import IPAM, CreateRequest, IPAMConfig
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def create(env, svc, name: str, subnet: str | None = None, **kw):
    ipam = IPAM(config=[IPAMConfig(subnet=subnet)]) if subnet else None
    return env.run(svc.create(CreateRequest(name=name, ipam=ipam, **kw)))


def test_create_attach_remove(env):
    svc = env.service()
    subnet = _free_subnet()
    name = "n" + secrets.token_hex(4)
    net_id = create(env, svc, name, str(subnet), labels={"team": "a"}).id
    record = svc.inspect(name)
    bridge = f"br-{net_id[:12]}"
    assert record.id == net_id and record.driver == "bridge" and record.labels == {"team": "a"}
    assert record.ipam.config[0].subnet == str(subnet) and record.options == {}
    assert f"inet {subnet.network_address + 1}/24" in subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", bridge], capture_output=True, text=True).stdout
    assert ("network", "create", net_id, {"name": name, "type": "bridge"}) in env.events.seen

    a, b = cid(), cid()
    info_a = env.sandbox(svc, a, name)
    info_b = env.sandbox(svc, b, net_id[:12])  # by ID prefix too
    assert info_a.endpoints[0].network_name == name
    assert info_a.endpoints[0].ip_address == str(subnet.network_address + 2)
    ping = in_netns(info_a.netns_path, "busybox", "ping", "-c", "1", "-W", "3", info_b.endpoints[0].ip_address)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert set(svc.inspect(name).containers) == {a, b}
    assert svc.endpoint_settings_json(a, name)["Networks"][name]["IPAddress"] == info_a.endpoints[0].ip_address

    with pytest.raises(errdefs.Conflict, match=f"network with name {name} already exists"):
        create(env, svc, name)
    with pytest.raises(errdefs.Forbidden, match="Pool overlaps"):
        create(env, svc, "other" + secrets.token_hex(2), str(subnet))
    with pytest.raises(errdefs.Forbidden, match="has active endpoints"):
        env.run(svc.remove(name))
    for c in (a, b):
        env.run(svc.release_sandbox(c))
    env.run(svc.remove(name))
    assert not link_exists(bridge)
    with pytest.raises(errdefs.NotFound):
        svc.inspect(name)
    assert env.events.seen[-1][:2] == ("network", "destroy")


def test_internal_network_has_no_default_route(env):
    svc = env.service()
    name = "i" + secrets.token_hex(4)
    create(env, svc, name, str(_free_subnet()), internal=True)
    info = env.sandbox(svc, cid(), name)
    assert in_netns(info.netns_path, "ip", "route", "show", "default").stdout == ""
    assert svc.inspect(name).internal is True


def test_pool_subnet_restart_and_prune(env):
    svc = env.service()
    pool = _free_subnet()
    env.config.default_address_pools = [{"base": str(pool), "size": 26}]
    first = create(env, svc, "p" + secrets.token_hex(4)).id
    second = create(env, svc, "q" + secrets.token_hex(4)).id
    assert svc.inspect(first).ipam.config[0].subnet == f"{pool.network_address}/26"
    assert svc.inspect(second).ipam.config[0].subnet == f"{pool.network_address + 64}/26"
    user = cid()
    env.sandbox(svc, user, second)
    env.run(svc.stop())

    subprocess.run(["ip", "link", "del", f"br-{first[:12]}"], check=True)  # lost, e.g. by a reboot
    again = env.service()
    assert link_exists(f"br-{first[:12]}")  # made again from the record
    env.run(again.reconcile([user]))
    assert [n.name for n in again.list({"type": ["custom"], "dangling": ["true"]})] == [again.inspect(first).name]
    dangling = again.inspect(first).name
    assert env.run(again.prune({})) == [dangling]
    assert not link_exists(f"br-{first[:12]}")
    assert link_exists(f"br-{second[:12]}")  # in use: kept
    with pytest.raises(errdefs.NotFound):
        again.inspect(first)


def test_create_rejects_what_is_not_supported(env):
    svc = env.service()
    with pytest.raises(errdefs.NotFound, match='plugin "overlay" not found'):
        create(env, svc, "x" + secrets.token_hex(3), driver="overlay")
    with pytest.raises(errdefs.InvalidParameter, match="invalid network name"):
        create(env, svc, "-bad")
    auto = svc.inspect(create(env, svc, "v6" + secrets.token_hex(3), enable_ipv6=True).id).ipam.config
    assert auto[1].subnet.startswith("fd") and auto[1].subnet.endswith("::/64")  # a unique-local /64
    with pytest.raises(errdefs.NotImplementedFeature, match="IPv6-only"):
        create(env, svc, "v6" + secrets.token_hex(3), enable_ipv4=False)
    with pytest.raises(errdefs.Forbidden, match="pre-defined"):
        env.run(svc.remove("none"))

