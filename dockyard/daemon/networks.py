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
import calendar
import ipaddress
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings as ApiEndpointSettings
from dockyard.apitypes.container import NetworkSettings, PortBinding
from dockyard.apitypes.network import CreateRequest, CreateResponse, EndpointResource, Network
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.interfaces import EndpointSettings, EventSink, SandboxInfo, StoppedContainerNetworks
from dockyard.daemon.network_model import (
    Endpoint, Sandbox, SandboxState, UplinkState, now_rfc3339, parse_range, pool6_of, pool_of, range_and_aux,
)
from dockyard.daemon.network_serving import SandboxServing
from dockyard.network import etcfiles, iptables, ipam, netns, portmap, records
from dockyard.network.drivers import DRIVERS, Driver
from dockyard.network.records import NetworkRecord, gateway_of
from dockyard.network.sandbox import SPARE_PREFIX, NetnsWorker
from dockyard.storage.metadata import Database

log = logging.getLogger("dockyard.networks")

BRIDGE, HOST, NONE = "bridge", "host", "none"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # Docker's rule for object names


def _created_ns(created: str) -> int:
    """now_rfc3339's format back to ns since the epoch."""
    main, _, frac = created.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


def _enable_ip_forward() -> None:
    """As dockerd with --ip-forward (the default): containers' traffic is routed by the host."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    if path.read_text().strip() != "1":
        log.warning("enabling IPv4 forwarding (net.ipv4.ip_forward=1), as --ip-forward asks")
        path.write_text("1\n")


class NetworkService:
    def __init__(self, config: DaemonConfig, db: Database, events: EventSink) -> None:
        self._config = config
        self._db = db
        self._events = events
        self._worker: NetnsWorker | None = None
        self._networks: dict[str, NetworkRecord] = {}  # by id
        self._bridges: dict[str, UplinkState] = {}  # by network id
        self._sandboxes: dict[str, Sandbox] = {}  # by container id
        self._admin = asyncio.Lock()  # network create/remove, one at a time
        # told about a running container's endpoints after network connect/disconnect (the
        # container service keeps them in its record); set by the composition root
        self.endpoints_changed: Callable[[str, SandboxInfo], None] | None = None
        # where connect/disconnect of a container that is not running go (the container service)
        self.stopped_containers: StoppedContainerNetworks | None = None
        # iptables chains of this daemon instance (several test daemons share a host)
        self._chains = iptables.Chains.for_instance(str(config.exec_root))
        self._state_dir = config.exec_root / "network"
        # Without iptables the proxy is the only way in, whatever --userland-proxy says.
        self._userland_proxy = config.userland_proxy or not config.iptables
        self._serving = SandboxServing(self._run, lambda: self._worker, self._sandboxes, self._chains,
                                       config.iptables, self._userland_proxy, self._state_dir)

    # ---- life cycle ------------------------------------------------------------------------

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
            await asyncio.to_thread(_enable_ip_forward)
        if self._config.iptables:
            rules = [r for record in self._networks.values() for r in self._network_rules(record)]
            await asyncio.to_thread(self._setup_iptables, rules)

    def _setup_iptables(self, rules: list[iptables.Rule]) -> None:
        iptables.setup(self._chains, localhost=not self._userland_proxy)  # also drops what a killed run left
        self._add_network_rules(rules, [r.bridge for r in self._networks.values()
                                        if r.id in self._bridges and r.driver == BRIDGE])

    def _add_network_rules(self, rules: list[iptables.Rule], bridges: list[str]) -> None:
        iptables.add(rules)
        if not self._userland_proxy:
            for bridge in bridges:
                # as dockerd without the proxy: 127.0.0.1 may be routed to this bridge's
                # containers (a setting of the bridge only, not of the host)
                Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1\n")

    def _network_rules(self, record: NetworkRecord) -> list[iptables.Rule]:
        driver = DRIVERS.get(record.driver)
        if record.id not in self._bridges or driver is None:
            return []
        return driver.rules(self._chains, record, hairpin=not self._userland_proxy)

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

    async def _run(self, fn, *args):
        assert self._worker is not None, "NetworkService.start() was not called"
        return await asyncio.wrap_future(self._worker.submit(fn, *args))

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
            options=records.default_bridge_options(name, mtu))
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

    async def _subnets_in_use(self) -> list[ipaddress.IPv4Network]:
        assert self._worker is not None
        used = await self._run(self._worker.networks_in_use)
        return used + [ipaddress.IPv4Network(r.subnet) for r in self._networks.values() if r.subnet]

    async def remove_default_bridge(self) -> None:
        """Delete the default bridge if this daemon created it (tests, uninstall)."""
        record = self._by_name(BRIDGE)
        if record is not None and record.bridge_created and self._worker is not None:
            await self._run(self._worker.delete_link, record.bridge)

    def _save(self, record: NetworkRecord) -> NetworkRecord:
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO networks (id, name, doc) VALUES (?, ?, ?)",
                        (record.id, record.name, msgspec.json.encode(record)))
        return record

    def _by_name(self, name: str) -> NetworkRecord | None:
        return next((r for r in self._networks.values() if r.name == name), None)

    async def reconcile(self, live_containers: Mapping[str, str] | Iterable[str]) -> None:
        """After a restart: keep the sandboxes of live containers (id -> name, or just ids),
        serve their resolvers and published ports again, release every address, namespace
        file and state file whose container is gone."""
        names = dict(live_containers) if isinstance(live_containers, Mapping) else {c: "" for c in live_containers}
        states: dict[str, SandboxState] = {}
        for path in list(self._state_dir.glob("*.json")):
            if path.stem not in names or path.stem in self._sandboxes:
                if path.stem not in names:
                    path.unlink(missing_ok=True)
                continue
            try:
                states[path.stem] = msgspec.json.decode(path.read_bytes(), type=SandboxState)
            except (OSError, msgspec.DecodeError):
                log.warning("unreadable network state %s: ports and names of that container are lost", path)
        gone: list[tuple[str, str]] = []
        found: dict[str, Sandbox] = {}
        for network_id, address, owner in self._db.query("SELECT network_id, address, owner FROM ip_allocs"):
            network = self._networks.get(network_id)
            if owner not in names or network is None:
                gone.append((network_id, address))
                continue
            if owner in self._sandboxes:
                continue
            sandbox = found.get(owner)
            if sandbox is None:
                sandbox = found[owner] = Sandbox(owner, names[owner], None, self._netns_path(owner),
                                                  files=self._file_paths(self._config.container_data_dir(owner)))
            state = states.get(owner) or SandboxState()
            extra = next((e for e in state.extra if e.network_id == network_id), None)
            if extra is not None:
                endpoint = next((e for e in sandbox.extra if e.network.id == network_id), None)
                if endpoint is None:
                    endpoint = Endpoint(network, None, list(extra.aliases), extra.mac_address, extra.ifname, owner)
                    sandbox.extra.append(endpoint)
                holder: Sandbox | Endpoint = endpoint
            else:
                sandbox.network = network
                holder = sandbox
            if ":" in address:
                holder.address6 = ipaddress.IPv6Interface(f"{address}/{network.subnet6.split('/')[1]}")
            else:
                holder.address = ipaddress.IPv4Interface(f"{address}/{network.subnet.split('/')[1]}")
        none = self._by_name(NONE)
        for owner, sandbox in found.items():
            if sandbox.network is None:  # its first network was disconnected
                sandbox.network = none
            self._sandboxes[owner] = sandbox
        if gone:
            await asyncio.to_thread(self._delete_addresses, gone)
            self._forget_addresses(gone)
        by_prefix = {c[:12]: c for c in names}
        for path in self._config.netns_dir.iterdir():
            if path.name.startswith(SPARE_PREFIX):
                continue  # the worker's own
            owner = by_prefix.get(path.name)
            if owner is None:
                await self._run(netns.remove, path)
            elif owner not in self._sandboxes:  # a namespace without an address: --network none
                self._sandboxes[owner] = Sandbox(owner, names[owner], none, path,
                                                  files=self._file_paths(self._config.container_data_dir(owner)))
        for owner, state in states.items():
            sandbox = self._sandboxes.get(owner)
            if sandbox is not None and sandbox.network is not None:
                await self._serving.restore(sandbox, state)

    # ---- sandboxes (NetworkAttacher) ---------------------------------------------------------

    def _netns_path(self, container_id: str) -> Path:
        return self._config.netns_dir / container_id[:12]

    @staticmethod
    def _file_paths(data_dir: Path) -> tuple[Path, Path, Path]:
        return data_dir / "hosts", data_dir / "resolv.conf", data_dir / "hostname"

    def _network_for_mode(self, mode: str) -> NetworkRecord:
        if mode in ("", "default"):  # with the default bridge disabled (--bridge=none): no network
            record = self._by_name(BRIDGE) or self._by_name(NONE)
            assert record is not None
            return record
        return self.find(mode)

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
        requests = portmap.requested(port_bindings, exposed_ports, publish_all,
                                     default_host_ip) if publishable else []
        link_entries = self._link_entries(links) if bridge is not None else []
        host_gateway = self._host_gateway()
        if network.driver == "host":
            hosts = etcfiles.host_hosts(extra_hosts, host_gateway)
            resolv = etcfiles.resolv_conf(dns, dns_search, dns_options, host_netns=True)
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
        # The kernel work (worker thread) and the file work (the /etc files, the address record)
        # run side by side.
        steps = [asyncio.to_thread(self._write_files, network.id, sandbox, hosts, resolv, hostname)]
        if sandbox.netns_path is not None:
            steps.append(self._run(self._make_netns, sandbox, bridge))
        results = await asyncio.gather(*steps, return_exceptions=True)
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

    def _endpoint_wishes(self, network: NetworkRecord, bridge: UplinkState | None,
                         config: ApiEndpointSettings | None) -> tuple[ipaddress.IPv4Address | None, str | None]:
        """The validated --ip and --mac-address of an endpoint (None: choose)."""
        if config is None:
            return None, None
        wanted = config.ipam_config.ipv4_address if config.ipam_config is not None else ""
        address = None
        if wanted:
            if bridge is None or network.builtin:
                raise errdefs.InvalidParameter("user specified IP address is supported on user defined networks only")
            try:
                address = ipaddress.IPv4Address(wanted)
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid IPv4 address: {wanted}") from None
            if address not in bridge.pool.subnet:
                raise errdefs.InvalidParameter(
                    f"no configured subnet or ip-range contain the IP address {address}")
        mac = config.mac_address or None
        if mac is not None and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
            raise errdefs.InvalidParameter(f"invalid MAC address: {mac}")
        return address, mac.lower() if mac else None

    @staticmethod
    def _allocate6(bridge: UplinkState, config: ApiEndpointSettings | None) -> ipaddress.IPv6Interface | None:
        """The endpoint's IPv6 address on an --ipv6 network (--ip6, or the next free one)."""
        wanted = config.ipam_config.ipv6_address if config is not None and config.ipam_config is not None else ""
        if bridge.pool6 is None:
            if wanted:
                raise errdefs.InvalidParameter("user specified IPv6 address is supported only on networks "
                                               "with IPv6 enabled (--ipv6)")
            return None
        if wanted:
            try:
                address = bridge.pool6.claim(ipaddress.IPv6Address(wanted))
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid IPv6 address: {wanted}") from None
        else:
            address = bridge.pool6.allocate()
        return ipaddress.IPv6Interface(f"{address}/{bridge.pool6.subnet.prefixlen}")

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
        etcfiles.write_atomic(hosts_path, hosts)
        etcfiles.write_atomic(resolv_path, resolv)
        etcfiles.write_atomic(hostname_path, etcfiles.hostname_file(hostname))
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

    def _delete_addresses(self, rows: list[tuple[str, str]]) -> None:
        with self._db.transaction(durable=False) as cur:
            cur.executemany("DELETE FROM ip_allocs WHERE network_id = ? AND address = ?", rows)

    def _forget_addresses(self, rows: list[tuple[str, str]]) -> None:
        """Return addresses to the in-memory pools (event loop only)."""
        for network_id, address in rows:
            bridge = self._bridges.get(network_id)
            ip = ipaddress.ip_address(address)
            pool = None if bridge is None else bridge.pool if ip.version == 4 else bridge.pool6
            if pool is not None:
                pool.release(ip)

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

    # ---- network connect / disconnect -------------------------------------------------------

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

    def _tell_endpoints(self, sandbox: Sandbox) -> None:
        if self.endpoints_changed is not None:
            try:
                self.endpoints_changed(sandbox.container_id, self._info(sandbox))
            except Exception:
                log.exception("container %s: recording its networks failed", sandbox.container_id[:12])

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

    def _insert_address(self, network_id: str, address: str, owner: str) -> None:
        with self._db.transaction(durable=False) as cur:
            cur.execute("INSERT INTO ip_allocs (network_id, address, owner) VALUES (?, ?, ?)",
                        (network_id, address, owner))

    def container_renamed(self, container_id: str, name: str) -> None:
        """What ``docker network inspect`` shows as the endpoint's container name."""
        sandbox = self._sandboxes.get(container_id)
        if sandbox is not None:
            sandbox.name = name

    def _info(self, sandbox: Sandbox) -> SandboxInfo:
        hosts, resolv, hostname = sandbox.files
        endpoints = []
        for ep in sandbox.endpoints():
            endpoint = EndpointSettings(network_name=ep.network.name, network_id=ep.network.id,
                                        endpoint_id=ep.endpoint_id, aliases=list(ep.aliases))
            if ep.address is not None:
                endpoint.ip_address = str(ep.address.ip)
                endpoint.ip_prefix_len = ep.address.network.prefixlen
                endpoint.gateway = ep.network.gateway
                endpoint.mac_address = ep.mac
            if ep.address6 is not None:
                endpoint.ipv6_address = str(ep.address6.ip)
                endpoint.ipv6_prefix_len = ep.address6.network.prefixlen
                endpoint.ipv6_gateway = ep.network.gateway6
            endpoints.append(endpoint)
        return SandboxInfo(netns_path=str(sandbox.netns_path) if sandbox.netns_path else None,
                           endpoints=endpoints, hosts_path=hosts, resolv_conf_path=resolv,
                           hostname_path=hostname, ports=self.published_ports(sandbox.container_id, sandbox))

    # ---- container inspect --------------------------------------------------------------------

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

    def published_ports(self, container_id: str, sandbox: Sandbox | None = None) -> dict[str, list[PortBinding] | None]:
        """NetworkSettings.Ports of a container with a sandbox (``docker port``): exposed ports
        with their host bindings, null when not published."""
        sandbox = sandbox or self._sandboxes.get(container_id)
        if sandbox is None:
            return {}
        return {key: None if value is None else [PortBinding(host_ip=b["HostIp"], host_port=b["HostPort"])
                                                 for b in value]
                for key, value in portmap.settings(sandbox.ports, sandbox.exposed).items()}

    def endpoint_settings_json(self, container_id: str, network_mode: str = "") -> dict:
        """``network_settings`` as plain JSON data (Docker's names)."""
        return msgspec.to_builtins(self.network_settings(container_id, network_mode))

    # ---- network API ---------------------------------------------------------------------------

    def _endpoints_on(self, network_id: str) -> dict[str, EndpointResource]:
        return {s.container_id: EndpointResource(name=s.name, endpoint_id=ep.endpoint_id, mac_address=ep.mac,
                                                 ipv4_address=str(ep.address) if ep.address else "",
                                                 ipv6_address=str(ep.address6) if ep.address6 else "")
                for s in self._sandboxes.values() for ep in s.endpoints() if ep.network.id == network_id}

    def find(self, ref: str) -> NetworkRecord:
        """By full ID, then name, then unique ID prefix (as dockerd resolves network references)."""
        candidates = list(self._networks.values())
        for match in ((r for r in candidates if r.id == ref), (r for r in candidates if r.name == ref)):
            found = next(match, None)
            if found is not None:
                return found
        matches = [r for r in candidates if ref and r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errdefs.InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found on ID)")
        raise errdefs.NotFound(f"network {ref} not found")

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
        if self._config.iptables:
            try:
                bridges = [record.bridge] if record.driver == BRIDGE else []
                await asyncio.to_thread(self._add_network_rules, self._network_rules(record), bridges)
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
