"""Published ports against the real kernel: DNAT from an "outside" namespace, the userland proxy
on 127.0.0.1 and from a neighbour container, bound addresses, conflicts, cleanup, restart."""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import subprocess
import sys
import time

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import PortBinding
from dockyard.network import iptables
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)
from tests.integration.test_network_user import create

# A server inside a namespace that answers each TCP connection (or UDP datagram) with the
# address it saw the client come from, so a test can tell the kernel path from the proxy.
SERVER = """
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
if proto == "tcp6":
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(8); print("up", flush=True)
    while True:
        c, a = s.accept(); c.sendall(("from " + a[0]).encode()); c.close()
elif proto == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(8); print("up", flush=True)
    while True:
        c, a = s.accept(); c.sendall(("from " + a[0]).encode()); c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port)); print("up", flush=True)
    while True:
        d, a = s.recvfrom(100); s.sendto(b"echo " + d, a)
"""


class Servers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, netns_path: str, proto: str = "tcp", port: int = 80) -> None:
        """proto: "tcp", "udp", or "tcp6" (IPv6 and IPv4, the client's address as IPv6)."""
        proc = subprocess.Popen(["nsenter", f"--net={netns_path}", sys.executable, "-c", SERVER, proto, str(port)],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout.readline() == "up\n"

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def servers():
    s = Servers()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def outside():
    """A namespace standing for a host elsewhere: a veth to the host, 10.215.x.0/30."""
    name = "dyt-out-" + secrets.token_hex(3)
    host_if = "dyo" + secrets.token_hex(3)
    third = random.randrange(256)
    host_ip, peer_ip = f"10.215.{third}.1", f"10.215.{third}.2"
    try:
        for cmd in (["ip", "netns", "add", name],
                    ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
                    ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
                    ["ip", "link", "set", host_if, "up"],
                    ["ip", "-n", name, "addr", "add", f"{peer_ip}/30", "dev", "eth0"],
                    ["ip", "-n", name, "link", "set", "eth0", "up"],
                    ["ip", "-n", name, "link", "set", "lo", "up"],
                    ["ip", "-n", name, "route", "add", "default", "via", host_ip]):
            subprocess.run(cmd, check=True, capture_output=True)
        yield f"/run/netns/{name}", host_ip, peer_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.recv(100).decode())
"""


def tcp_from(env, netns_path: str | None, host: str, port: int) -> str:
    """Connect while the service's event loop runs (the proxy is served by it)."""
    return env.run(asyncio.to_thread(_tcp_from, netns_path, host, port))


def _tcp_from(netns_path: str | None, host: str, port: int) -> str:
    if netns_path is None:
        with socket.create_connection((host, port), timeout=5) as s:
            return s.recv(100).decode()
    done = in_netns(netns_path, sys.executable, "-c", CLIENT, host, str(port))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def nat_rules(env) -> list[str]:
    chain = iptables.Chains.for_instance(str(env.config.exec_root)).dnat
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith(f"-A {chain} ")]


def publish(env, svc, container_id, bindings, **kw):
    return env.sandbox(svc, container_id, port_bindings={k: [PortBinding(host_ip=ip, host_port=p) for ip, p in v]
                                                         for k, v in bindings.items()}, **kw)


def test_published_port_reachable_by_kernel_path_and_proxy(env, servers, outside):
    svc = env.service()
    a, b = cid(), cid()
    info = publish(env, svc, a, {"80/tcp": [("", "")]}, exposed_ports=["80/tcp", "443/tcp"])
    container_ip = info.endpoints[0].ip_address
    ports = svc.published_ports(a)
    assert ports["443/tcp"] is None
    # no address given: 0.0.0.0 and [::] with one port, as Docker 28 (the proxy relays IPv6)
    binding, binding6 = ports["80/tcp"]
    assert binding.host_ip == "0.0.0.0" and int(binding.host_port) >= 1024
    assert binding6.host_ip == "::" and binding6.host_port == binding.host_port
    host_port = int(binding.host_port)
    settings = svc.endpoint_settings_json(a, "default")
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(host_port)},
                                            {"HostIp": "::", "HostPort": str(host_port)}], "443/tcp": None}
    servers.start(info.netns_path)
    gateway = info.endpoints[0].gateway

    # from the outside namespace: DNAT, the container sees the real client
    out_ns, host_ip, peer_ip = outside
    assert tcp_from(env, out_ns, host_ip, host_port) == f"from {peer_ip}"
    # from the host on 127.0.0.1 and ::1: the userland proxy (which connects from the gateway)
    assert tcp_from(env, None, "127.0.0.1", host_port) == f"from {gateway}"
    assert tcp_from(env, None, "::1", host_port) == f"from {gateway}"
    # from another container on the same bridge, to the host's address
    info_b = env.sandbox(svc, b)
    assert tcp_from(env, info_b.netns_path, gateway, host_port).startswith("from ")
    assert len(nat_rules(env)) == 1 and f"--to-destination {container_ip}:80" in nat_rules(env)[0]

    env.run(svc.release_sandbox(a))
    assert nat_rules(env) == []
    with pytest.raises(OSError):
        tcp_from(env, None, "127.0.0.1", host_port)


