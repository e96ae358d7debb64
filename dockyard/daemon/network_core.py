"""NetworkCore: the state NetworkService's parts share (networks, uplinks, sandboxes, the
netns worker, the serving of sandboxes) and the small lookups and address-row helpers they all
use. The parts are mixins over it: network_admin (the network API), network_endpoints
(connect/disconnect), network_sandboxes (a container's sandbox), network_reconcile (after a
restart); networks.NetworkService composes them with the life cycle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from pathlib import Path
from typing import Callable

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings as ApiEndpointSettings
from dockyard.apitypes.container import PortBinding
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.interfaces import EndpointSettings, EventSink, SandboxInfo, StoppedContainerNetworks
from dockyard.daemon.network_model import Sandbox, UplinkState
from dockyard.daemon.network_serving import SandboxServing
from dockyard.network import iptables, portmap, records
from dockyard.network.drivers import DRIVERS
from dockyard.network.records import NetworkRecord
from dockyard.network.sandbox import NetnsWorker
from dockyard.storage.metadata import Database

log = logging.getLogger("dockyard.networks")

BRIDGE, HOST, NONE = "bridge", "host", "none"


def enable_ip_forward(version: int) -> None:
    """As dockerd with --ip-forward (the default): containers' traffic is routed by the host;
    IPv6 forwarding once an --ipv6 bridge network exists (the FORWARD policy is left alone:
    our own chains keep networks apart)."""
    path = Path("/proc/sys/net/ipv4/ip_forward" if version == 4 else "/proc/sys/net/ipv6/conf/all/forwarding")
    if path.read_text().strip() != "1":
        name = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
        log.warning("enabling IPv%d forwarding (%s=1), as --ip-forward asks", version, name)
        path.write_text("1\n")


class NetworkCore:
    """State and helpers shared by the parts of NetworkService (see the module docstring)."""

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

    async def _run(self, fn, *args):
        assert self._worker is not None, "NetworkService.start() was not called"
        return await asyncio.wrap_future(self._worker.submit(fn, *args))

    def _save(self, record: NetworkRecord) -> NetworkRecord:
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO networks (id, name, doc) VALUES (?, ?, ?)",
                        (record.id, record.name, msgspec.json.encode(record)))
        return record

    def _by_name(self, name: str) -> NetworkRecord | None:
        return next((r for r in self._networks.values() if r.name == name), None)

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

    def _network_for_mode(self, mode: str) -> NetworkRecord:
        if mode in ("", "default"):  # with the default bridge disabled (--bridge=none): no network
            record = self._by_name(BRIDGE) or self._by_name(NONE)
            assert record is not None
            return record
        return self.find(mode)

    def _netns_path(self, container_id: str) -> Path:
        return self._config.netns_dir / container_id[:12]

    @staticmethod
    def _file_paths(data_dir: Path) -> tuple[Path, Path, Path]:
        return data_dir / "hosts", data_dir / "resolv.conf", data_dir / "hostname"

    async def _subnets_in_use(self) -> list[ipaddress.IPv4Network]:
        assert self._worker is not None
        used = await self._run(self._worker.networks_in_use)
        return used + [ipaddress.IPv4Network(r.subnet) for r in self._networks.values() if r.subnet]

    def _network_rules(self, record: NetworkRecord) -> list[iptables.Rule]:
        driver = DRIVERS.get(record.driver)
        if record.id not in self._bridges or driver is None:
            return []
        return driver.rules(self._chains, record, hairpin=not self._userland_proxy)

    @staticmethod
    def _icc_off(record: NetworkRecord) -> bool:
        return record.driver == BRIDGE and not records.flag(record.options, records.ICC_OPTION, True)

    def _add_network_rules(self, rules: list[iptables.Rule], bridges: list[str], icc_off: bool = False) -> None:
        if icc_off:
            iptables.bridge_netfilter()
        iptables.add(rules)
        if not self._userland_proxy:
            for bridge in bridges:
                # as dockerd without the proxy: 127.0.0.1 may be routed to this bridge's
                # containers (a setting of the bridge only, not of the host)
                Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1\n")

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

    def _insert_address(self, network_id: str, address: str, owner: str) -> None:
        with self._db.transaction(durable=False) as cur:
            cur.execute("INSERT INTO ip_allocs (network_id, address, owner) VALUES (?, ?, ?)",
                        (network_id, address, owner))

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

    def _tell_endpoints(self, sandbox: Sandbox) -> None:
        if self.endpoints_changed is not None:
            try:
                self.endpoints_changed(sandbox.container_id, self._info(sandbox))
            except Exception:
                log.exception("container %s: recording its networks failed", sandbox.container_id[:12])

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

    def published_ports(self, container_id: str, sandbox: Sandbox | None = None) -> dict[str, list[PortBinding] | None]:
        """NetworkSettings.Ports of a container with a sandbox (``docker port``): exposed ports
        with their host bindings, null when not published."""
        sandbox = sandbox or self._sandboxes.get(container_id)
        if sandbox is None:
            return {}
        return {key: None if value is None else [PortBinding(host_ip=b["HostIp"], host_port=b["HostPort"])
                                                 for b in value]
                for key, value in portmap.settings(sandbox.ports, sandbox.exposed).items()}
