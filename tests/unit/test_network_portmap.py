"""portmap: what -p/-P ask for (Docker 28's implicit [::] binding) and host ports reserved on
both address families with one port."""

from __future__ import annotations

import socket

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import PortBinding
from dockyard.network import portmap


def test_no_address_means_both_families_an_address_means_one():
    asked = portmap.requested({"80/tcp": [PortBinding()], "81/tcp": [PortBinding(host_ip="127.0.0.1")],
                               "82/udp": [PortBinding(host_ip="::1", host_port="9000")]}, [], False)
    assert [(r.container_port, r.host_ip, r.also_ipv6) for r in asked] == [
        (80, "0.0.0.0", portmap.ipv6_listenable()), (81, "127.0.0.1", False), (82, "::1", False)]
    # -P too; a default address other than 0.0.0.0 (host_binding_ipv4) means that address only
    assert portmap.requested(None, ["80/tcp"], True)[0].also_ipv6 == portmap.ipv6_listenable()
    assert not portmap.requested({"80/tcp": [PortBinding()]}, [], False, "127.0.0.1")[0].also_ipv6


def test_without_an_ipv6_path_ipv6_bindings_are_left_out():
    asked = portmap.requested({"80/tcp": [PortBinding(), PortBinding(host_ip="::")]}, [], False, ipv6=False)
    assert [(r.host_ip, r.also_ipv6) for r in asked] == [("0.0.0.0", False)]


@pytest.mark.skipif(not portmap.ipv6_listenable(), reason="no IPv6 on this host")
def test_one_port_for_both_families_and_a_taken_ipv6_port():
    request = portmap.PortRequest("tcp", 80, "0.0.0.0", (0, 0), also_ipv6=True)
    reserved = portmap.reserve(request)
    try:
        (m4, s4), (m6, s6) = reserved
        assert (m4.host_ip, m6.host_ip) == ("0.0.0.0", "::") and m4.host_port == m6.host_port
        assert s6.family == socket.AF_INET6 and s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        port = m4.host_port
    finally:
        for _, sock in reserved:
            sock.close()
    holder = socket.socket(socket.AF_INET6)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    holder.bind(("::", port))
    holder.listen(1)
    try:
        with pytest.raises(errdefs.DockyardError, match=rf"Bind for \[::\]:{port} failed: port is already allocated"):
            portmap.reserve(portmap.PortRequest("tcp", 80, "0.0.0.0", (port, port), also_ipv6=True))
        # and the IPv4 half was not kept
        free = socket.socket()
        free.bind(("0.0.0.0", port))
        free.close()
    finally:
        holder.close()
