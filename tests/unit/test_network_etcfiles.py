"""The /etc/hosts, resolv.conf and hostname contents a container gets (Docker's format)."""

from __future__ import annotations

import pytest

from dockyard import errdefs
from dockyard.network import etcfiles


@pytest.fixture
def host_resolv(tmp_path, monkeypatch):
    path = tmp_path / "resolv.conf"
    monkeypatch.setattr(etcfiles, "HOST_RESOLV_CONF", path)
    return path


def test_hosts_layout():
    text = etcfiles.hosts("abc123", "", "172.30.0.2", ["db:10.0.0.5", "v6=[::1]"])
    assert text == (etcfiles.DEFAULT_HOSTS + "10.0.0.5\tdb\n::1\tv6\n172.30.0.2\tabc123\n")
    assert etcfiles.hosts("web", "corp.example", "10.0.0.2", []).endswith(
        "10.0.0.2\tweb.corp.example web\n")
    assert etcfiles.hosts("web", "", None, []) == etcfiles.DEFAULT_HOSTS


def test_bad_extra_host_is_invalid_parameter():
    with pytest.raises(errdefs.InvalidParameter, match="invalid IP address in add-host"):
        etcfiles.hosts("h", "", None, ["db:notanip"])


def test_resolv_drops_loopback_and_falls_back_to_google(host_resolv):
    host_resolv.write_text("# comment\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\noptions edns0\n")
    assert etcfiles.resolv_conf([], [], []) == (
        "# comment\nnameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\noptions edns0\n")
    # sharing the host's network: its local resolver is reachable, keep it
    assert "nameserver 127.0.0.53\n" in etcfiles.resolv_conf([], [], [], host_netns=True)


def test_resolv_keeps_real_servers_and_applies_overrides(host_resolv):
    host_resolv.write_text("nameserver 10.255.255.53\nsearch lan\noptions edns0\n")
    assert etcfiles.resolv_conf([], [], []) == "nameserver 10.255.255.53\nsearch lan\noptions edns0\n"
    assert etcfiles.resolv_conf(["1.1.1.1"], ["a.example", "b.example"], ["ndots:2"]) == (
        "nameserver 1.1.1.1\nsearch a.example b.example\noptions ndots:2\n")
    assert "search" not in etcfiles.resolv_conf([], ["."], [])


def test_missing_host_resolv(host_resolv):
    assert etcfiles.resolv_conf([], [], []) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_write_atomic_replaces(tmp_path):
    path = tmp_path / "hosts"
    etcfiles.write_atomic(path, "one\n")
    etcfiles.write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]


def test_write_if_changed_keeps_an_identical_file(tmp_path):
    path = tmp_path / "hosts"
    etcfiles.write_if_changed(path, "a\n")  # missing: written
    assert path.read_text() == "a\n"
    inode = path.stat().st_ino
    etcfiles.write_if_changed(path, "a\n")  # the same: left as it is
    assert path.stat().st_ino == inode
    etcfiles.write_if_changed(path, "a\nb\n")  # different (longer): replaced
    assert path.read_text() == "a\nb\n" and path.stat().st_ino != inode
    etcfiles.write_if_changed(path, "a\n")  # a prefix of what is there: replaced too
    assert path.read_text() == "a\n"
