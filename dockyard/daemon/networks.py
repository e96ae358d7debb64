"""NetworkService: the predefined networks (bridge, host, none) and container sandboxes.

Implements ``interfaces.NetworkAttacher`` for the container service and answers the network
API (list, inspect). State: one record per network in the ``networks`` table and one row per
address in ``ip_allocs``; sandboxes themselves are kernel objects (pinned namespaces under
``DaemonConfig.netns_dir``) that outlive a daemon restart. Kernel work runs on the single
``NetnsWorker`` thread; the event loop only awaits it.

The default bridge is created on start when missing and deleted only on request
(``remove_default_bridge``): running containers keep their sandboxes across restarts, and a
bridge this daemon did not create is never changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings as ApiEndpointSettings
from dockyard.apitypes.container import NetworkSettings
from dockyard.apitypes.network import IPAM, EndpointResource, IPAMConfig, Network
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.interfaces import EndpointSettings, EventSink, SandboxInfo
from dockyard.network import etcfiles, ipam, netns
from dockyard.network.sandbox import NetnsWorker
from dockyard.storage.metadata import Database

log = logging.getLogger("dockyard.networks")

BRIDGE, HOST, NONE = "bridge", "host", "none"
_DRIVERS = {BRIDGE: "bridge", HOST: "host", NONE: "null"}


class NetworkRecord(msgspec.Struct):
    """What the ``networks`` table stores for one network (doc column)."""
    id: str
    name: str
    driver: str
    created: str
    subnet: str = ""
    gateway: str = ""  # address only, e.g. "172.30.0.1"
    bridge: str = ""  # kernel link name (bridge driver)
    bridge_created: bool = False  # True: this daemon made the link and may delete it
    options: dict[str, str] = {}
    labels: dict[str, str] = {}


@dataclass
class _Sandbox:
    container_id: str
    name: str
    network: NetworkRecord | None  # None: container:<id> mode (no endpoint of its own)
    netns_path: Path | None
    address: ipaddress.IPv4Interface | None = None
    files: tuple[Path | None, Path | None, Path | None] = (None, None, None)

    @property
    def endpoint_id(self) -> str:
        seed = f"{self.network.id if self.network else ''}/{self.container_id}/{self.address}"
        return hashlib.sha256(seed.encode()).hexdigest()

    @property
    def sandbox_id(self) -> str:
        return hashlib.sha256(f"sandbox/{self.container_id}".encode()).hexdigest()

    @property
    def mac(self) -> str:
        return ipam.mac_for(self.address.ip) if self.address else ""


def _now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


class NetworkService:
    def __init__(self, config: DaemonConfig, db: Database, events: EventSink) -> None:
        self._config = config
        self._db = db
        self._events = events
        self._worker: NetnsWorker | None = None
        self._networks: dict[str, NetworkRecord] = {}  # by name
        self._pool: ipam.Pool | None = None  # the default bridge's addresses
        self._bridge_index = 0
        self._mtu = 1500
        self._sandboxes: dict[str, _Sandbox] = {}

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the predefined networks, making the default bridge if needed."""
        self._worker = NetnsWorker()
        await self._run(netns.prepare_dir, self._config.netns_dir)
        stored = {r.name: r for r in (msgspec.json.decode(doc, type=NetworkRecord)
                                      for (doc,) in self._db.query("SELECT doc FROM networks"))}
        for name in (HOST, NONE):
            self._networks[name] = stored.get(name) or self._save(
                NetworkRecord(id=secrets.token_hex(32), name=name, driver=_DRIVERS[name],
                              created=_now_rfc3339()))
        if self._config.bridge != "none":
            self._networks[BRIDGE] = await self._ensure_default_bridge(stored.get(BRIDGE))

    async def stop(self) -> None:
        """Live-restore: sandboxes of running containers stay as they are."""
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
            wanted = ipaddress.IPv4Interface(f"{record.gateway}/{record.subnet.split('/')[1]}")
        ours = record is not None and record.bridge == name and record.bridge_created
        state = await self._run(worker.bridge_state, name)
        if state is None:
            if wanted is None:
                subnet = ipam.pick_subnet(self._config.default_address_pools,
                                          await self._run(worker.networks_in_use))
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
        self._bridge_index = index
        self._mtu = await self._run(worker.link_mtu, index)
        fresh = NetworkRecord(
            id=record.id if record else secrets.token_hex(32), name=BRIDGE, driver="bridge",
            created=record.created if record else _now_rfc3339(), subnet=str(wanted.network),
            gateway=str(wanted.ip), bridge=name, bridge_created=ours,
            options={
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": name,
                "com.docker.network.driver.mtu": str(self._mtu),
            })
        if fresh != record:
            self._save(fresh)
        self._pool = ipam.Pool(wanted.network, wanted.ip)
        for (address,) in self._db.query("SELECT address FROM ip_allocs WHERE network_id = ?", (fresh.id,)):
            self._pool.mark_used(ipaddress.IPv4Address(address))
        return fresh

    async def remove_default_bridge(self) -> None:
        """Delete the default bridge if this daemon created it (tests, uninstall)."""
        record = self._networks.get(BRIDGE)
        if record is not None and record.bridge_created and self._worker is not None:
            await self._run(self._worker.delete_link, record.bridge)

    def _save(self, record: NetworkRecord) -> NetworkRecord:
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO networks (id, name, doc) VALUES (?, ?, ?)",
                        (record.id, record.name, msgspec.json.encode(record)))
        return record

    async def reconcile(self, live_containers: Mapping[str, str] | Iterable[str]) -> None:
        """After a restart: keep the sandboxes of live containers (id -> name, or just ids),
        release every address and namespace file whose container is gone."""
        names = dict(live_containers) if isinstance(live_containers, Mapping) else {c: "" for c in live_containers}
        bridge = self._networks.get(BRIDGE)
        gone: list[tuple[str, str]] = []
        for network_id, address, owner in self._db.query("SELECT network_id, address, owner FROM ip_allocs"):
            if owner not in names:
                gone.append((network_id, address))
            elif bridge is not None and network_id == bridge.id and owner not in self._sandboxes:
                prefix = bridge.subnet.split("/")[1]
                self._sandboxes[owner] = _Sandbox(
                    owner, names[owner], bridge, self._netns_path(owner),
                    ipaddress.IPv4Interface(f"{address}/{prefix}"),
                    self._file_paths(self._config.container_data_dir(owner)))
        if gone:
            await asyncio.to_thread(self._delete_addresses, gone)
            self._forget_addresses(gone)
        by_prefix = {c[:12]: c for c in names}
        for path in self._config.netns_dir.iterdir():
            owner = by_prefix.get(path.name)
            if owner is None:
                await self._run(netns.remove, path)
            elif owner not in self._sandboxes:  # a namespace without an address: --network none
                self._sandboxes[owner] = _Sandbox(owner, names[owner], self._networks[NONE], path,
                                                  files=self._file_paths(self._config.container_data_dir(owner)))

    # ---- sandboxes (NetworkAttacher) ---------------------------------------------------------

    def _netns_path(self, container_id: str) -> Path:
        return self._config.netns_dir / container_id[:12]

    @staticmethod
    def _file_paths(data_dir: Path) -> tuple[Path, Path, Path]:
        return data_dir / "hosts", data_dir / "resolv.conf", data_dir / "hostname"

    def _network_for_mode(self, mode: str) -> NetworkRecord:
        if mode in ("", "default"):  # with the default bridge disabled (--bridge=none): no network
            name = BRIDGE if BRIDGE in self._networks else NONE
        else:
            name = mode
        record = self._networks.get(name)
        if record is None:
            raise errdefs.NotFound(f"network {name} not found")
        return record

    async def create_sandbox(self, container_id: str, mode: str, hostname: str, domainname: str,
                             dns: list[str], dns_search: list[str], dns_options: list[str],
                             extra_hosts: list[str], data_dir: Path, peer_netns: str | None = None,
                             container_name: str = "") -> SandboxInfo:
        """See ``interfaces.NetworkAttacher``. ``container:<full id>`` joins the peer's namespace
        and shares its /etc files; ``peer_netns`` overrides the namespace path found for it."""
        existing = self._sandboxes.get(container_id)
        if existing is not None:
            return self._info(existing)
        if mode.startswith("container:"):
            sandbox = self._joined(container_id, container_name, mode.split(":", 1)[1], peer_netns)
            self._sandboxes[container_id] = sandbox
            return self._info(sandbox)
        network = self._network_for_mode(mode)
        sandbox = _Sandbox(container_id, container_name, network, None, files=self._file_paths(data_dir))
        if network.name == HOST:
            hosts = etcfiles.host_hosts(extra_hosts)
            resolv = etcfiles.resolv_conf(dns, dns_search, dns_options, host_netns=True)
        else:
            sandbox.netns_path = self._netns_path(container_id)
            if network.name == BRIDGE:
                assert self._pool is not None
                address = self._pool.allocate()
                sandbox.address = ipaddress.IPv4Interface(f"{address}/{self._pool.subnet.prefixlen}")
            hosts = etcfiles.hosts(hostname, domainname, str(sandbox.address.ip) if sandbox.address else None,
                                   extra_hosts)
            resolv = etcfiles.resolv_conf(dns, dns_search, dns_options)
        # The address record (an fsync'd transaction) and the kernel work run side by side.
        steps = [self._run(self._set_up, sandbox, hosts, resolv, hostname)]
        if sandbox.address is not None:
            steps.append(asyncio.to_thread(self._record_address, network.id, sandbox))
        results = await asyncio.gather(*steps, return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self._undo(sandbox)
            if isinstance(failure, OSError):
                raise errdefs.System(f"failed to set up the network of container {container_id[:12]}: "
                                     f"{failure}") from failure
            raise failure
        self._sandboxes[container_id] = sandbox
        self._events.emit("network", "connect", network.id,
                          {"container": container_id, "name": network.name, "type": network.driver})
        return self._info(sandbox)

    def _joined(self, container_id: str, name: str, peer_id: str, peer_netns: str | None) -> _Sandbox:
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
        return _Sandbox(container_id, name, None, path, files=files)

    def _record_address(self, network_id: str, sandbox: _Sandbox) -> None:
        assert sandbox.address is not None
        with self._db.transaction() as cur:
            cur.execute("INSERT INTO ip_allocs (network_id, address, owner) VALUES (?, ?, ?)",
                        (network_id, str(sandbox.address.ip), sandbox.container_id))

    async def _undo(self, sandbox: _Sandbox) -> None:
        """Undo a half-made sandbox (each step is idempotent)."""
        if sandbox.netns_path is not None:
            await self._run(netns.remove, sandbox.netns_path)
        if sandbox.address is not None and sandbox.network is not None:
            rows = [(sandbox.network.id, str(sandbox.address.ip))]
            await asyncio.to_thread(self._delete_addresses, rows)
            self._forget_addresses(rows)

    def _set_up(self, sandbox: _Sandbox, hosts: str, resolv: str, hostname: str) -> None:
        """On the worker thread: the /etc files and the namespace with its interfaces."""
        worker = self._worker
        assert worker is not None
        hosts_path, resolv_path, hostname_path = sandbox.files
        assert hosts_path is not None and resolv_path is not None and hostname_path is not None
        hosts_path.parent.mkdir(parents=True, exist_ok=True)
        etcfiles.write_atomic(hosts_path, hosts)
        etcfiles.write_atomic(resolv_path, resolv)
        etcfiles.write_atomic(hostname_path, etcfiles.hostname_file(hostname))
        path = sandbox.netns_path
        if path is None:
            return
        netns.remove(path)  # a leftover of a crash between create and release, if any
        if sandbox.address is None:
            worker.make_isolated(path)
        else:
            assert self._pool is not None
            worker.make_bridged(path, self._bridge_index, self._mtu, sandbox.address, self._pool.gateway,
                                sandbox.mac)

    def _delete_addresses(self, rows: list[tuple[str, str]]) -> None:
        with self._db.transaction() as cur:
            cur.executemany("DELETE FROM ip_allocs WHERE network_id = ? AND address = ?", rows)

    def _forget_addresses(self, rows: list[tuple[str, str]]) -> None:
        """Return addresses to the in-memory pool (event loop only)."""
        bridge = self._networks.get(BRIDGE)
        for network_id, address in rows:
            if self._pool is not None and bridge is not None and bridge.id == network_id:
                self._pool.release(ipaddress.IPv4Address(address))

    async def release_sandbox(self, container_id: str) -> None:
        """Unpin the namespace (the kernel drops the veth when its last process exits) and free
        the address. Idempotent."""
        sandbox = self._sandboxes.pop(container_id, None)
        if sandbox is not None and sandbox.network is None:
            return  # container:<id>: the namespace is the peer's
        rows = [tuple(r) for r in self._db.query(
            "SELECT network_id, address FROM ip_allocs WHERE owner = ?", (container_id,))]
        steps = []
        if sandbox is None or sandbox.netns_path is not None:
            steps.append(self._run(netns.remove, self._netns_path(container_id)))
        if rows:
            steps.append(asyncio.to_thread(self._delete_addresses, rows))
        await asyncio.gather(*steps)
        self._forget_addresses(rows)
        if sandbox is not None and sandbox.network is not None:
            self._events.emit("network", "disconnect", sandbox.network.id,
                              {"container": container_id, "name": sandbox.network.name,
                               "type": sandbox.network.driver})

    def _info(self, sandbox: _Sandbox) -> SandboxInfo:
        hosts, resolv, hostname = sandbox.files
        if sandbox.network is None:
            return SandboxInfo(netns_path=str(sandbox.netns_path) if sandbox.netns_path else None,
                               hosts_path=hosts, resolv_conf_path=resolv, hostname_path=hostname)
        endpoint = EndpointSettings(network_name=sandbox.network.name, network_id=sandbox.network.id,
                                    endpoint_id=sandbox.endpoint_id)
        if sandbox.address is not None:
            endpoint.ip_address = str(sandbox.address.ip)
            endpoint.ip_prefix_len = sandbox.address.network.prefixlen
            endpoint.gateway = sandbox.network.gateway
            endpoint.mac_address = sandbox.mac
        return SandboxInfo(netns_path=str(sandbox.netns_path) if sandbox.netns_path else None,
                           endpoints=[endpoint], hosts_path=hosts, resolv_conf_path=resolv,
                           hostname_path=hostname)

    # ---- container inspect --------------------------------------------------------------------

    def network_settings(self, container_id: str, network_mode: str = "") -> NetworkSettings:
        """Docker's NetworkSettings for a container: its endpoint while it has a sandbox,
        the network's empty entry otherwise."""
        sandbox = self._sandboxes.get(container_id)
        if network_mode.startswith("container:") or (sandbox is not None and sandbox.network is None):
            return NetworkSettings()
        try:
            network = sandbox.network if sandbox is not None else self._network_for_mode(network_mode)
        except errdefs.NotFound:
            return NetworkSettings()
        assert network is not None
        entry = ApiEndpointSettings(network_id=network.id)
        settings = NetworkSettings(networks={network.name: entry})
        if sandbox is None:
            return settings
        entry.endpoint_id = sandbox.endpoint_id
        settings.sandbox_id = sandbox.sandbox_id
        settings.sandbox_key = str(sandbox.netns_path) if sandbox.netns_path else ""
        settings.endpoint_id = entry.endpoint_id
        if sandbox.address is not None:
            entry.mac_address = settings.mac_address = sandbox.mac
            entry.gateway = settings.gateway = network.gateway
            entry.ip_address = settings.ip_address = str(sandbox.address.ip)
            entry.ip_prefix_len = settings.ip_prefix_len = sandbox.address.network.prefixlen
        return settings

    def endpoint_settings_json(self, container_id: str, network_mode: str = "") -> dict:
        """``network_settings`` as plain JSON data (Docker's names)."""
        return msgspec.to_builtins(self.network_settings(container_id, network_mode))

    # ---- network API ---------------------------------------------------------------------------

    def _to_api(self, record: NetworkRecord, with_containers: bool) -> Network:
        config = [IPAMConfig(subnet=record.subnet, gateway=record.gateway)] if record.subnet else []
        containers: dict[str, EndpointResource] = {}
        if with_containers:
            for sandbox in self._sandboxes.values():
                if sandbox.network is not None and sandbox.network.id == record.id:
                    containers[sandbox.container_id] = EndpointResource(
                        name=sandbox.name, endpoint_id=sandbox.endpoint_id, mac_address=sandbox.mac,
                        ipv4_address=str(sandbox.address) if sandbox.address else "")
        return Network(name=record.name, id=record.id, created=record.created, driver=record.driver,
                       ipam=IPAM(config=config), containers=containers, options=dict(record.options),
                       labels=dict(record.labels))

    def find(self, ref: str) -> NetworkRecord:
        """By full ID, then name, then unique ID prefix (as dockerd resolves network references)."""
        records = list(self._networks.values())
        for record in records:
            if record.id == ref:
                return record
        for record in records:
            if record.name == ref:
                return record
        matches = [r for r in records if ref and r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errdefs.InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found on ID)")
        raise errdefs.NotFound(f"network {ref} not found")

    def inspect(self, ref: str) -> Network:
        return self._to_api(self.find(ref), with_containers=True)

    def list(self, filters: dict[str, list[str]]) -> list[Network]:
        known = {"name", "id", "driver", "type", "scope", "label", "dangling"}
        for key in filters:
            if key not in known:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        out = []
        for record in self._networks.values():
            if not _matches(record, filters):
                continue
            out.append(self._to_api(record, with_containers=False))
        return out

    async def create(self, body: object) -> object:
        raise errdefs.NotImplementedFeature("user-defined networks are not supported yet by this daemon")

    def remove(self, ref: str) -> None:
        record = self.find(ref)
        raise errdefs.Forbidden(f"{record.name} is a pre-defined network and cannot be removed")

    def prune(self, filters: dict[str, list[str]]) -> list[str]:
        """Only user-defined networks are ever pruned; there are none yet."""
        return []


def _matches(record: NetworkRecord, filters: dict[str, list[str]]) -> bool:
    def any_of(key: str, test) -> bool:
        values = filters.get(key)
        return not values or any(test(v) for v in values)

    labels = record.labels

    def label_ok(spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in labels and (not eq or labels[key] == value)

    return (any_of("name", lambda v: v in record.name)
            and any_of("id", lambda v: record.id.startswith(v))
            and any_of("driver", lambda v: v == record.driver)
            and any_of("type", lambda v: v == "builtin")  # every network here is predefined
            and any_of("scope", lambda v: v == "local")
            and any_of("dangling", lambda v: v.lower() in ("false", "0"))  # predefined: never dangling
            and all(label_ok(spec) for spec in filters.get("label", [])))