def test_port_bound_to_given_address_only_and_conflict(env, servers):
    svc = env.service()
    a, b = cid(), cid()
    info = publish(env, svc, a, {"8080/tcp": [("127.0.0.1", "")]})
    [binding] = svc.published_ports(a)["8080/tcp"]
    port = int(binding.host_port)
    assert binding.host_ip == "127.0.0.1"
    servers.start(info.netns_path, port=8080)
    assert tcp_from(env, None, "127.0.0.1", port).startswith("from ")
    with pytest.raises(OSError):  # never on all interfaces when an address was given
        tcp_from(env, None, info.endpoints[0].gateway, port)
    assert "-d 127.0.0.1/32" in nat_rules(env)[0]

    before = set(env.config.netns_dir.iterdir())
    with pytest.raises(errdefs.System, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
        publish(env, svc, b, {"80/tcp": [("127.0.0.1", str(port))]})
    # nothing half-made: no namespace, address, rule or sandbox
    assert set(env.config.netns_dir.iterdir()) == before
    assert env.db.query("SELECT * FROM ip_allocs WHERE owner = ?", (b,)) == []
    assert len(nat_rules(env)) == 1 and svc.published_ports(b) == {}


def test_port_range_publish_all_and_udp(env, servers):
    svc = env.service()
    a = cid()
    low = random.randrange(42000, 43000)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("0.0.0.0", low))  # the first port of the range is taken: the next one is used
    try:
        info = publish(env, svc, a, {"53/udp": [("", f"{low}-{low + 5}")]},
                       exposed_ports=["53/udp", "7000/tcp"], publish_all=True)
    finally:
        blocker.close()
    ports = svc.published_ports(a)
    assert ports["53/udp"][0].host_port == str(low + 1)
    assert ports["7000/tcp"][0].host_ip == "0.0.0.0" and int(ports["7000/tcp"][0].host_port) > 0
    servers.start(info.netns_path, proto="udp", port=53)
    def exchange() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"hi", ("127.0.0.1", low + 1))
            return s.recvfrom(100)[0]
    assert env.run(asyncio.to_thread(exchange)) == b"echo hi"


def test_bad_port_specs(env):
    svc = env.service()
    with pytest.raises(errdefs.InvalidParameter, match="invalid host port"):
        publish(env, svc, cid(), {"80/tcp": [("", "70000")]})
    with pytest.raises(errdefs.InvalidParameter, match="sctp is not supported"):
        publish(env, svc, cid(), {"80/sctp": [("", "")]})
    with pytest.raises(errdefs.InvalidParameter, match="invalid host IP"):
        publish(env, svc, cid(), {"80/tcp": [("nowhere", "")]})
    assert list(env.config.netns_dir.iterdir()) == [p for p in env.config.netns_dir.iterdir()
                                                    if p.name.startswith(".spare-")]


def test_ports_survive_a_killed_daemon(env, servers):
    svc = env.service()
    a = cid()
    info = publish(env, svc, a, {"80/tcp": [("127.0.0.1", "")]})
    port = int(svc.published_ports(a)["80/tcp"][0].host_port)
    servers.start(info.netns_path)
    # kill -9: the process's sockets close, its iptables rules and namespaces stay
    for sandbox in svc._sandboxes.values():
        svc._serving.stop(sandbox)
    svc._worker.close()
    svc._worker = None
    env.services.remove(svc)
    assert len(nat_rules(env)) == 1

    svc2 = env.service()
    assert nat_rules(env) == []  # a fresh start drops what the dead daemon left
    env.run(svc2.reconcile({a: "web"}))
    assert svc2.published_ports(a)["80/tcp"][0].host_port == str(port)
    assert len(nat_rules(env)) == 1
    deadline = time.monotonic() + 5
    while True:
        try:
            assert tcp_from(env, None, "127.0.0.1", port).startswith("from ")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    env.run(svc2.stop())
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert svc2._chains.suffix not in chains  # stop removes every chain and jump


