"""IPAM: subnet choice from address pools, round-robin addresses, Docker's MACs."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard import errdefs
from dockyard.network import ipam

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def test_pick_subnet_skips_overlaps():
    pools = [{"base": "172.30.0.0/16", "size": 24}]
    assert ipam.pick_subnet(pools, []) == N("172.30.0.0/24")
    used = [N("172.30.0.0/24"), N("172.30.1.128/25"), N("0.0.0.0/1")]  # /1 covers nothing at 172
    assert ipam.pick_subnet(pools, used) == N("172.30.2.0/24")


def test_pick_subnet_falls_through_pools_and_fails_clearly():
    pools = [{"base": "10.1.0.0/24", "size": 24}, {"base": "10.2.0.0/23", "size": 24}]
    assert ipam.pick_subnet(pools, [N("10.0.0.0/15")]) == N("10.2.0.0/24")
    with pytest.raises(errdefs.Unavailable, match="non-overlapping"):
        ipam.pick_subnet(pools, [N("10.0.0.0/8")])


def test_mac_like_docker():
    assert ipam.mac_for(A("172.17.0.2")) == "02:42:ac:11:00:02"


def test_pool_round_robin_skips_gateway_and_used():
    pool = ipam.Pool(N("10.0.0.0/29"), A("10.0.0.1"))
    got = [pool.allocate() for _ in range(5)]
    assert got == [A(f"10.0.0.{i}") for i in range(2, 7)]
    with pytest.raises(errdefs.Unavailable):
        pool.allocate()
    pool.release(A("10.0.0.3"))
    pool.release(A("10.0.0.5"))
    assert pool.allocate() == A("10.0.0.3")  # wraps around after .6
    assert pool.allocate() == A("10.0.0.5")


def test_pool_resumes_after_highest_known_address():
    pool = ipam.Pool(N("10.0.0.0/24"), A("10.0.0.1"))
    pool.mark_used(A("10.0.0.9"))
    assert pool.allocate() == A("10.0.0.10")
    assert pool.is_used(A("10.0.0.9"))
