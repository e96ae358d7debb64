"""NetworkService against the real kernel: default bridge, sandboxes in all modes, restart.

Each test gets its own bridge ("dyt" + 5 hex), subnet (10.213.<n>.0/24, unused on the host),
data/exec roots under /tmp; everything is removed in finalizers even when a test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.networks import NetworkService
from dockyard.network import etcfiles, iptables, netlink, netns
from dockyard.storage.metadata import Database

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, links)")


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict]] = []

    def emit(self, type, action, actor_id, attributes=None, scope="local") -> None:
        self.seen.append((type, action, actor_id, dict(attributes or {})))


def _free_subnet() -> ipaddress.IPv4Network:
    ipr = netlink.open_socket()
    try:
        used = netlink.networks_in_use(ipr)
    finally:
        ipr.close()
    for _ in range(50):
        candidate = ipaddress.IPv4Network(f"10.213.{random.randrange(256)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no free 10.213.x.0/24 subnet")


class Env:
    """One daemon's worth of network state; ``service()`` builds a NetworkService on it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dyt-net-", dir="/tmp"))
        self.bridge = "dyt" + secrets.token_hex(3)[:5]
        self.subnet = _free_subnet()
        self.config = DaemonConfig(data_root=self.root / "data", exec_root=self.root / "exec",
                                   bridge=self.bridge, bip=f"{self.subnet.network_address + 1}/24")
        self.db = Database(self.config.db_path)
        self.events = Events()
        self.loop = asyncio.new_event_loop()
        self.services: list[NetworkService] = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def service(self) -> NetworkService:
        svc = NetworkService(self.config, self.db, self.events)
        self.services.append(svc)
        self.run(svc.start())
        return svc

    def sandbox(self, svc: NetworkService, cid: str, mode: str = "bridge", **kw):
        args = dict(hostname=cid[:12], domainname="", dns=[], dns_search=[], dns_options=[],
                    extra_hosts=[], data_dir=self.config.container_data_dir(cid))
        args.update(kw)
        return self.run(svc.create_sandbox(cid, mode, **args))

    def cleanup(self) -> None:
        bridges = {self.bridge}
        try:  # user-defined networks the test made
            bridges |= {json.loads(doc).get("bridge") or self.bridge
                        for (doc,) in self.db.query("SELECT doc FROM networks")}
        except Exception:
            pass
        for svc in self.services:
            try:
                self.run(svc.stop())
            except Exception:
                pass
        try:  # the chains of a service the test did not stop (a simulated crash)
            iptables.teardown(iptables.Chains.for_instance(str(self.config.exec_root)))
        except Exception:
            pass
        netns_dir = self.config.netns_dir
        if netns_dir.exists():
            for path in netns_dir.iterdir():
                netns.remove(path)
            while subprocess.run(["umount", "-l", str(netns_dir)], capture_output=True).returncode == 0:
                pass
        for bridge in bridges:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        self.loop.close()
        self.db.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def env():
    e = Env()
    try:
        yield e
    finally:
        e.cleanup()


def cid() -> str:
    return secrets.token_hex(32)


def in_netns(path: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True, timeout=10)


def bridge_ports(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_default_bridge_created_with_gateway(env):
    svc = env.service()
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", env.bridge], capture_output=True,
                         text=True).stdout
    assert f"inet {env.config.bip}" in out
    assert "UP" in subprocess.run(["ip", "link", "show", env.bridge], capture_output=True, text=True).stdout
    bridge = svc.inspect("bridge")
    assert bridge.driver == "bridge" and len(bridge.id) == 64
    assert bridge.ipam.config[0].subnet == str(env.subnet)
    assert bridge.ipam.config[0].gateway == str(env.subnet.network_address + 1)
    assert bridge.options["com.docker.network.bridge.name"] == env.bridge
    assert {n.name: n.driver for n in svc.list({})} == {"bridge": "bridge", "host": "host", "none": "null"}
    assert [n.name for n in svc.list({"driver": ["null"]})] == ["none"]
    assert svc.inspect(bridge.id[:10]).name == "bridge"


