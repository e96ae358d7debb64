"""The network API: create (bridge or macvlan, its subnets and gateways), inspect, list,
remove, prune. Network create/remove run one at a time (``_admin``)."""

from __future__ import annotations

import asyncio
import calendar
import ipaddress
import re
import secrets
import time


from dockyard import errdefs
from dockyard.apitypes.network import CreateRequest, CreateResponse, EndpointResource, Network
from dockyard.daemon.network_core import BRIDGE, HOST, NetworkCore, enable_ip_forward
from dockyard.daemon.network_model import (
    UplinkState, now_rfc3339, parse_range, pool6_of, pool_of, range_and_aux,
)
from dockyard.network import iptables, ipam, records
from dockyard.network.drivers import DRIVERS, Driver
from dockyard.network.records import NetworkRecord, gateway_of

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # Docker's rule for object names


def _created_ns(created: str) -> int:
    """now_rfc3339's format back to ns since the epoch."""
    main, _, frac = created.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


class NetworkAdmin(NetworkCore):
    def _endpoints_on(self, network_id: str) -> dict[str, EndpointResource]:
        return {s.container_id: EndpointResource(name=s.name, endpoint_id=ep.endpoint_id, mac_address=ep.mac,
                                                 ipv4_address=str(ep.address) if ep.address else "",
                                                 ipv6_address=str(ep.address6) if ep.address6 else "")
                for s in self._sandboxes.values() for ep in s.endpoints() if ep.network.id == network_id}

    def inspect(self, ref: str) -> Network:
        record = self.find(ref)
        return records.to_api(record, self._endpoints_on(record.id))

    def list(self, filters: dict[str, list[str]]) -> list[Network]:
        records.check_filters(filters)
        in_use = {ep.network.id for s in self._sandboxes.values() for ep in s.endpoints()}
        return [records.to_api(r, {}) for r in self._networks.values()
                if records.matches(r, filters, r.id in in_use)]

    async def create(self, request: CreateRequest) -> CreateResponse:
        """A user-defined network: bridge (the default) or macvlan; one IPv4 subnet."""
        name = request.name
        if not name:
            raise errdefs.InvalidParameter("network name is required")
        if not _NAME.match(name):
            raise errdefs.InvalidParameter(
                f"invalid network name \"{name}\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        driver = request.driver or "bridge"
        if driver in (HOST, "null"):
            raise errdefs.Forbidden(f"only one instance of \"{driver}\" network is allowed")
        if driver == "ipvlan":
            assert self._worker is not None
            if not await self._run(self._worker.link_kind_supported, "ipvlan"):
                raise errdefs.NotImplementedFeature(
                    "ipvlan networks are not supported on this host: its kernel has no ipvlan driver")
            raise errdefs.NotImplementedFeature("ipvlan networks are not supported yet by this daemon")
        if driver not in DRIVERS:
            raise errdefs.NotFound(f"plugin \"{driver}\" not found")
        if request.ingress or request.config_only or \
                (request.config_from is not None and request.config_from.network):
            raise errdefs.NotImplementedFeature(
                "ingress and config-only networks are not supported yet by this daemon")
        if request.enable_ipv4 is False:
            raise errdefs.NotImplementedFeature("IPv6-only networks are not supported yet by this daemon")
        ipam_request = request.ipam
        if ipam_request is not None and ipam_request.driver not in ("", "default"):
            raise errdefs.NotFound(f"plugin \"{ipam_request.driver}\" not found")
        configs = (ipam_request.config or []) if ipam_request is not None else []
        v6 = [c for c in configs if ":" in c.subnet]
        v4 = [c for c in configs if c not in v6]
        if len(v4) > 1 or len(v6) > 1:
            raise errdefs.NotImplementedFeature(
                "several subnets of one address family per network are not supported yet by this daemon")
        if v6 and not request.enable_ipv6:
            raise errdefs.InvalidParameter("an IPv6 subnet needs IPv6 enabled on the network (--ipv6)")
        config = v4[0] if v4 else None
        options = dict(request.options or {})
        async with self._admin:
            if self._by_name(name) is not None:
                raise errdefs.Conflict(f"network with name {name} already exists")
            gateway = await self._choose_gateway(config, host_routes=DRIVERS[driver].checks_host_routes)
            ip_range, aux = range_and_aux(config, gateway)
            gateway6 = self._choose_gateway6(v6[0] if v6 else None) if request.enable_ipv6 else None
            record = NetworkRecord(
                id=secrets.token_hex(32), name=name, driver=driver, created=now_rfc3339(),
                subnet=str(gateway.network), gateway=str(gateway.ip), ip_range=ip_range, aux_addresses=aux,
                subnet6=str(gateway6.network) if gateway6 else "", gateway6=str(gateway6.ip) if gateway6 else "",
                internal=request.internal, attachable=request.attachable, options=options,
                labels=dict(request.labels or {}))
            record = await self._create_network(DRIVERS[driver], record)
        self._events.emit("network", "create", record.id, {"name": name, "type": driver})
        return CreateResponse(id=record.id)

    async def _create_network(self, driver: Driver, record: NetworkRecord) -> NetworkRecord:
        """The driver's host side, then the record, then the rules; undone on failure."""
        assert self._worker is not None
        record, spec = await driver.create(self._run, self._worker, record, self._networks.values())
        try:
            self._save(record)
        except BaseException:
            await driver.delete(self._run, self._worker, record)
            raise
        self._networks[record.id] = record
        self._bridges[record.id] = UplinkState.of(spec, pool_of(record, gateway_of(record)), pool6_of(record))
        if self._config.ip_forward and record.subnet6 and record.driver == BRIDGE:
            await asyncio.to_thread(enable_ip_forward, 6)
        if self._config.iptables:
            try:
                bridges = [record.bridge] if record.driver == BRIDGE else []
                await asyncio.to_thread(self._add_network_rules, self._network_rules(record), bridges,
                                        self._icc_off(record))
            except BaseException:
                await self._delete(record, emit=False)
                raise
        return record

    def _choose_gateway6(self, config) -> ipaddress.IPv6Interface:
        """The IPv6 subnet (given, or as Docker without pools: a random unique-local /64) and
        its gateway."""
        used = [ipaddress.IPv6Network(r.subnet6) for r in self._networks.values() if r.subnet6]
        if config is None:
            while True:
                subnet = ipaddress.IPv6Network((b"\xfd" + secrets.token_bytes(7) + bytes(8), 64))
                if not any(subnet.overlaps(u) for u in used):
                    return ipaddress.IPv6Interface(f"{subnet.network_address + 1}/64")
        try:
            subnet = ipaddress.IPv6Network(config.subnet)
        except ValueError as e:
            raise errdefs.InvalidParameter(f"invalid subnet {config.subnet}: {e}") from None
        if any(subnet.overlaps(u) for u in used):
            raise errdefs.Forbidden("Pool overlaps with other one on this address space")
        if config.ip_range or config.auxiliary_addresses:
            raise errdefs.NotImplementedFeature("--ip-range and --aux-address are not supported yet for IPv6")
        if config.gateway:
            try:
                gateway = ipaddress.IPv6Address(config.gateway)
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid gateway address {config.gateway}") from None
            if gateway not in subnet:
                raise errdefs.InvalidParameter(f"no matching subnet for gateway {gateway}")
        else:
            gateway = subnet.network_address + 1
        return ipaddress.IPv6Interface(f"{gateway}/{subnet.prefixlen}")

    async def _choose_gateway(self, config, host_routes: bool = True) -> ipaddress.IPv4Interface:
        """The subnet (given, or the first free one of the pools) and its gateway. A given
        subnet must not overlap another network's, nor, for a bridge, a network the host
        routes (a macvlan subnet is usually the parent's own LAN)."""
        used = [ipaddress.IPv4Network(r.subnet) for r in self._networks.values() if r.subnet]
        if host_routes or config is None or not config.subnet:
            used = await self._subnets_in_use()
        if config is None or not config.subnet:
            if config is not None and (config.gateway or config.ip_range):
                raise errdefs.InvalidParameter("a gateway or ip-range needs a subnet (--subnet)")
            subnet = ipam.pick_subnet(self._config.default_address_pools, used)
        else:
            try:
                subnet = ipaddress.IPv4Network(config.subnet)
            except ValueError as e:
                raise errdefs.InvalidParameter(f"invalid subnet {config.subnet}: {e}") from None
            if any(subnet.overlaps(u) for u in used):
                raise errdefs.Forbidden("Pool overlaps with other one on this address space")
        if config is not None and config.gateway:
            try:
                gateway = ipaddress.IPv4Address(config.gateway)
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid gateway address {config.gateway}") from None
            if gateway not in subnet:
                raise errdefs.InvalidParameter(f"no matching subnet for gateway {gateway}")
        elif config is not None and config.ip_range:
            gateway = parse_range(config.ip_range, subnet).network_address + 1  # as Docker: from the range
        else:
            gateway = subnet.network_address + 1
        return ipaddress.IPv4Interface(f"{gateway}/{subnet.prefixlen}")

    async def remove(self, ref: str) -> None:
        async with self._admin:
            record = self.find(ref)
            if record.builtin:
                raise errdefs.Forbidden(f"{record.name} is a pre-defined network and cannot be removed")
            if self._endpoints_on(record.id):
                raise errdefs.Forbidden(
                    f"error while removing network: network {record.name} id {record.id} has active endpoints")
            await self._delete(record)

    async def _delete(self, record: NetworkRecord, emit: bool = True) -> None:
        if self._config.iptables:
            await asyncio.to_thread(iptables.delete, self._network_rules(record))
        driver = DRIVERS.get(record.driver)
        if driver is not None:
            assert self._worker is not None
            await driver.delete(self._run, self._worker, record)
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM ip_allocs WHERE network_id = ?", (record.id,))
            cur.execute("DELETE FROM networks WHERE id = ?", (record.id,))
        self._networks.pop(record.id, None)
        self._bridges.pop(record.id, None)
        if emit:
            self._events.emit("network", "destroy", record.id, {"name": record.name, "type": record.driver})

    async def prune(self, filters: dict[str, list[str]], until_ns: int | None = None) -> list[str]:
        """Remove the user-defined networks no container uses; ``label``/``label!`` filters, and
        ``until`` (networks created before that time, in ns since the epoch)."""
        for key in filters:
            if key not in ("label", "label!"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        removed = []
        async with self._admin:
            for record in list(self._networks.values()):
                if record.builtin or self._endpoints_on(record.id):
                    continue
                if until_ns is not None and _created_ns(record.created) >= until_ns:
                    continue
                if not records.matches(record, {"label": filters.get("label", [])}, False):
                    continue
                if any(records.matches(record, {"label": [spec]}, False) for spec in filters.get("label!", [])):
                    continue
                await self._delete(record)
                removed.append(record.name)
        return removed
