"""NetworkService: networks (bridge, host, none, user-defined bridges) and container sandboxes.

Implements ``interfaces.NetworkAttacher`` for the container service and answers the network
API. State: one record per network in the ``networks`` table and one row per address in
``ip_allocs``; sandboxes themselves are kernel objects (pinned namespaces under
``DaemonConfig.netns_dir``) that outlive a daemon restart. Kernel work runs on the single
``NetnsWorker`` thread; the event loop only awaits it.

The default bridge is created on start when missing and deleted only on request
(``remove_default_bridge``): running containers keep their sandboxes across restarts, and a
bridge this daemon did not create is never changed. User-defined bridges ("br-" + 12 hex) are
created by ``create`` and deleted by ``remove``/``prune``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets

import msgspec

from dockyard import errdefs
from dockyard.daemon.network_admin import NetworkAdmin
from dockyard.daemon.network_core import BRIDGE, HOST, NONE, enable_ip_forward, log
from dockyard.daemon.network_model import UplinkState, now_rfc3339, pool6_of, pool_of
from dockyard.daemon.network_reconcile import Reconciler
from dockyard.daemon.network_sandboxes import SandboxOps
from dockyard.network import iptables, ipam, records
from dockyard.network.drivers import DRIVERS
from dockyard.network.records import NetworkRecord, gateway_of
from dockyard.network.sandbox import NetnsWorker


class NetworkService(NetworkAdmin, Reconciler, SandboxOps):
    """The composition: the network API, sandboxes and their endpoints, reconcile on start
    (each a mixin over NetworkCore), and the life cycle here."""

    async def start(self) -> None:
        """Load the networks, making the default bridge (and any missing user bridge)."""
        self._worker = NetnsWorker(self._config.netns_dir)
        stored = [msgspec.json.decode(doc, type=NetworkRecord)
                  for (doc,) in self._db.query("SELECT doc FROM networks")]
        by_name = {r.name: r for r in stored}
        for name in (HOST, NONE):
            record = by_name.get(name) or self._save(NetworkRecord(
                id=secrets.token_hex(32), name=name, driver=records.DRIVER_OF_PREDEFINED[name],
                created=now_rfc3339()))
            self._networks[record.id] = record
        if self._config.bridge != "none":
            record = await self._ensure_default_bridge(by_name.get(BRIDGE))
            self._networks[record.id] = record
        for record in stored:
            if not record.builtin:
                await self._restore_network(record)
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if self._config.ip_forward:
            await asyncio.to_thread(enable_ip_forward, 4)
            if any(r.subnet6 and r.driver == BRIDGE for r in self._networks.values()):
                await asyncio.to_thread(enable_ip_forward, 6)
        if self._config.iptables:
            rules = [r for record in self._networks.values() for r in self._network_rules(record)]
            await asyncio.to_thread(self._setup_iptables, rules)

    def _setup_iptables(self, rules: list[iptables.Rule]) -> None:
        iptables.setup(self._chains, localhost=not self._userland_proxy)  # also drops what a killed run left
        self._add_network_rules(rules, [r.bridge for r in self._networks.values()
                                        if r.id in self._bridges and r.driver == BRIDGE],
                                icc_off=any(self._icc_off(r) for r in self._networks.values()))

    async def stop(self) -> None:
        """Live-restore: sandboxes of running containers stay as they are; their published ports
        and resolvers (served by this process) and our iptables chains go, and come back with
        ``reconcile`` at the next start."""
        for sandbox in self._sandboxes.values():
            self._serving.stop(sandbox)
        if self._config.iptables:
            await asyncio.to_thread(iptables.teardown, self._chains)
        if self._worker is not None:
            await asyncio.to_thread(self._worker.close)
            self._worker = None

    async def _ensure_default_bridge(self, record: NetworkRecord | None) -> NetworkRecord:
        worker = self._worker
        assert worker is not None
        name = self._config.bridge
        wanted = ipaddress.IPv4Interface(self._config.bip) if self._config.bip else None
        if record is not None and wanted is None and record.bridge == name and record.subnet:
            wanted = gateway_of(record)
        ours = record is not None and record.bridge == name and record.bridge_created
        state = await self._run(worker.bridge_state, name)
        if state is None:
            if wanted is None:
                subnet = ipam.pick_subnet(self._config.default_address_pools, await self._subnets_in_use())
                wanted = ipaddress.IPv4Interface(f"{subnet.network_address + 1}/{subnet.prefixlen}")
            index = await self._run(worker.create_bridge, name, wanted)
            ours = True
        else:
            index, kind, addresses = state
            if kind != "bridge":
                raise errdefs.System(f"cannot use {name!r} as the default bridge: it exists and is not a bridge")
            if ours:
                assert wanted is not None
                await self._run(worker.ensure_bridge_up, index, wanted)
            elif wanted is None and addresses:
                wanted = addresses[0]  # an existing bridge: use it as it is, as dockerd does
            elif wanted not in addresses:
                raise errdefs.System(
                    f"bridge {name!r} exists but was not created by this daemon and does not have "
                    f"the address {wanted or 'needed'}; choose another bridge name or bip")
        mtu = await self._run(worker.link_mtu, index)
        fresh = NetworkRecord(
            id=record.id if record else secrets.token_hex(32), name=BRIDGE, driver="bridge",
            created=record.created if record else now_rfc3339(), subnet=str(wanted.network),
            gateway=str(wanted.ip), bridge=name, bridge_created=ours,
            options=records.default_bridge_options(name, mtu, self._config.icc))
        if fresh != record:
            self._save(fresh)
        pool, pool6 = self._load_pools(fresh)
        self._bridges[fresh.id] = UplinkState(index, mtu, pool, pool6=pool6)
        return fresh

    async def _restore_network(self, record: NetworkRecord) -> None:
        """A user-defined network after a start: its driver finds or remakes the host side."""
        assert self._worker is not None
        self._networks[record.id] = record
        driver = DRIVERS.get(record.driver)
        if driver is None:
            log.warning("network %s: unknown driver %s; its containers cannot start", record.name, record.driver)
            return
        spec = await driver.restore(self._run, self._worker, record)
        if spec is None:
            log.warning("network %s: its host interface %s is gone; its containers cannot start",
                        record.name, record.bridge)
            return
        self._bridges[record.id] = UplinkState.of(spec, *self._load_pools(record))

    def _load_pools(self, record: NetworkRecord) -> tuple[ipam.Pool, ipam.Pool | None]:
        """The network's IPv4 (and IPv6) pools with the addresses recorded in use."""
        pool, pool6 = pool_of(record, gateway_of(record)), pool6_of(record)
        for (address,) in self._db.query("SELECT address FROM ip_allocs WHERE network_id = ?", (record.id,)):
            ip = ipaddress.ip_address(address)
            target = pool if ip.version == 4 else pool6
            if target is not None:
                target.mark_used(ip)
        return pool, pool6

    async def remove_default_bridge(self) -> None:
        """Delete the default bridge if this daemon created it (tests, uninstall)."""
        record = self._by_name(BRIDGE)
        if record is not None and record.bridge_created and self._worker is not None:
            await self._run(self._worker.delete_link, record.bridge)
