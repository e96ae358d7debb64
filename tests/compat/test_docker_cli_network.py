"""The real docker CLI 28 driving dockyardd's networking: published ports, the embedded DNS,
network connect/disconnect, --link, --add-host, and a daemon killed with -9."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import urllib.request

import pytest

from dockyard.network import iptables
from tests import daemon_harness

HTTPD = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(d, *args, timeout=60) -> str:
    r = d.docker(*args, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def name() -> str:
    return "t" + "%06x" % random.randrange(16**6)


def fetch(url: str, attempts: int = 50) -> str:
    for _ in range(attempts):  # httpd needs a moment to listen
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def nat_rules(d) -> list[str]:
    chain = iptables.Chains.for_instance(str(d.exec_root)).dnat
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith(f"-A {chain} ")]


def test_publish_port_and_inspect(dockyardd):
    web = name()
    ok(dockyardd, "run", "-d", "--name", web, "-p", "127.0.0.1::80", "--expose", "443", "busybox", "sh", "-c", HTTPD)
    try:
        port = ok(dockyardd, "port", web, "80").strip()
        assert port.startswith("127.0.0.1:")
        assert fetch(f"http://{port}/").startswith("hello-")
        ports = json.loads(ok(dockyardd, "inspect", "-f", "{{json .NetworkSettings.Ports}}", web))
        assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.split(":")[1]}], "443/tcp": None}
        assert f"{port}->80/tcp" in ok(dockyardd, "ps", "--filter", f"name={web}", "--format", "{{.Ports}}")
        taken = dockyardd.docker("run", "--rm", "-p", f"{port}:80", "busybox", "true")
        assert taken.returncode == 125 and b"port is already allocated" in taken.stderr
        assert len(nat_rules(dockyardd)) == 1
    finally:
        ok(dockyardd, "rm", "-f", web)
    assert nat_rules(dockyardd) == []


def test_user_network_names_aliases_and_connect(dockyardd):
    net, net2, db = name(), name(), name()
    ok(dockyardd, "network", "create", net)
    ok(dockyardd, "network", "create", net2)
    try:
        ok(dockyardd, "run", "-d", "--name", db, "--network", net, "--network-alias", "store", "busybox", "sleep", "300")
        address = ok(dockyardd, "inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", db).strip()
        out = ok(dockyardd, "run", "--rm", "--network", net, "busybox", "sh", "-c",
                 f"cat /etc/resolv.conf; nslookup store; nslookup {db}")
        assert "nameserver 127.0.0.11" in out and out.count(f"Address: {address}") >= 2, out
        lonely = dockyardd.docker("run", "--rm", "--network", net2, "busybox", "nslookup", db)
        assert address.encode() not in lonely.stdout

        ok(dockyardd, "network", "connect", "--alias", "second", net2, db)
        networks = json.loads(ok(dockyardd, "inspect", "-f", "{{json .NetworkSettings.Networks}}", db))
        assert set(networks) == {net, net2} and networks[net2]["Aliases"] == ["second"]
        found = ok(dockyardd, "run", "--rm", "--network", net2, "busybox", "nslookup", "second")
        assert networks[net2]["IPAddress"] in found
        ok(dockyardd, "network", "disconnect", net2, db)
        again = dockyardd.docker("network", "disconnect", net2, db)
        assert again.returncode == 1 and b"is not connected to network" in again.stderr
        busy = dockyardd.docker("network", "rm", net)
        assert busy.returncode == 1 and b"has active endpoints" in busy.stderr
    finally:
        dockyardd.docker("rm", "-f", db)
        dockyardd.docker("network", "rm", net, net2)


def test_link_add_host_and_dns_options(dockyardd):
    peer = name()
    ok(dockyardd, "run", "-d", "--name", peer, "busybox", "sleep", "300")
    try:
        address = ok(dockyardd, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", peer).strip()
        out = ok(dockyardd, "run", "--rm", "--link", f"{peer}:buddy", "--add-host", "gw:host-gateway",
                 "--add-host", "static:192.0.2.7", "--dns", "192.0.2.53", "--dns-search", "example.org",
                 "--hostname", "box", "--domainname", "example.org", "busybox", "sh", "-c",
                 "cat /etc/hosts /etc/resolv.conf; hostname")
        assert f"{address}\tbuddy" in out and "192.0.2.7\tstatic" in out
        gateway = dockyardd.subnet.rsplit(".", 1)[0] + ".1"
        assert f"{gateway}\tgw" in out
        assert "nameserver 192.0.2.53" in out and "search example.org" in out
        assert out.strip().endswith("box")
    finally:
        dockyardd.docker("rm", "-f", peer)


def test_ports_come_back_after_kill_9(fresh_daemon):
    d = fresh_daemon
    daemon_harness.load_busybox(d)
    web = name()
    ok(d, "run", "-d", "--name", web, "-p", "127.0.0.1::80", "busybox", "sh", "-c", HTTPD)
    port = ok(d, "port", web, "80").strip()
    assert fetch(f"http://{port}/").startswith("hello-")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    daemon_harness.start(d)
    assert fetch(f"http://{port}/").startswith("hello-")
    assert len(nat_rules(d)) == 1  # restored once, not twice
    ok(d, "rm", "-f", web)
    assert nat_rules(d) == []
    daemon_harness.stop(d)
    suffix = iptables.Chains.for_instance(str(d.exec_root)).suffix
    assert suffix not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("bad", ["--ip=10.99.99.99", "--network-alias=x"])
def test_default_bridge_refuses_user_network_options(dockyardd, bad):
    r = dockyardd.docker("run", "--rm", bad, "busybox", "true")
    assert r.returncode == 125 and (b"user defined networks" in r.stderr or b"user-defined networks" in r.stderr)


def test_connect_before_start_and_rename(dockyardd):
    net, box = name(), name()
    ok(dockyardd, "network", "create", net)
    try:
        ok(dockyardd, "create", "--name", box, "busybox", "sleep", "300")
        ok(dockyardd, "network", "connect", "--alias", "early", net, box)
        shown = json.loads(ok(dockyardd, "inspect", "-f", "{{json .NetworkSettings.Networks}}", box))
        assert set(shown) == {"bridge", net} or set(shown) == {net}, shown
        ok(dockyardd, "start", box)
        networks = json.loads(ok(dockyardd, "inspect", "-f", "{{json .NetworkSettings.Networks}}", box))
        assert set(networks) == {"bridge", net} and networks[net]["Aliases"] == ["early"]
        renamed = name()
        ok(dockyardd, "rename", box, renamed)
        found = ok(dockyardd, "run", "--rm", "--network", net, "busybox", "nslookup", renamed)
        assert networks[net]["IPAddress"] in found
    finally:
        dockyardd.docker("rm", "-f", box)
        dockyardd.docker("network", "rm", net)


def test_publish_without_address_binds_both_families(dockyardd):
    web = name()
    ok(dockyardd, "run", "-d", "--name", web, "-p", "80", "busybox", "sh", "-c", HTTPD)
    try:
        shown = ok(dockyardd, "port", web, "80").split()
        port = shown[0].rsplit(":", 1)[1]
        assert shown == [f"0.0.0.0:{port}", f"[::]:{port}"]  # as Docker 28: one port, both families
        ports = ok(dockyardd, "ps", "--filter", f"name={web}", "--format", "{{.Ports}}")
        assert f"0.0.0.0:{port}->80/tcp" in ports and f"[::]:{port}->80/tcp" in ports
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
        assert fetch(f"http://[::1]:{port}/").startswith("hello-")  # the proxy relays to its IPv4
    finally:
        ok(dockyardd, "rm", "-f", web)


def test_network_events(dockyardd):
    net, box = name(), name()
    since = str(int(time.time()) - 1)
    net_id = ok(dockyardd, "network", "create", net).strip()
    try:
        box_id = ok(dockyardd, "run", "-d", "--name", box, "busybox", "sleep", "300").strip()
        ok(dockyardd, "network", "connect", net, box)
        ok(dockyardd, "network", "disconnect", net, box)
        ok(dockyardd, "rm", "-f", box)
    finally:
        dockyardd.docker("rm", "-f", box)
        ok(dockyardd, "network", "rm", net)
    until = str(int(time.time()) + 1)
    out = ok(dockyardd, "events", "--since", since, "--until", until, "--filter", "type=network",
             "--format", "{{json .}}")
    seen = [json.loads(line) for line in out.splitlines()]
    mine = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in seen
            if e["Actor"]["ID"] == net_id or e["Actor"]["Attributes"].get("container") == box_id]
    bridge_id = ok(dockyardd, "network", "inspect", "-f", "{{.ID}}", "bridge").strip()
    assert mine == [
        ("create", net_id, {"name": net, "type": "bridge"}),
        ("connect", bridge_id, {"container": box_id, "name": "bridge", "type": "bridge"}),
        ("connect", net_id, {"container": box_id, "name": net, "type": "bridge"}),
        ("disconnect", net_id, {"container": box_id, "name": net, "type": "bridge"}),
        ("disconnect", bridge_id, {"container": box_id, "name": "bridge", "type": "bridge"}),
        ("destroy", net_id, {"name": net, "type": "bridge"}),
    ], mine
    assert all(e["Type"] == "network" and e["scope"] == "local" for e in seen)
