"""The embedded DNS of user-defined networks, queried from inside real namespaces; isolation
between networks and --internal."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading

import pytest

from dockyard.apitypes.container import EndpointSettings
from dockyard.network import dns
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)
from tests.integration.test_network_user import create

# Queries 127.0.0.11 for each name in argv ("tcp:" prefix: over TCP); prints [rcode, [addresses]].
CLIENT = r"""
import json, random, socket, struct, sys
def query(name):
    tcp = name.startswith("tcp:")
    name = name[4:] if tcp else name
    qid = random.randrange(65536)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    msg += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    if tcp:
        s = socket.create_connection(("127.0.0.11", 53), timeout=5)
        s.sendall(struct.pack("!H", len(msg)) + msg)
        n = struct.unpack("!H", s.recv(2))[0]
        data = b""
        while len(data) < n:
            data += s.recv(n - len(data))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
        s.sendto(msg, ("127.0.0.11", 53)); data = s.recv(4096)
    rid, flags, qd, an = struct.unpack_from("!HHHH", data)
    assert rid == qid
    off = len(msg)
    out = []
    for _ in range(an):
        off += 2
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, off); off += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(data[off:off + rdlen]))
        off += rdlen
    return [flags & 0xF, out]
print(json.dumps([query(n) for n in sys.argv[1:]]))
"""


def resolve(env, netns_path: str, *names: str) -> list:
    done = env.run(asyncio.to_thread(in_netns, netns_path, sys.executable, "-c", CLIENT, *names))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def upstream():
    """A resolver on the host's loopback answering every A query with 192.0.2.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                return
            question = dns.parse_question(data)
            seen.append(question.name)
            sock.sendto(dns.answer(data, question, [dns.ipaddress.IPv4Address("192.0.2.1")]), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", sock.getsockname()[1]), seen
    finally:
        sock.close()


def test_names_aliases_round_robin_and_forwarding(env, upstream):
    svc = env.service()
    name = "dnsnet" + cid()[:6]
    subnet = _free_subnet()
    create(env, svc, name, str(subnet))
    a, b, c, d = cid(), cid(), cid(), cid()
    alias = EndpointSettings(aliases=["svc"])
    info_a = env.sandbox(svc, a, name, container_name="web", endpoint_config=alias)
    info_b = env.sandbox(svc, b, name, container_name="web2", endpoint_config=alias)
    info_c = env.sandbox(svc, c, name, container_name="client", dns_search=["example.org"])
    env.sandbox(svc, d, "bridge", container_name="elsewhere")
    ip_a, ip_b = info_a.endpoints[0].ip_address, info_b.endpoints[0].ip_address

    resolv = (env.config.container_data_dir(c) / "resolv.conf").read_text()
    assert "nameserver 127.0.0.11\n" in resolv and "search example.org\n" in resolv
    assert "options ndots:0\n" in resolv and resolv.count("nameserver") == 1
    # the default bridge keeps the host's resolvers, as with Docker
    assert "127.0.0.11" not in (env.config.container_data_dir(d) / "resolv.conf").read_text()

    address, seen = upstream
    svc._sandboxes[c].resolver.upstreams = [address]
    answers = resolve(env, info_c.netns_path, "web", "WEB2", f"web.{name}", a[:12], "tcp:web", "svc", "svc",
                      "elsewhere", "example.com")
    assert answers[0] == [0, [ip_a]] and answers[1] == [0, [ip_b]]
    assert answers[2] == [0, [ip_a]] and answers[3] == [0, [ip_a]] and answers[4] == [0, [ip_a]]
    assert sorted(answers[5][1]) == sorted([ip_a, ip_b])
    assert answers[5][1] != answers[6][1]  # round-robin
    # a container on another network is not ours to answer: forwarded, like any outside name
    assert answers[7] == [0, ["192.0.2.1"]] and answers[8] == [0, ["192.0.2.1"]]
    assert seen == ["elsewhere", "example.com"]

    reverse = env.run(asyncio.to_thread(in_netns, info_c.netns_path, "busybox", "nslookup", ip_a, "127.0.0.11"))
    assert f"web.{name}" in reverse.stdout, reverse.stdout + reverse.stderr
    settings = svc.endpoint_settings_json(a, name)["Networks"][name]
    assert settings["Aliases"] == ["svc"] and settings["DNSNames"] == ["web", "svc", a[:12]]

    # a released container's name goes away, the resolver's sockets with the namespace
    env.run(svc.release_sandbox(a))
    assert resolve(env, info_c.netns_path, "svc")[0][1] == [ip_b]


def test_networks_isolated_and_internal_has_no_way_out(env):
    svc = env.service()
    one, two, inner = ("n" + cid()[:8] for _ in range(3))
    create(env, svc, one, str(_free_subnet()))
    create(env, svc, two, str(_free_subnet()))
    create(env, svc, inner, str(_free_subnet()), internal=True)
    a, b, a2, i1, i2 = (cid() for _ in range(5))
    info_a = env.sandbox(svc, a, one)
    info_a2 = env.sandbox(svc, a2, one)
    info_b = env.sandbox(svc, b, two)
    info_i1 = env.sandbox(svc, i1, inner)
    info_i2 = env.sandbox(svc, i2, inner)

    def ping(src, dst, tries: int = 1) -> bool:
        return any(in_netns(src.netns_path, "busybox", "ping", "-c", "1", "-W", "1",
                            dst.endpoints[0].ip_address).returncode == 0 for _ in range(tries))

    assert ping(info_a, info_a2, tries=3) and ping(info_i1, info_i2, tries=3)
    assert not ping(info_a, info_b) and not ping(info_b, info_a)
    assert not ping(info_i1, info_a) and not ping(info_a, info_i1)
    route = in_netns(info_i1.netns_path, "ip", "route").stdout
    assert "default" not in route
    # the host's address on another network is no way out either
    out = in_netns(info_i1.netns_path, "busybox", "ping", "-c", "1", "-W", "1", info_a.endpoints[0].gateway)
    assert out.returncode != 0


def test_default_bridge_container_connected_to_a_user_network_gets_the_resolver(env):
    svc = env.service()
    name = "late" + cid()[:6]
    create(env, svc, name, str(_free_subnet()))
    a, b = cid(), cid()
    info_a = env.sandbox(svc, a, "bridge", container_name="early", dns=["192.0.2.53"])
    resolv = env.config.container_data_dir(a) / "resolv.conf"
    inode = resolv.stat().st_ino
    info_b = env.sandbox(svc, b, name, container_name="target")
    env.run(svc.connect(name, "early"))
    text = resolv.read_text()
    assert resolv.stat().st_ino == inode  # in place: the container's bind mount sees it
    assert "nameserver 127.0.0.11" in text and "192.0.2.53" in text and text.count("nameserver") == 1
    assert svc._sandboxes[a].resolver.upstreams == [("192.0.2.53", 53)]
    assert resolve(env, info_a.netns_path, "target")[0][1] == [info_b.endpoints[0].ip_address]
