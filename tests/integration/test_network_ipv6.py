"""--ipv6 bridge networks: dual-stack bridge and endpoints, static --ip6, inspect shapes, connect,
restart."""

from __future__ import annotations

import asyncio
import random
import subprocess

import pytest

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointIPAMConfig, EndpointSettings
from dockyard.apitypes.network import IPAM, CreateRequest, IPAMConfig
from dockyard.network import iptables
from tests.compat.openapi import validate
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
