"""--ipv6 bridge networks: dual-stack bridge and endpoints, static --ip6, inspect shapes, connect,
restart."""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess

import pytest

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointIPAMConfig, EndpointSettings, PortBinding
from dockyard.apitypes.network import IPAM, CreateRequest, IPAMConfig
from dockyard.network import iptables
from tests.compat.openapi import validate
from tests.integration.test_network_ports import servers, tcp_from  # noqa: F401 (fixture)
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)


def v6_subnet() -> str:
    return f"fd{random.randrange(256):02x}:{random.randrange(65536):x}:{random.randrange(65536):x}::/64"


def test_dual_stack_network(env):
    svc = env.service()
    name = "six" + cid()[:6]
    subnet4, subnet6 = str(_free_subnet()), v6_subnet()
    prefix = subnet6.split("::")[0]
    env.run(svc.create(CreateRequest(name=name, enable_ipv6=True, ipam=IPAM(config=[
        IPAMConfig(subnet=subnet4), IPAMConfig(subnet=subnet6)]))))
    shown = svc.inspect(name)
    assert shown.enable_ipv6 is True
    assert [(c.subnet, c.gateway) for c in shown.ipam.config][1] == (subnet6, f"{prefix}::1")
    bridge = shown.id[:12]
    shown_addr = subprocess.run(["ip", "-6", "addr", "show", "dev", f"br-{bridge}"], capture_output=True, text=True)
    assert f"{prefix}::1/64" in shown_addr.stdout

    a, b = cid(), cid()
    info_a = env.sandbox(svc, a, name, container_name="six-a")
    info_b = env.sandbox(svc, b, name, container_name="six-b", endpoint_config=EndpointSettings(
        ipam_config=EndpointIPAMConfig(ipv6_address=f"{prefix}::99")))
    ep_a, ep_b = info_a.endpoints[0], info_b.endpoints[0]
    assert ep_a.ipv6_address == f"{prefix}::2" and ep_a.ipv6_prefix_len == 64 and ep_a.ipv6_gateway == f"{prefix}::1"
    assert ep_b.ipv6_address == f"{prefix}::99"
    assert f"default via {prefix}::1" in in_netns(info_a.netns_path, "ip", "-6", "route").stdout
    ping = in_netns(info_a.netns_path, "busybox", "ping", "-6", "-c", "1", "-W", "3", ep_b.ipv6_address)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    settings = svc.endpoint_settings_json(a, name)["Networks"][name]
    assert settings["GlobalIPv6Address"] == ep_a.ipv6_address and settings["IPv6Gateway"] == f"{prefix}::1"
    assert svc.inspect(name).containers[a].ipv6_address == f"{prefix}::2/64"
    validate("get", "/networks/{id}", 200, msgspec.to_builtins(svc.inspect(name)))

    with pytest.raises(errdefs.Forbidden, match="Address already in use"):
        env.sandbox(svc, cid(), name, endpoint_config=EndpointSettings(
            ipam_config=EndpointIPAMConfig(ipv6_address=f"{prefix}::99")))
    with pytest.raises(errdefs.InvalidParameter, match="IPv6 enabled"):
        env.sandbox(svc, cid(), "bridge", endpoint_config=EndpointSettings(
            ipam_config=EndpointIPAMConfig(ipv6_address=f"{prefix}::98")))

    # a restarted daemon knows both addresses; a released one frees both
    env.run(svc.stop())
    svc2 = env.service()
    env.run(svc2.reconcile({a: "six-a", b: "six-b"}))
    assert svc2.endpoint_settings_json(a, name)["Networks"][name]["GlobalIPv6Address"] == f"{prefix}::2"
    env.run(svc2.release_sandbox(b))
    assert env.db.query("SELECT COUNT(*) FROM ip_allocs WHERE owner = ?", (b,)) == [(0,)]
    c = cid()
    info_c = env.sandbox(svc2, c, name, endpoint_config=EndpointSettings(
        ipam_config=EndpointIPAMConfig(ipv6_address=f"{prefix}::99")))  # free again
    assert info_c.endpoints[0].ipv6_address == f"{prefix}::99"


def test_aaaa_from_the_embedded_dns(env):
    svc = env.service()
    name = "six" + cid()[:6]
    subnet6 = v6_subnet()
    env.run(svc.create(CreateRequest(name=name, enable_ipv6=True, ipam=IPAM(config=[
        IPAMConfig(subnet=str(_free_subnet())), IPAMConfig(subnet=subnet6)]))))
    info_a = env.sandbox(svc, cid(), name, container_name="dual")
    info_b = env.sandbox(svc, cid(), name, container_name="asker")
    out = env.run(asyncio.to_thread(in_netns, info_b.netns_path, "busybox", "nslookup", "-type=AAAA", "dual",
                                    "127.0.0.11"))
    assert info_a.endpoints[0].ipv6_address in out.stdout, out.stdout + out.stderr


