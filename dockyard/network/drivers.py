"""Network drivers behind one interface: what exists on the host for a network of each kind.

A driver makes (``create``), finds again after a restart (``restore``) and removes
(``delete``) a network's host objects, says which iptables rules the network needs, and hands
back the ``Uplink`` its containers' interfaces plug into. Addresses, sandboxes, names and
records stay with NetworkService, whatever the driver. ``host`` and ``null`` are not drivers
here: they have no host objects and are sandbox modes (the host's namespace, a namespace with
only lo). An overlay driver (swarm) joins by adding a class and an entry in ``DRIVERS``.

Every kernel call goes through ``run`` (the NetnsWorker's thread, see sandbox.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Awaitable, Callable, Iterable, Protocol

import msgspec

from dockyard import errdefs
from dockyard.network import iptables, records, rtnl
from dockyard.network.records import NetworkRecord
from dockyard.network.sandbox import NetnsWorker, Uplink

IFNAME_MAX = 15

Run = Callable[..., Awaitable[Any]]  # run(fn, *args): fn(*args) on the worker thread


def _gateways(record: NetworkRecord) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv6Interface | None]:
    return records.gateway_of(record), records.gateway6_of(record)


def _mtu_option(record: NetworkRecord) -> int | None:
    """-o com.docker.network.driver.mtu=N: the bridge's and its veths' MTU."""
    text = record.options.get(records.MTU_OPTION)
    if not text:
        return None
    try:
        mtu = int(text)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid MTU {text!r}: it must be a number") from None
    if not 68 <= mtu <= 65535:
        raise errdefs.InvalidParameter(f"invalid MTU {mtu}: it must be between 68 and 65535")
    return mtu


class Driver(Protocol):
    name: str
    publishes_ports: bool  # -p/-P apply to its containers
    checks_host_routes: bool  # its subnets must not overlap networks the host routes

    async def create(self, run: Run, worker: NetnsWorker, record: NetworkRecord,
                     others: Iterable[NetworkRecord]) -> tuple[NetworkRecord, Uplink]:
        """Make the host side; the record comes back with the driver's fields (the link) set.
        Nothing is left behind when it raises."""

    async def restore(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> Uplink | None:
        """After a daemon start: the host side again (made anew if it vanished); None if it cannot be."""

    async def delete(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> None: ...

    def rules(self, chains: iptables.Chains, record: NetworkRecord, hairpin: bool) -> list[iptables.Rule]: ...


class BridgeDriver:
    """A Linux bridge holding the gateway address(es); containers join through veth pairs;
    iptables isolates it from the other networks and masquerades when the network asks."""

    name = "bridge"
    publishes_ports = True
    checks_host_routes = True

    async def create(self, run: Run, worker: NetnsWorker, record: NetworkRecord,
                     others: Iterable[NetworkRecord]) -> tuple[NetworkRecord, Uplink]:
        bridge = record.options.get(records.BRIDGE_NAME_OPTION) or f"br-{record.id[:12]}"
        if len(bridge) > IFNAME_MAX:
            raise errdefs.InvalidParameter(f"bridge name {bridge!r} is longer than {IFNAME_MAX} characters")
        if await run(worker.bridge_state, bridge) is not None:
            raise errdefs.Conflict(f"a link named {bridge} already exists on the host")
        mtu = _mtu_option(record)
        records.flag(record.options, records.ICC_OPTION, True)  # refused before anything is made
        index = await run(worker.create_bridge, bridge, *_gateways(record), mtu)
        try:
            mtu = await run(worker.link_mtu, index)
        except BaseException:
            await run(worker.delete_link, bridge)
            raise
        return msgspec.structs.replace(record, bridge=bridge, bridge_created=True), Uplink("veth", index, mtu)

    async def restore(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> Uplink | None:
        gateway, gateway6 = _gateways(record)
        state = await run(worker.bridge_state, record.bridge)
        if state is None:
            index = await run(worker.create_bridge, record.bridge, gateway, gateway6, _mtu_option(record))
        else:
            index = state[0]
            await run(worker.ensure_bridge_up, index, gateway, gateway6)
        return Uplink("veth", index, await run(worker.link_mtu, index))

    async def delete(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> None:
        if record.bridge_created:
            await run(worker.delete_link, record.bridge)

    def rules(self, chains: iptables.Chains, record: NetworkRecord, hairpin: bool) -> list[iptables.Rule]:
        masquerade = record.options.get(records.MASQUERADE_OPTION, "").lower() == "true"
        return iptables.network_rules(chains, record.bridge, record.subnet, record.internal, masquerade,
                                      hairpin=hairpin, subnet6=record.subnet6,
                                      icc=records.flag(record.options, records.ICC_OPTION, True))


class MacvlanDriver:
    """Containers get a macvlan link of the parent interface (-o parent=): their own MAC on
    the parent's segment. Nothing is made on the host until a container joins; the parent is
    never changed or deleted."""

    name = "macvlan"
    publishes_ports = False
    checks_host_routes = False  # the subnet is usually the parent's own LAN

    async def create(self, run: Run, worker: NetnsWorker, record: NetworkRecord,
                     others: Iterable[NetworkRecord]) -> tuple[NetworkRecord, Uplink]:
        parent = record.options.get(records.PARENT_OPTION, "")
        if not parent:
            raise errdefs.InvalidParameter(
                "macvlan networks need a parent interface on this host: -o parent=<interface> "
                "(this kernel has no dummy links to make an isolated one)")
        mode = record.options.get(records.MACVLAN_MODE_OPTION, "bridge")
        if mode not in rtnl.MACVLAN_MODES:
            raise errdefs.InvalidParameter(f"requested macvlan mode '{mode}' is not valid, "
                                           f"'bridge' mode is the macvlan driver default")
        taken = next((r for r in others if r.driver == self.name and r.bridge == parent), None)
        if taken is not None:
            raise errdefs.Forbidden(f"network {taken.name} is already using parent interface {parent}")
        index = await run(worker.link_exists, parent)
        if index is None:
            raise errdefs.InvalidParameter(f"-o parent interface was not found on the host: {parent}")
        record = msgspec.structs.replace(record, bridge=parent, bridge_created=False)
        return record, Uplink("macvlan", index, await run(worker.link_mtu, index), mode)

    async def restore(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> Uplink | None:
        index = await run(worker.link_exists, record.bridge)
        if index is None:
            return None
        mode = record.options.get(records.MACVLAN_MODE_OPTION, "bridge")
        return Uplink("macvlan", index, await run(worker.link_mtu, index), mode)

    async def delete(self, run: Run, worker: NetnsWorker, record: NetworkRecord) -> None:
        pass  # the macvlan links die with their containers' namespaces

    def rules(self, chains: iptables.Chains, record: NetworkRecord, hairpin: bool) -> list[iptables.Rule]:
        return []


DRIVERS: dict[str, Driver] = {d.name: d for d in (BridgeDriver(), MacvlanDriver())}
