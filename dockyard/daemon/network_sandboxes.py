"""Container sandboxes (``interfaces.NetworkAttacher``): made with their first network's
endpoint, /etc files, resolver and published ports; released; rendered for container inspect.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Iterable, Mapping

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings as ApiEndpointSettings
from dockyard.apitypes.container import NetworkSettings, PortBinding
from dockyard.daemon.interfaces import SandboxInfo
from dockyard.daemon.network_core import BRIDGE, HOST, NONE
from dockyard.daemon.network_endpoints import EndpointOps
from dockyard.daemon.network_model import Sandbox, UplinkState
from dockyard.network import etcfiles, netns, portmap, records
from dockyard.network.drivers import DRIVERS


class SandboxOps(EndpointOps):
    async def create_sandbox(self, container_id: str, mode: str, hostname: str, domainname: str,
                             dns: list[str], dns_search: list[str], dns_options: list[str],
                             extra_hosts: list[str], data_dir: Path, peer_netns: str | None = None,
                             container_name: str = "", *,
                             port_bindings: dict[str, list[PortBinding] | None] | None = None,
                             exposed_ports: Iterable[str] = (), publish_all: bool = False,
                             endpoint_config: ApiEndpointSettings | None = None,
                             links: Iterable[str] = (),
                             more_networks: Mapping[str, ApiEndpointSettings | None] | None = None) -> SandboxInfo:
        """See ``interfaces.NetworkAttacher``. ``container:<full id>`` joins the peer's namespace
        and shares its /etc files; ``peer_netns`` overrides the namespace path found for it.
        On a bridge network: ``port_bindings``/``publish_all`` publish ports (reserved before
        anything else is made), ``endpoint_config`` gives --ip, --mac-address and
        --network-alias, ``links`` (``name[:alias]``, default bridge) become /etc/hosts entries,
        ``more_networks`` (name or ID -> its endpoint config) are connected as eth1, eth2, ..."""
        existing = self._sandboxes.get(container_id)
        if existing is not None:
            return self._info(existing)
        if mode.startswith("container:"):
            sandbox = self._joined(container_id, container_name, mode.split(":", 1)[1], peer_netns)
            self._sandboxes[container_id] = sandbox
            return self._info(sandbox)
        network = self._network_for_mode(mode)
        extra_networks = []
        for ref, config in (more_networks or {}).items():
            extra = self._network_for_mode(ref)
            if extra.id == network.id:  # the same network named by name and by ID
                endpoint_config = endpoint_config or config
            elif network.driver not in (HOST, "null"):
                extra_networks.append((extra, config))
        sandbox = Sandbox(container_id, container_name, network, None, files=self._file_paths(data_dir))
        bridge = self._bridges.get(network.id)
        if bridge is None and network.driver in DRIVERS:
            raise errdefs.System(f"the host interface {network.bridge} of network {network.name} was not "
                                 f"found: remove and create the network again")
        user_defined = bridge is not None and not network.builtin
        wanted_ip, mac = self._endpoint_wishes(network, bridge, endpoint_config)
        aliases = list(endpoint_config.aliases or []) if endpoint_config is not None else []
        if aliases and not user_defined:
            raise errdefs.InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks")
        sandbox.aliases = aliases
        sandbox.mac_address = mac or ""
        # published ports: on bridges only (Docker ignores them on other drivers)
        publishable = bridge is not None and DRIVERS[network.driver].publishes_ports
        default_host_ip = network.options.get(records.HOST_BINDING_OPTION) or "0.0.0.0"
        ipv6 = self._serving.ipv6_reachable(bridge is not None and bridge.pool6 is not None)
        requests = portmap.requested(port_bindings, exposed_ports, publish_all,
                                     default_host_ip, ipv6) if publishable else []
        link_entries = self._link_entries(links) if bridge is not None else []
        host_gateway = self._host_gateway()
        if network.driver == HOST:
            hosts, resolv = self._host_files(dns, dns_search, dns_options, extra_hosts, host_gateway)
        else:
            # checks --add-host before anything is made
            hosts = etcfiles.hosts(hostname, domainname, None, extra_hosts, host_gateway)
            sandbox.netns_path = self._netns_path(container_id)
            if bridge is not None:
                address = bridge.pool.claim(wanted_ip) if wanted_ip is not None else bridge.pool.allocate()
                sandbox.address = ipaddress.IPv4Interface(f"{address}/{bridge.pool.subnet.prefixlen}")
                try:
                    sandbox.address6 = self._allocate6(bridge, endpoint_config)
                except BaseException:
                    bridge.pool.release(address)
                    raise
                hosts = etcfiles.hosts(hostname, domainname, str(address), extra_hosts, host_gateway,
                                       link_entries)
            if user_defined:
                resolv, sandbox.upstreams = etcfiles.internal_resolv_conf(dns, dns_search, dns_options)
            else:
                resolv = etcfiles.resolv_conf(dns, dns_search, dns_options)
        if publishable:
            sandbox.exposed = sorted(exposed_ports or ())
            try:
                self._serving.reserve_ports(sandbox, requests)
            except BaseException:
                self._serving.stop(sandbox)
                if sandbox.address is not None:
                    bridge.pool.release(sandbox.address.ip)
                if sandbox.address6 is not None and bridge.pool6 is not None:
                    bridge.pool6.release(sandbox.address6.ip)
                raise
        if sandbox.netns_path is not None:
            # The kernel work (worker thread) and the file work (the /etc files, the address
            # record) run side by side.
            results = await asyncio.gather(
                asyncio.to_thread(self._write_files, network.id, sandbox, hosts, resolv, hostname),
                self._run(self._make_netns, sandbox, bridge), return_exceptions=True)
        else:
            # The host's namespace: only the three small files, written here. A thread hop
            # costs more (0.4-0.5 ms on a busy two-core machine) than the writes themselves.
            try:
                self._write_files(network.id, sandbox, hosts, resolv, hostname)
                results = []
            except Exception as e:
                results = [e]
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is None:
            try:
                await self._serving.serve(sandbox)
            except BaseException as e:
                failure = e
        if failure is not None:
            await self._undo(sandbox)
            if isinstance(failure, OSError):
                raise errdefs.System(f"failed to set up the network of container {container_id[:12]}: "
                                     f"{failure}") from failure
            raise failure
        self._sandboxes[container_id] = sandbox
        self._events.emit("network", "connect", network.id,
                          {"container": container_id, "name": network.name, "type": network.driver})
        if extra_networks:
            try:
                for extra_network, config in extra_networks:
                    await self._add_endpoint(sandbox, extra_network, config)
            except BaseException:
                await self.release_sandbox(container_id)
                raise
        return self._info(sandbox)

    def prepare_sandbox_files(self, container_id: str, mode: str, hostname: str, dns: list[str],
                              dns_search: list[str], dns_options: list[str], extra_hosts: list[str],
                              data_dir: Path) -> None:
        """See ``interfaces.NetworkAttacher``: only the host's namespace has files that nothing
        the start allocates goes into."""
        try:
            network = self._network_for_mode(mode)
            if network.driver != HOST:
                return
            hosts, resolv = self._host_files(dns, dns_search, dns_options, extra_hosts, self._host_gateway())
        except errdefs.DockyardError:
            return  # the start reports it
        for path, text in zip(self._file_paths(data_dir), (hosts, resolv, etcfiles.hostname_file(hostname))):
            etcfiles.write_atomic(path, text)

    @staticmethod
    def _host_files(dns: list[str], dns_search: list[str], dns_options: list[str], extra_hosts: list[str],
                    host_gateway: str) -> tuple[str, str]:
        """/etc/hosts and resolv.conf of a container in the host's namespace: the host's own."""
        return (etcfiles.host_hosts(extra_hosts, host_gateway),
                etcfiles.resolv_conf(dns, dns_search, dns_options, host_netns=True))

    def _link_entries(self, links: Iterable[str]) -> list[tuple[str, str]]:
        """Legacy --link name[:alias]: (address, "alias id12 name") lines for /etc/hosts."""
        out = []
        for link in links:
            target, _, alias = link.partition(":")
            target = target.lstrip("/")
            alias = alias.lstrip("/").rsplit("/", 1)[-1] or target
            peer = next((s for s in self._sandboxes.values()
                         if target in (s.name, s.container_id) or
                         (len(target) >= 12 and s.container_id.startswith(target))), None)
            if peer is None or peer.address is None:
                raise errdefs.InvalidParameter(
                    f"could not get container for {target}: it is not running on a bridge network")
            names = dict.fromkeys([alias, peer.container_id[:12], peer.name or target])
            out.append((str(peer.address.ip), " ".join(n for n in names if n)))
        return out

    def _host_gateway(self) -> str:
        """What --add-host name:host-gateway resolves to: the default bridge's gateway."""
        record = self._by_name(BRIDGE)
        return record.gateway if record is not None else ""

    def _joined(self, container_id: str, name: str, peer_id: str, peer_netns: str | None) -> Sandbox:
        peer = self._sandboxes.get(peer_id)
        files = peer.files if peer is not None else self._file_paths(self._config.container_data_dir(peer_id))
        if peer_netns is not None:
            path: Path | None = Path(peer_netns)
        elif peer is not None:
            path = peer.netns_path  # None: the peer shares the host's namespace
        elif self._netns_path(peer_id).exists():  # after a daemon restart
            path = self._netns_path(peer_id)
        else:
            raise errdefs.Conflict(f"cannot join network of a non running container: {peer_id}")
        return Sandbox(container_id, name, None, path, files=files)

    def _write_files(self, network_id: str, sandbox: Sandbox, hosts: str, resolv: str, hostname: str) -> None:
        hosts_path, resolv_path, hostname_path = sandbox.files
        assert hosts_path is not None and resolv_path is not None and hostname_path is not None
        hosts_path.parent.mkdir(parents=True, exist_ok=True)
        etcfiles.write_if_changed(hosts_path, hosts)
        etcfiles.write_if_changed(resolv_path, resolv)
        etcfiles.write_if_changed(hostname_path, etcfiles.hostname_file(hostname))
        if sandbox.address is not None:
            # not fsync'd: addresses matter only for containers that survive a daemon restart,
            # and no container survives a reboot
            rows = [(network_id, str(sandbox.address.ip), sandbox.container_id)]
            if sandbox.address6 is not None:
                rows.append((network_id, str(sandbox.address6.ip), sandbox.container_id))
            with self._db.transaction(durable=False) as cur:
                cur.executemany("INSERT INTO ip_allocs (network_id, address, owner) VALUES (?, ?, ?)", rows)

    async def _undo(self, sandbox: Sandbox) -> None:
        """Undo a half-made sandbox (each step is idempotent)."""
        await self._serving.unserve(sandbox)
        if sandbox.netns_path is not None:
            await self._run(netns.remove, sandbox.netns_path)
        if sandbox.address is not None and sandbox.network is not None:
            rows = [(sandbox.network.id, str(sandbox.address.ip))]
            if sandbox.address6 is not None:
                rows.append((sandbox.network.id, str(sandbox.address6.ip)))
            await asyncio.to_thread(self._delete_addresses, rows)
            self._forget_addresses(rows)

    def _make_netns(self, sandbox: Sandbox, bridge: UplinkState | None) -> None:
        """On the worker thread: the namespace with its interfaces."""
        worker = self._worker
        path = sandbox.netns_path
        assert worker is not None and sandbox.network is not None and path is not None
        netns.remove(path)  # a leftover of a crash between create and release, if any
        if bridge is None or sandbox.address is None:
            worker.make_isolated(path)
        else:
            gateway = None if sandbox.network.internal else bridge.pool.gateway
            gateway6 = bridge.pool6.gateway if bridge.pool6 is not None and not sandbox.network.internal else None
            worker.make_bridged(path, bridge.spec, sandbox.address, gateway, sandbox.mac, sandbox.address6, gateway6)

    async def release_sandbox(self, container_id: str) -> None:
        """Unpin the namespace (the kernel drops the veth when its last process exits) and free
        the address. Idempotent."""
        sandbox = self._sandboxes.pop(container_id, None)
        if sandbox is not None and sandbox.network is None:
            return  # container:<id>: the namespace is the peer's
        if sandbox is not None:
            await self._serving.unserve(sandbox)
        else:
            self._serving.state_path(container_id).unlink(missing_ok=True)
        rows = [tuple(r) for r in self._db.query(
            "SELECT network_id, address FROM ip_allocs WHERE owner = ?", (container_id,))]
        steps = []
        if sandbox is None or sandbox.netns_path is not None:
            steps.append(self._run(netns.remove, self._netns_path(container_id)))
        if rows:
            steps.append(asyncio.to_thread(self._delete_addresses, rows))
        await asyncio.gather(*steps)
        self._forget_addresses(rows)
        for ep in sandbox.endpoints() if sandbox is not None else []:
            self._events.emit("network", "disconnect", ep.network.id,
                              {"container": container_id, "name": ep.network.name, "type": ep.network.driver})

    def network_settings(self, container_id: str, network_mode: str = "") -> NetworkSettings:
        """Docker's NetworkSettings for a container: its endpoints while it has a sandbox,
        the network's empty entry otherwise."""
        sandbox = self._sandboxes.get(container_id)
        if network_mode.startswith("container:") or (sandbox is not None and sandbox.network is None):
            return NetworkSettings()
        if sandbox is None:
            try:
                network = self._network_for_mode(network_mode)
            except errdefs.DockyardError:
                return NetworkSettings()
            return NetworkSettings(networks={network.name: ApiEndpointSettings(network_id=network.id)})
        settings = NetworkSettings(networks={}, sandbox_id=sandbox.sandbox_id,
                                   sandbox_key=str(sandbox.netns_path) if sandbox.netns_path else "")
        for ep in sandbox.endpoints():
            if ep.network.name == NONE and sandbox.extra:
                continue  # a container whose first network was disconnected
            entry = ApiEndpointSettings(network_id=ep.network.id, endpoint_id=ep.endpoint_id)
            if ep.address is not None:
                entry.mac_address = ep.mac
                entry.gateway = ep.network.gateway
                entry.ip_address = str(ep.address.ip)
                entry.ip_prefix_len = ep.address.network.prefixlen
            if ep.address6 is not None:
                entry.global_ipv6_address = str(ep.address6.ip)
                entry.global_ipv6_prefix_len = ep.address6.network.prefixlen
                entry.ipv6_gateway = ep.network.gateway6
            if not ep.network.builtin and ep.network.id in self._bridges:
                entry.aliases = list(ep.aliases) or None
                entry.dns_names = [n for n in dict.fromkeys([sandbox.name, *ep.aliases,
                                                             sandbox.container_id[:12]]) if n]
            settings.networks[ep.network.name] = entry
            if ep.network.id == sandbox.network.id:  # the deprecated top-level fields: the first network
                settings.endpoint_id = entry.endpoint_id
                settings.mac_address, settings.gateway = entry.mac_address, entry.gateway
                settings.ip_address, settings.ip_prefix_len = entry.ip_address, entry.ip_prefix_len
                settings.global_ipv6_address = entry.global_ipv6_address
                settings.global_ipv6_prefix_len = entry.global_ipv6_prefix_len
                settings.ipv6_gateway = entry.ipv6_gateway
        settings.ports = self.published_ports(container_id)
        return settings

    def endpoint_settings_json(self, container_id: str, network_mode: str = "") -> dict:
        """``network_settings`` as plain JSON data (Docker's names)."""
        return msgspec.to_builtins(self.network_settings(container_id, network_mode))
