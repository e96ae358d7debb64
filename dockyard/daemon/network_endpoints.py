"""Endpoints of running containers: ``docker network connect``/``disconnect`` (one more
interface ethN in a sandbox, or its removal), and the endpoint checks container create shares.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Mapping


from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings as ApiEndpointSettings
from dockyard.daemon.interfaces import StoppedContainerNetworks
from dockyard.daemon.network_core import HOST, NONE, NetworkCore, log
from dockyard.daemon.network_model import Endpoint, Sandbox
from dockyard.network import iptables
from dockyard.network.records import NetworkRecord


class EndpointOps(NetworkCore):
    def check_endpoints(self, mode: str, configs: Mapping[str, ApiEndpointSettings | None]) -> None:
        """See ``interfaces.NetworkAttacher``: what ``create_sandbox`` would refuse, said at
        container create already (as dockerd does)."""
        if mode.startswith("container:"):
            return
        first = self._network_for_mode(mode)
        for ref, config in configs.items():
            network = self._network_for_mode(ref)
            if network.id != first.id and first.driver in (HOST, "null"):
                raise errdefs.InvalidParameter("conflicting options: cannot attach both user-defined and "
                                               "non-user-defined network-modes")
            if config is None:
                continue
            uplink = self._bridges.get(network.id)
            self._endpoint_wishes(network, uplink, config)
            if config.aliases and (uplink is None or network.builtin):
                raise errdefs.InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks")
            wanted6 = config.ipam_config.ipv6_address if config.ipam_config is not None else ""
            if wanted6 and (uplink is None or uplink.pool6 is None):
                raise errdefs.InvalidParameter("user specified IPv6 address is supported only on networks "
                                               "with IPv6 enabled (--ipv6)")

    def _sandbox_of(self, ref: str) -> Sandbox | None:
        """A running container's sandbox by full ID, name or ID prefix; None when not running."""
        for match in (lambda s: s.container_id == ref, lambda s: s.name == ref.lstrip("/")):
            found = next((s for s in self._sandboxes.values() if match(s)), None)
            if found is not None:
                return found
        matches = [s for s in self._sandboxes.values() if ref and s.container_id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def _stopped(self) -> StoppedContainerNetworks:
        if self.stopped_containers is None:
            raise errdefs.Conflict("this daemon connects and disconnects running containers only")
        return self.stopped_containers

    async def connect(self, network_ref: str, container: str,
                      endpoint_config: ApiEndpointSettings | None = None) -> None:
        """``docker network connect``: one more interface (ethN) in a running container."""
        async with self._admin:
            network = self.find(network_ref)
            sandbox = self._sandbox_of(container)
            if sandbox is None:  # recorded on the container, joined at its next start
                if network.driver in (HOST, "null"):
                    raise errdefs.Forbidden("container cannot be disconnected from host network or "
                                            "connected to host network")
                self.check_endpoints(network.name, {network.name: endpoint_config})
                self._stopped().connect_stopped(container, network.name, network.id, endpoint_config)
                return
            await self._add_endpoint(sandbox, network, endpoint_config)
        self._tell_endpoints(sandbox)

    async def _add_endpoint(self, sandbox: Sandbox, network: NetworkRecord,
                            endpoint_config: ApiEndpointSettings | None) -> None:
        """One more interface (ethN) in the sandbox's namespace, on network."""
        if network.driver == "host" or (sandbox.network is not None and sandbox.network.driver == "host"):
            raise errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
        if sandbox.network is None or sandbox.netns_path is None:
            raise errdefs.Forbidden("container sharing network namespace with another container or host "
                                    "cannot be connected to any other network")
        if network.driver == "null" or (sandbox.network.name == NONE and not sandbox.extra):
            raise errdefs.Forbidden("container cannot be connected to multiple networks with one of the "
                                    "networks in private (none) mode")
        if any(ep.network.id == network.id for ep in sandbox.endpoints()):
            raise errdefs.Forbidden(f"endpoint with name {sandbox.name or sandbox.container_id[:12]} "
                                    f"already exists in network {network.name}")
        bridge = self._bridges.get(network.id)
        if bridge is None:
            raise errdefs.System(f"parent interface {network.bridge} of network {network.name} was not "
                                 f"found on the host")
        wanted_ip, mac = self._endpoint_wishes(network, bridge, endpoint_config)
        aliases = list(endpoint_config.aliases or []) if endpoint_config is not None else []
        if aliases and network.builtin:
            raise errdefs.InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks")
        used = {ep.ifname for ep in sandbox.endpoints()} | {sandbox.ifname}
        ifname = next(f"eth{n}" for n in range(1, 1000) if f"eth{n}" not in used)
        address = bridge.pool.claim(wanted_ip) if wanted_ip is not None else bridge.pool.allocate()
        try:
            address6 = self._allocate6(bridge, endpoint_config)
        except BaseException:
            bridge.pool.release(address)
            raise
        endpoint = Endpoint(network, ipaddress.IPv4Interface(f"{address}/{bridge.pool.subnet.prefixlen}"),
                             aliases, mac or "", ifname, sandbox.container_id, address6)
        try:
            assert self._worker is not None and endpoint.address is not None
            await self._run(self._worker.attach, sandbox.netns_path, bridge.spec, ifname,
                            endpoint.address, endpoint.mac, address6)
            try:
                await asyncio.to_thread(self._insert_address, network.id, str(address), sandbox.container_id)
                if address6 is not None:
                    await asyncio.to_thread(self._insert_address, network.id, str(address6.ip), sandbox.container_id)
            except BaseException:
                await self._run(self._worker.detach, sandbox.netns_path, ifname)
                await asyncio.to_thread(self._delete_addresses, [(network.id, str(address))])
                raise
        except BaseException as e:
            bridge.pool.release(address)
            if address6 is not None and bridge.pool6 is not None:
                bridge.pool6.release(address6.ip)
            if isinstance(e, OSError):
                raise errdefs.System(f"failed to connect container {sandbox.container_id[:12]} to "
                                     f"network {network.name}: {e}") from e
            raise
        sandbox.extra.append(endpoint)
        if not network.builtin and sandbox.resolver is None:
            await self._serving.start_resolver_late(sandbox)
        await self._serving.save_state(sandbox)
        self._events.emit("network", "connect", network.id,
                          {"container": sandbox.container_id, "name": network.name, "type": network.driver})

    async def disconnect(self, network_ref: str, container: str, force: bool = False) -> None:
        """``docker network disconnect``: the interface goes, its address is freed."""
        async with self._admin:
            network = self.find(network_ref)
            sandbox = self._sandbox_of(container)
            if sandbox is None:
                self._stopped().disconnect_stopped(container, network.name, network.id)
                return
            if network.driver == "host":
                raise errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
            endpoint = next((ep for ep in sandbox.endpoints() if ep.network.id == network.id), None)
            if endpoint is None or endpoint.address is None or sandbox.netns_path is None:
                raise errdefs.Forbidden(f"container {sandbox.container_id} is not connected to network {network.name}")
            assert self._worker is not None
            await self._run(self._worker.detach, sandbox.netns_path, endpoint.ifname)
            rows = [(network.id, str(endpoint.address.ip))]
            if endpoint.address6 is not None:
                rows.append((network.id, str(endpoint.address6.ip)))
            await asyncio.to_thread(self._delete_addresses, rows)
            self._forget_addresses(rows)
            if endpoint.network.id == sandbox.network.id and endpoint.ifname == sandbox.ifname:
                # the first network: its published ports go with it; the next endpoint takes its place
                rules, sandbox.port_rules = sandbox.port_rules, []
                if rules:
                    await asyncio.to_thread(iptables.delete, rules)
                for proxy in sandbox.proxies:
                    proxy.close()
                sandbox.proxies, sandbox.ports = [], []
                if sandbox.extra:
                    nxt = sandbox.extra.pop(0)
                    sandbox.network, sandbox.address, sandbox.aliases = nxt.network, nxt.address, nxt.aliases
                    sandbox.address6 = nxt.address6
                    sandbox.mac_address, sandbox.ifname = nxt.mac_address, nxt.ifname
                    if not nxt.network.internal:  # the way out moves to the new first network
                        uplink = self._bridges.get(nxt.network.id)
                        gateways = [] if uplink is None else [
                            uplink.pool.gateway, uplink.pool6.gateway if uplink.pool6 and nxt.address6 else None]
                        try:
                            await self._run(self._worker.default_routes, sandbox.netns_path, nxt.ifname, *gateways)
                        except OSError as e:
                            log.warning("container %s: no default route via %s: %s", sandbox.container_id[:12],
                                        nxt.network.name, e)
                else:
                    sandbox.network, sandbox.address, sandbox.aliases = self._by_name(NONE), None, []
                    sandbox.address6 = None
                    sandbox.mac_address = ""
            else:
                sandbox.extra = [ep for ep in sandbox.extra if ep.network.id != network.id]
            await self._serving.save_state(sandbox)
        self._events.emit("network", "disconnect", network.id,
                          {"container": sandbox.container_id, "name": network.name, "type": network.driver})
        self._tell_endpoints(sandbox)

    def container_renamed(self, container_id: str, name: str) -> None:
        """What ``docker network inspect`` shows as the endpoint's container name."""
        sandbox = self._sandboxes.get(container_id)
        if sandbox is not None:
            sandbox.name = name