def test_masquerade_only_where_the_network_asks(env, servers, outside):
    svc = env.service()
    out_ns, host_ip, peer_ip = outside
    servers.start(out_ns, port=9000)
    plain, masq = "p" + cid()[:8], "m" + cid()[:8]
    create(env, svc, plain, str(_free_subnet()))
    create(env, svc, masq, str(_free_subnet()), options={"com.docker.network.bridge.enable_ip_masquerade": "true"})
    info_plain = env.sandbox(svc, cid(), plain)
    info_masq = env.sandbox(svc, cid(), masq)
    info_default = env.sandbox(svc, cid(), "bridge")
    # the outside host routes everything back through the host: it sees who sent the packet
    assert tcp_from(env, info_plain.netns_path, peer_ip, 9000) == f"from {info_plain.endpoints[0].ip_address}"
    assert tcp_from(env, info_masq.netns_path, peer_ip, 9000) == f"from {host_ip}"
    assert tcp_from(env, info_default.netns_path, peer_ip, 9000) == f"from {host_ip}"


def test_without_iptables_the_proxy_serves_alone(env, servers):
    env.config.iptables = False
    svc = env.service()
    a = cid()
    info = publish(env, svc, a, {"80/tcp": [("", "")]})
    port = int(svc.published_ports(a)["80/tcp"][0].host_port)
    servers.start(info.netns_path)
    assert tcp_from(env, None, "127.0.0.1", port) == f"from {info.endpoints[0].gateway}"
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert svc._chains.suffix not in chains


def test_without_userland_proxy_loopback_and_neighbours_are_nated(env, servers):
    env.config.userland_proxy = False
    svc = env.service()
    a, b = cid(), cid()
    info = publish(env, svc, a, {"80/tcp": [("", "")]})
    port = int(svc.published_ports(a)["80/tcp"][0].host_port)
    servers.start(info.netns_path)
    route_localnet = f"/proc/sys/net/ipv4/conf/{env.bridge}/route_localnet"
    assert open(route_localnet).read().strip() == "1"
    # no proxy: 127.0.0.1 reaches the container through DNAT (masqueraded to the gateway)
    assert tcp_from(env, None, "127.0.0.1", port) == f"from {info.endpoints[0].gateway}"
    info_b = env.sandbox(svc, b)
    assert tcp_from(env, info_b.netns_path, info.endpoints[0].gateway, port) == f"from {info.endpoints[0].gateway}"
    assert "! -i" not in nat_rules(env)[0]


def test_ipv6_host_address_of_an_ipv4_container_is_served_by_the_proxy(env, servers):
    svc = env.service()
    a = cid()
    info = publish(env, svc, a, {"80/tcp": [("::1", "")]})
    [binding] = svc.published_ports(a)["80/tcp"]
    assert binding.host_ip == "::1"
    servers.start(info.netns_path)
    assert tcp_from(env, None, "::1", int(binding.host_port)) == f"from {info.endpoints[0].gateway}"
    assert nat_rules(env) == []


def test_without_userland_proxy_an_ipv4_container_gets_no_ipv6_binding(env):
    env.config.userland_proxy = False  # nothing could relay IPv6 to it: moby leaves those out
    svc = env.service()
    a = cid()
    publish(env, svc, a, {"80/tcp": [("::1", ""), ("", "")]})
    assert [b.host_ip for b in svc.published_ports(a)["80/tcp"]] == ["0.0.0.0"]


def test_network_options_host_binding_and_mtu(env):
    svc = env.service()
    name = "o" + cid()[:8]
    create(env, svc, name, str(_free_subnet()), options={
        "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1", "com.docker.network.driver.mtu": "1400"})
    a = cid()
    info = env.sandbox(svc, a, name, port_bindings={"80/tcp": [PortBinding()]})
    assert svc.published_ports(a)["80/tcp"][0].host_ip == "127.0.0.1"
    assert "mtu 1400" in in_netns(info.netns_path, "ip", "link", "show", "eth0").stdout
    bridge = "br-" + svc.find(name).id[:12]
    assert "mtu 1400" in subprocess.run(["ip", "link", "show", bridge], capture_output=True, text=True).stdout
    with pytest.raises(errdefs.InvalidParameter, match="invalid MTU"):
        create(env, svc, "o" + cid()[:8], str(_free_subnet()), options={"com.docker.network.driver.mtu": "x"})