def test_bridge_sandboxes_reach_each_other(env):
    svc = env.service()
    a, b = cid(), cid()
    info_a = env.sandbox(svc, a)
    info_b = env.sandbox(svc, b)
    ep_a = info_a.endpoints[0]
    assert info_a.netns_path == str(env.config.netns_dir / a[:12])
    assert ipaddress.IPv4Address(ep_a.ip_address) in env.subnet
    assert ep_a.gateway == str(env.subnet.network_address + 1) and ep_a.ip_prefix_len == 24
    packed = ipaddress.IPv4Address(ep_a.ip_address).packed
    assert ep_a.mac_address == "02:42:" + ":".join(f"{x:02x}" for x in packed)

    addr = in_netns(info_a.netns_path, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"inet {ep_a.ip_address}/24" in addr
    route = in_netns(info_a.netns_path, "ip", "route", "show", "default").stdout
    assert f"default via {ep_a.gateway} dev eth0" in route
    assert "UP" in in_netns(info_a.netns_path, "ip", "link", "show", "lo").stdout
    link = in_netns(info_a.netns_path, "ip", "-o", "link", "show", "eth0").stdout
    assert ep_a.mac_address in link
    ports = bridge_ports(env.bridge)
    assert len(ports) == 2 and all(p.startswith("veth") and len(p) == 11 for p in ports)

    ping = in_netns(info_a.netns_path, "busybox", "ping", "-c", "1", "-W", "3",
                    info_b.endpoints[0].ip_address)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    settings = svc.endpoint_settings_json(a, "default")
    assert settings["Networks"]["bridge"]["IPAddress"] == ep_a.ip_address
    assert settings["Networks"]["bridge"]["MacAddress"] == ep_a.mac_address
    assert settings["IPAddress"] == ep_a.ip_address and settings["SandboxKey"] == info_a.netns_path
    containers = svc.inspect("bridge").containers
    assert containers[a].ipv4_address == f"{ep_a.ip_address}/24"
    assert [e[1] for e in env.events.seen] == ["connect", "connect"]
    assert env.events.seen[0][3] == {"container": a, "name": "bridge", "type": "bridge"}


def test_release_frees_address_and_namespace(env):
    svc = env.service()
    a = cid()
    info = env.sandbox(svc, a)
    address = info.endpoints[0].ip_address
    # a process inside keeps the namespace alive until it exits, like a container's init
    sleeper = subprocess.Popen(["nsenter", f"--net={info.netns_path}", "sh", "-c", "echo in; exec sleep 30"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline() == "in\n"
        env.run(svc.release_sandbox(a))
        assert not Path(info.netns_path).exists()
        assert env.db.query("SELECT * FROM ip_allocs WHERE owner = ?", (a,)) == []
        assert len(bridge_ports(env.bridge)) == 1  # still there: the namespace has a process
    finally:
        sleeper.kill()
        sleeper.wait()
    deadline = time.monotonic() + 5
    while bridge_ports(env.bridge) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bridge_ports(env.bridge) == []  # the kernel dropped the veth with the namespace
    env.run(svc.release_sandbox(a))  # idempotent
    assert env.events.seen[-1][1] == "disconnect"
    assert "IPAddress" not in svc.endpoint_settings_json(a)["Networks"]["bridge"] or \
        svc.endpoint_settings_json(a)["Networks"]["bridge"]["IPAddress"] == ""
    # round-robin: the freed address is not handed out again at once
    b = cid()
    assert env.sandbox(svc, b).endpoints[0].ip_address != address


def test_none_host_and_container_modes(env):
    svc = env.service()
    a, h, c = cid(), cid(), cid()
    none = env.sandbox(svc, a, "none")
    links = in_netns(none.netns_path, "ip", "-o", "link").stdout.splitlines()
    assert len(links) == 1 and "lo" in links[0] and "UP" in links[0]
    assert none.endpoints[0].network_name == "none" and none.endpoints[0].ip_address == ""
    assert env.db.query("SELECT * FROM ip_allocs") == []

    host = env.sandbox(svc, h, "host")
    assert host.netns_path is None and host.endpoints[0].network_name == "host"
    assert host.hosts_path.read_text().startswith(Path("/etc/hosts").read_text().rstrip("\n"))

    # files prepared after a create are kept by the start when still right, rewritten if not
    p, q = cid(), cid()
    for x, extra in ((p, ["db:10.0.0.5"]), (q, [])):
        data_dir = env.config.container_data_dir(x)
        data_dir.mkdir(parents=True)
        svc.prepare_sandbox_files(x, "host", "box", [], [], [], extra, data_dir)
    env.config.container_data_dir(q).joinpath("hostname").write_text("stale\n")
    inodes = {x: [path.stat().st_ino for path in sorted(env.config.container_data_dir(x).iterdir())]
              for x in (p, q)}
    prepared = env.sandbox(svc, p, "host", hostname="box", extra_hosts=["db:10.0.0.5"])
    assert prepared.hosts_path.read_text().endswith("10.0.0.5\tdb\n")
    assert [path.stat().st_ino for path in sorted(prepared.hosts_path.parent.iterdir())] == inodes[p]
    assert env.sandbox(svc, q, "host", hostname="box").hostname_path.read_text() == "box\n"
    for x in (p, q):
        env.run(svc.release_sandbox(x))
    svc.prepare_sandbox_files(cid(), "bridge", "box", [], [], [], [], env.root / "nowhere")  # nothing to do

    joined = env.sandbox(svc, c, f"container:{a}")
    assert joined.netns_path == none.netns_path and joined.endpoints == []
    assert (joined.hosts_path, joined.resolv_conf_path) == (none.hosts_path, none.resolv_conf_path)
    on_host = env.sandbox(svc, cid(), f"container:{h}")
    assert on_host.netns_path is None and on_host.hosts_path == host.hosts_path
    with pytest.raises(Exception, match="cannot join network of a non running container"):
        env.sandbox(svc, cid(), f"container:{cid()}")
    env.run(svc.release_sandbox(c))
    assert Path(none.netns_path).exists()  # the peer's namespace is not ours to remove

    with pytest.raises(Exception, match="network nosuch not found"):
        env.sandbox(svc, cid(), "nosuch")
    assert set(svc.endpoint_settings_json(h, "host")["Networks"]) == {"host"}
    assert svc.endpoint_settings_json(c, f"container:{a}")["Networks"] == {}
    for x in (a, h):
        env.run(svc.release_sandbox(x))
    assert not Path(none.netns_path).exists()


def test_hosts_resolv_hostname_files(env, monkeypatch):
    host_resolv = env.root / "host-resolv.conf"
    host_resolv.write_text("# host file\nnameserver 127.0.0.53\nsearch example.org\noptions edns0\n")
    monkeypatch.setattr(etcfiles, "HOST_RESOLV_CONF", host_resolv)
    svc = env.service()
    a = cid()
    info = env.sandbox(svc, a, hostname="web", domainname="example.org", extra_hosts=["db:10.1.2.3"])
    ip = info.endpoints[0].ip_address
    hosts = info.hosts_path.read_text()
    assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert hosts.endswith(f"10.1.2.3\tdb\n{ip}\tweb.example.org web\n")
    resolv = info.resolv_conf_path.read_text()
    assert "127.0.0.53" not in resolv
    assert "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" in resolv
    assert "search example.org" in resolv and "options edns0" in resolv
    assert info.hostname_path.read_text() == "web\n"

    with pytest.raises(errdefs.InvalidParameter, match="invalid IP address in add-host"):
        env.sandbox(svc, cid(), extra_hosts=["db:nope"])
    assert len(env.db.query("SELECT * FROM ip_allocs")) == 1  # nothing allocated for the failure

    b = cid()
    custom = env.sandbox(svc, b, dns=["10.0.0.53"], dns_search=["corp"], dns_options=["ndots:1"])
    resolv = custom.resolv_conf_path.read_text()
    assert "nameserver 10.0.0.53" in resolv and "8.8.8.8" not in resolv
    assert "search corp" in resolv and "example.org" not in resolv
    assert "options ndots:1" in resolv and "edns0" not in resolv


def test_restart_keeps_live_sandboxes_and_reconciles(env):
    svc = env.service()
    live, gone, isolated = cid(), cid(), cid()
    live_info = env.sandbox(svc, live)
    gone_info = env.sandbox(svc, gone)
    env.sandbox(svc, isolated, "none")
    bridge_id = svc.inspect("bridge").id
    env.run(svc.stop())  # the daemon goes away; sandboxes stay (live-restore)
    assert Path(live_info.netns_path).exists() and Path(gone_info.netns_path).exists()

    again = env.service()
    assert again.inspect("bridge").id == bridge_id
    mounts = Path("/proc/self/mountinfo").read_text().split("\n")
    assert sum(line.split(" ")[4] == str(env.config.netns_dir) for line in mounts if line) == 1
    env.run(again.reconcile({live: "web", isolated: "quiet"}))
    assert set(again.endpoint_settings_json(isolated, "none")["Networks"]) == {"none"}
    assert again.endpoint_settings_json(isolated, "none")["SandboxKey"].endswith(isolated[:12])
    assert not Path(gone_info.netns_path).exists()
    owners = {owner for (owner,) in env.db.query("SELECT owner FROM ip_allocs")}
    assert owners == {live}
    settings = again.endpoint_settings_json(live)
    assert settings["Networks"]["bridge"]["IPAddress"] == live_info.endpoints[0].ip_address
    assert again.inspect("bridge").containers[live].name == "web"
    again.container_renamed(live, "web2")
    assert again.inspect("bridge").containers[live].name == "web2"
    new = env.sandbox(again, cid())
    assert new.endpoints[0].ip_address not in (live_info.endpoints[0].ip_address,)
    ping = in_netns(new.netns_path, "busybox", "ping", "-c", "1", "-W", "3", live_info.endpoints[0].ip_address)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    env.run(again.remove_default_bridge())
    assert subprocess.run(["ip", "link", "show", env.bridge], capture_output=True).returncode != 0


def test_existing_foreign_bridge_is_not_touched(env):
    subprocess.run(["ip", "link", "add", env.bridge, "type", "bridge"], check=True)
    with pytest.raises(Exception, match="was not created by this daemon"):
        env.service()
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", env.bridge], capture_output=True, text=True)
    assert out.stdout == ""  # no address was added to someone else's bridge


def test_subnet_picked_from_pools_when_no_bip(env):
    env.config.bip = None
    env.config.default_address_pools = [{"base": str(env.subnet), "size": 26}]
    svc = env.service()
    subnet = svc.inspect("bridge").ipam.config[0].subnet
    assert subnet == f"{env.subnet.network_address}/26"


def test_sandbox_timings(env, capsys):
    svc = env.service()
    ids = [cid() for _ in range(10)]
    create, release = [], []
    for c in ids:
        t = time.perf_counter()
        env.sandbox(svc, c)
        create.append((time.perf_counter() - t) * 1000)
    for c in ids:
        t = time.perf_counter()
        env.run(svc.release_sandbox(c))
        release.append((time.perf_counter() - t) * 1000)
    none_times = []
    for c in ids[:5]:
        t = time.perf_counter()
        env.sandbox(svc, c, "none")
        none_times.append((time.perf_counter() - t) * 1000)
        env.run(svc.release_sandbox(c))
    with capsys.disabled():
        print(f"\nbridge sandbox create ms: median {sorted(create)[5]:.2f} max {max(create):.2f}; "
              f"release ms: median {sorted(release)[5]:.2f}; none create ms: median {sorted(none_times)[2]:.2f}")
    assert sorted(create)[5] < 50 and sorted(release)[5] < 10


def test_bridge_disabled(env):
    env.config.bridge = "none"
    svc = env.service()
    assert sorted(n.name for n in svc.list({})) == ["host", "none"]
    info = env.sandbox(svc, cid(), "default")
    assert info.endpoints[0].network_name == "none"
    with pytest.raises(Exception, match="network bridge not found"):
        env.sandbox(svc, cid(), "bridge")
    assert subprocess.run(["ip", "link", "show", env.bridge], capture_output=True).returncode != 0


def test_spare_namespaces_are_made_when_idle_and_dropped_on_stop(env):
    netns_dir = env.config.netns_dir
    netns_dir.mkdir(parents=True)
    (netns_dir / ".spare-deadbeef0000").touch()  # left by a daemon that crashed
    svc = env.service()
    assert not (netns_dir / ".spare-deadbeef0000").exists()

    def spares() -> list[Path]:
        return sorted(p for p in netns_dir.iterdir() if p.name.startswith(".spare-"))

    deadline = time.monotonic() + 5
    while len(spares()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    first = spares()
    assert len(first) == 2 and all(netns.is_pinned(p) for p in first)
    info = env.sandbox(svc, cid(), "none")  # takes a spare
    assert "UP" in in_netns(info.netns_path, "ip", "link", "show", "lo").stdout
    env.run(svc.reconcile([]))  # spares are not container namespaces: kept
    assert not Path(info.netns_path).exists()
    while len(set(spares()) - set(first)) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(spares()) == 2 and len(set(spares()) & set(first)) == 1  # refilled; the claimed one unpinned
    env.run(svc.stop())
    assert spares() == []