def test_ipv6_networks_isolated_by_ip6tables(env):
    svc = env.service()
    name = "six" + cid()[:6]
    env.run(svc.create(CreateRequest(name=name, enable_ipv6=True, internal=True)))
    bridge = "br-" + svc.find(name).id[:12]
    chains = iptables.Chains.for_instance(str(env.config.exec_root))
    saved = subprocess.run(["ip6tables-save", "-t", "filter"], capture_output=True, text=True).stdout
    assert f"-A FORWARD -j {chains.forward}" in saved
    assert f"-A {chains.iso1} -i {bridge} ! -o {bridge} -j {chains.iso2}" in saved
    assert f"-A {chains.forward} ! -i {bridge} -o {bridge} -j DROP" in saved  # --internal
    env.run(svc.remove(name))
    assert bridge not in subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout
    env.run(svc.stop())
    assert chains.suffix not in subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout


@pytest.fixture
def outside6():
    """A namespace standing for an IPv6 host elsewhere: a veth to the host, fdXX:YYYY::/64."""
    name = "dyt-out6-" + secrets.token_hex(3)
    host_if = "dyo" + secrets.token_hex(3)
    prefix = f"fd{random.randrange(256):02x}:{random.randrange(65536):x}:{random.randrange(65536):x}:"
    host_ip, peer_ip = f"{prefix}:1", f"{prefix}:2"
    try:
        for cmd in (["ip", "netns", "add", name],
                    ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
                    ["ip", "addr", "add", f"{host_ip}/64", "dev", host_if, "nodad"],
                    ["ip", "link", "set", host_if, "up"],
                    ["ip", "-n", name, "addr", "add", f"{peer_ip}/64", "dev", "eth0", "nodad"],
                    ["ip", "-n", name, "link", "set", "eth0", "up"],
                    ["ip", "-n", name, "link", "set", "lo", "up"],
                    ["ip", "-n", name, "-6", "route", "add", "default", "via", host_ip]):
            subprocess.run(cmd, check=True, capture_output=True)
        yield f"/run/netns/{name}", host_ip, peer_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def nat6_rules(env) -> list[str]:
    chains = iptables.Chains.for_instance(str(env.config.exec_root))
    out = subprocess.run(["ip6tables-save", "-t", "nat"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if chains.suffix in line and line.startswith("-A DOCKYARD")]


def test_ipv6_masquerade_and_published_ports(env, servers, outside6):
    svc = env.service()
    out_ns, host6, peer6 = outside6
    servers.start(out_ns, "tcp6", 9000)
    masq, plain = "six" + cid()[:6], "six" + cid()[:6]
    subnet6 = v6_subnet()
    env.run(svc.create(CreateRequest(name=masq, enable_ipv6=True, options={
        "com.docker.network.bridge.enable_ip_masquerade": "true"}, ipam=IPAM(config=[
            IPAMConfig(subnet=str(_free_subnet())), IPAMConfig(subnet=subnet6)]))))
    env.run(svc.create(CreateRequest(name=plain, enable_ipv6=True, ipam=IPAM(config=[
        IPAMConfig(subnet=str(_free_subnet())), IPAMConfig(subnet=v6_subnet())]))))
    assert open("/proc/sys/net/ipv6/conf/all/forwarding").read().strip() == "1"
    bridge = "br-" + svc.find(masq).id[:12]
    assert any(f"-s {subnet6} ! -o {bridge} -j MASQUERADE" in r for r in nat6_rules(env))

    # outbound: masqueraded to the host's address where the network asks, else the container's own
    info_m = env.sandbox(svc, cid(), masq)
    info_p = env.sandbox(svc, cid(), plain)
    assert tcp_from(env, info_m.netns_path, peer6, 9000) == f"from {host6}"
    assert tcp_from(env, info_p.netns_path, peer6, 9000) == f"from {info_p.endpoints[0].ipv6_address}"

    # -p 80: 0.0.0.0 and [::] with one port; [::] is DNATed by ip6tables to the container's IPv6
    # address (the outside host is seen as itself), ::1 is served by the proxy
    web = cid()
    info_w = env.sandbox(svc, web, masq, port_bindings={"80/tcp": [PortBinding()]})
    servers.start(info_w.netns_path, "tcp6")
    v4, v6 = svc.published_ports(web)["80/tcp"]
    assert (v4.host_ip, v6.host_ip) == ("0.0.0.0", "::") and v4.host_port == v6.host_port
    port = int(v6.host_port)
    container6 = info_w.endpoints[0].ipv6_address
    assert any(f"--to-destination [{container6}]:80" in r for r in nat6_rules(env))
    assert tcp_from(env, out_ns, host6, port) == f"from {peer6}"
    assert tcp_from(env, None, "::1", port) == f"from {info_w.endpoints[0].ipv6_gateway}"
    assert tcp_from(env, None, "127.0.0.1", port) == f"from ::ffff:{info_w.endpoints[0].gateway}"

    env.run(svc.release_sandbox(web))
    assert not any("DNAT" in r for r in nat6_rules(env))
    env.run(svc.stop())
    assert nat6_rules(env) == []
