"""com.docker.network.bridge.enable_icc=false (and the daemon's --icc=false for the default
bridge): containers of one bridge cannot reach each other, but still reach the gateway, the
outside and published ports. Real traffic between namespaces the tests make."""

from __future__ import annotations

import subprocess

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import PortBinding
from dockyard.network import iptables
from tests.integration.test_network_ports import outside, servers, tcp_from  # noqa: F401 (fixtures)
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)
from tests.integration.test_network_user import create

ICC = "com.docker.network.bridge.enable_icc"


def reaches(env, netns_path: str, host: str, port: int) -> bool:
    try:
        return tcp_from(env, netns_path, host, port).startswith("from ")
    except AssertionError:  # the client could not connect
        return False


def check_icc_off(env, svc, network: str, servers, outside) -> None:
    a, b, c = cid(), cid(), cid()
    info_a = env.sandbox(svc, a, network)
    info_b = env.sandbox(svc, b, network)
    info_c = env.sandbox(svc, c, network, port_bindings={"80/tcp": [PortBinding()]})
    servers.start(info_b.netns_path)
    servers.start(info_c.netns_path)
    gateway = info_a.endpoints[0].gateway
    # no bridged traffic between two containers, whatever the protocol
    assert not reaches(env, info_a.netns_path, info_b.endpoints[0].ip_address, 80)
    ping = in_netns(info_a.netns_path, "busybox", "ping", "-c", "1", "-W", "1", info_b.endpoints[0].ip_address)
    assert ping.returncode != 0
    # the gateway (the host) answers
    assert in_netns(info_a.netns_path, "busybox", "ping", "-c", "1", "-W", "3", gateway).returncode == 0
    # a published port of a neighbour, through the host's address
    port = int(svc.published_ports(c)["80/tcp"][0].host_port)
    assert reaches(env, info_a.netns_path, gateway, port)
    # the outside (a namespace routed by the host)
    out_ns, _host_ip, peer_ip = outside
    servers.start(out_ns, port=9000)
    assert reaches(env, info_a.netns_path, peer_ip, 9000)


def test_icc_false_on_a_user_network(env, servers, outside):
    svc = env.service()
    name = "icc" + cid()[:6]
    create(env, svc, name, str(_free_subnet()), options={ICC: "false"})
    bridge = "br-" + svc.find(name).id[:12]
    chains = iptables.Chains.for_instance(str(env.config.exec_root))
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    assert f"-A {chains.forward} -i {bridge} -o {bridge} -j DROP" in saved
    assert open("/proc/sys/net/bridge/bridge-nf-call-iptables").read().strip() == "1"
    check_icc_off(env, svc, name, servers, outside)

    # the default: containers of one network talk
    other = "icc" + cid()[:6]
    create(env, svc, other, str(_free_subnet()))
    info_a, info_b = env.sandbox(svc, cid(), other), env.sandbox(svc, cid(), other)
    servers.start(info_b.netns_path)
    assert reaches(env, info_a.netns_path, info_b.endpoints[0].ip_address, 80)

    with pytest.raises(errdefs.InvalidParameter, match="enable_icc"):
        create(env, svc, "icc" + cid()[:6], str(_free_subnet()), options={ICC: "maybe"})


def test_daemon_icc_false_for_the_default_bridge(env, servers, outside):
    env.config.icc = False
    svc = env.service()
    assert svc.inspect("bridge").options[ICC] == "false"
    check_icc_off(env, svc, "bridge", servers, outside)
