"""Network sandboxes (a pinned namespace with its interfaces), made on one worker thread.

``unshare``/``setns`` move only the calling thread, so every namespace change happens on the
single thread of ``NetnsWorker``; it holds the host's netlink socket and a descriptor of the
host namespace to return to. The daemon's event loop hands work over with ``submit`` and never
blocks on the kernel.

Cost per bridge sandbox on this worker (2-core machine, measured): namespace + pinning ~0.8 ms,
veth pair created straight into the namespace with its final name and MAC ~0.5-1 ms, lo/eth0 up
+ address + route in one netlink datagram ~0.1 ms; 1.4-2.5 ms in all (pyroute2 for the same
steps: ~5.5 ms). Release is an unmount and an unlink (~0.1 ms): the kernel deletes the veth when
the namespace dies, off our path (a synchronous veth delete waits 25-40 ms for RCU).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from dockyard.network import netlink, netns, rtnl

T = TypeVar("T")

CONTAINER_IFNAME = "eth0"


def veth_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


class NetnsWorker:
    """Owns the worker thread. Methods other than ``submit``/``close`` run on that thread only."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-netns",
                                            initializer=self._init_thread)
        self._host_fd = -1
        self._host: netlink.IPRoute | None = None
        self._host_rtnl: rtnl.Socket | None = None

    def _init_thread(self) -> None:
        self._host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._host = netlink.open_socket()
        self._host_rtnl = rtnl.Socket()

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        return self._executor.submit(fn, *args)

    def close(self) -> None:
        def _close() -> None:
            if self._host is not None:
                self._host.close()
                self._host = None
            if self._host_rtnl is not None:
                self._host_rtnl.close()
                self._host_rtnl = None
            if self._host_fd >= 0:
                os.close(self._host_fd)
                self._host_fd = -1
        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)

    @property
    def host(self) -> netlink.IPRoute:
        assert self._host is not None, "NetnsWorker methods run on its own thread"
        return self._host

    # ---- on the worker thread -------------------------------------------------------------

    def _new_netns(self, path: Path) -> rtnl.Socket:
        """A pinned namespace at path and a netlink socket bound to it."""
        try:
            netns.create_here(path)
            return rtnl.Socket()
        finally:
            netns.setns_net(self._host_fd)  # back home, whatever happened

    def make_isolated(self, path: Path) -> None:
        """``--network none``: a namespace with only the loopback interface, up."""
        ns = self._new_netns(path)
        try:
            ns.loopback_up()
        except BaseException:
            netns.remove(path)
            raise
        finally:
            ns.close()

    def make_bridged(self, path: Path, bridge_index: int, mtu: int, iface: ipaddress.IPv4Interface,
                     gateway: ipaddress.IPv4Address | None, mac: str) -> str:
        """A namespace whose eth0 is a veth peer on the bridge; returns the host end's name.
        No default route when gateway is None (internal networks)."""
        ns = self._new_netns(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host_name = self._add_veth(bridge_index, fd, mac, mtu)
            finally:
                os.close(fd)
            ns.configure_endpoint(rtnl.FIRST_FREE_INDEX, iface, gateway)
            return host_name
        except BaseException:
            netns.remove(path)  # the veth pair dies with the namespace
            raise
        finally:
            ns.close()

    def _add_veth(self, bridge_index: int, netns_fd: int, mac: str, mtu: int) -> str:
        assert self._host_rtnl is not None
        for _ in range(3):
            name = veth_name()
            try:
                self._host_rtnl.add_veth_into(name, bridge_index, mtu, CONTAINER_IFNAME, netns_fd, mac)
                return name
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
        raise OSError(errno.EEXIST, "could not find a free veth name")

    def remove(self, path: Path) -> None:
        netns.remove(path)

    # bridge management

    def bridge_state(self, name: str) -> tuple[int, str | None, list[ipaddress.IPv4Interface]] | None:
        """(index, kind, IPv4 addresses) of a link, None when it does not exist."""
        index = netlink.link_index(self.host, name)
        if index is None:
            return None
        return index, netlink.link_kind(self.host, index), netlink.ipv4_addresses(self.host, index)

    def networks_in_use(self) -> list[ipaddress.IPv4Network]:
        return netlink.networks_in_use(self.host)

    def create_bridge(self, name: str, gateway: ipaddress.IPv4Interface) -> int:
        return netlink.create_bridge(self.host, name, gateway)

    def ensure_bridge_up(self, index: int, gateway: ipaddress.IPv4Interface) -> None:
        netlink.ensure_address(self.host, index, gateway)
        netlink.set_up(self.host, index)

    def link_mtu(self, index: int) -> int:
        return netlink.link_mtu(self.host, index)

    def delete_link(self, name: str) -> None:
        netlink.delete_link(self.host, name)
