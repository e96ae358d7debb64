"""macvlan networks on a veth parent the test makes (its peer, in a namespace, stands for the
LAN's gateway), --ip-range / --aux-address, and ipvlan reported by what the kernel has."""

from __future__ import annotations

import random
import secrets
import subprocess

import pytest

from dockyard import errdefs
from dockyard.apitypes.network import IPAM, CreateRequest, IPAMConfig
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)


@pytest.fixture
def lan():
    """A veth whose host end is the parent; the peer, in its own namespace, is the LAN's router."""
    ns = "dyt-lan-" + secrets.token_hex(3)
    parent = "dyp" + secrets.token_hex(3)
    third = random.randrange(256)
    try:
        for cmd in (["ip", "netns", "add", ns],
                    ["ip", "link", "add", parent, "type", "veth", "peer", "name", "eth0", "netns", ns],
                    ["ip", "link", "set", parent, "up"],
                    ["ip", "-n", ns, "addr", "add", f"10.216.{third}.1/24", "dev", "eth0"],
                    ["ip", "-n", ns, "link", "set", "eth0", "up"]):
            subprocess.run(cmd, check=True, capture_output=True)
        yield parent, f"/run/netns/{ns}", f"10.216.{third}"
    finally:
        subprocess.run(["ip", "link", "del", parent], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_macvlan_on_a_veth_parent(env, lan):
    parent, router_ns, prefix = lan
    svc = env.service()
    name = "mv" + cid()[:6]
    request = CreateRequest(name=name, driver="macvlan", options={"parent": parent},
                            ipam=IPAM(config=[IPAMConfig(subnet=f"{prefix}.0/24", gateway=f"{prefix}.1")]))
    net_id = env.run(svc.create(request)).id
    shown = svc.inspect(name)
    assert shown.driver == "macvlan" and shown.options == {"parent": parent}
    with pytest.raises(errdefs.Forbidden, match=f"already using parent interface {parent}"):
        env.run(svc.create(CreateRequest(name=name + "2", driver="macvlan", options={"parent": parent})))
    with pytest.raises(errdefs.InvalidParameter, match="parent interface was not found on the host: nosuch0"):
        env.run(svc.create(CreateRequest(name=name + "3", driver="macvlan", options={"parent": "nosuch0"})))

    a, b = cid(), cid()
    info_a = env.sandbox(svc, a, name, container_name="mva")
    info_b = env.sandbox(svc, b, name, container_name="mvb")
    ip_a, ip_b = info_a.endpoints[0].ip_address, info_b.endpoints[0].ip_address
    assert ip_a == f"{prefix}.2" and ip_b == f"{prefix}.3"
    link = in_netns(info_a.netns_path, "ip", "-d", "-o", "link", "show", "eth0").stdout
    assert "macvlan mode bridge" in link and info_a.endpoints[0].mac_address in link
    assert f"default via {prefix}.1" in in_netns(info_a.netns_path, "ip", "route").stdout
    for src, dst in ((info_a.netns_path, ip_b), (info_a.netns_path, f"{prefix}.1"), (router_ns, ip_a)):
        done = in_netns(src, "busybox", "ping", "-c", "1", "-W", "2", dst)
        assert done.returncode == 0, (src, dst, done.stdout)
    # no port publishing on macvlan: Docker ignores the request
    assert svc.published_ports(a) == {}

    env.run(svc.release_sandbox(a))
    env.run(svc.release_sandbox(b))
    env.run(svc.remove(net_id))
    assert subprocess.run(["ip", "link", "show", parent], capture_output=True).returncode == 0  # not ours


def test_ip_range_aux_addresses_and_ipvlan(env):
    svc = env.service()
    subnet = _free_subnet()
    base = subnet.network_address
    name = "r" + cid()[:8]
    config = IPAMConfig(subnet=str(subnet), ip_range=f"{base + 64}/28",
                        auxiliary_addresses={"router": str(base + 66)})
    env.run(svc.create(CreateRequest(name=name, ipam=IPAM(config=[config]))))
    shown = svc.inspect(name).ipam.config[0]
    assert shown.ip_range == f"{base + 64}/28" and shown.auxiliary_addresses == {"router": str(base + 66)}
    assert shown.gateway == str(base + 65)  # as Docker: the first address of the range
    got = [env.sandbox(svc, cid(), name).endpoints[0].ip_address for _ in range(2)]
    assert got == [str(base + 67), str(base + 68)]  # the gateway and the aux address skipped

    with pytest.raises(errdefs.InvalidParameter, match="is not within subnet"):
        env.run(svc.create(CreateRequest(name="x" + cid()[:6], ipam=IPAM(config=[IPAMConfig(
            subnet=str(_free_subnet()), ip_range="192.0.2.0/28")]))))
    with pytest.raises(errdefs.InvalidParameter, match="no matching subnet for aux-address"):
        env.run(svc.create(CreateRequest(name="x" + cid()[:6], ipam=IPAM(config=[IPAMConfig(
            subnet=str(_free_subnet()), auxiliary_addresses={"a": "192.0.2.1"})]))))

    has_ipvlan = svc._worker.submit(svc._worker.link_kind_supported, "ipvlan").result()
    assert svc._worker.submit(svc._worker.link_kind_supported, "macvlan").result()
    with pytest.raises(errdefs.NotImplementedFeature,
                       match="not supported yet" if has_ipvlan else "its kernel has no ipvlan driver"):
        env.run(svc.create(CreateRequest(name="iv" + cid()[:6], driver="ipvlan")))
    assert {n.name for n in svc.list({})} == {"bridge", "host", "none", name}
