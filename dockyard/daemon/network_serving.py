"""What a sandbox needs from this process besides its kernel objects: the embedded resolver,
the published ports (userland proxy sockets and DNAT rules) and the state file that lets a
restarted daemon serve them again. NetworkService owns the sandboxes; this serves them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec

from dockyard import errdefs
from dockyard.daemon.network_model import ExtraState, Sandbox, SandboxState
from dockyard.network import etcfiles, iptables, portmap
from dockyard.network.dns import DnsServer
from dockyard.network.portmap import PortMapping
from dockyard.network.proxy import Proxy
from dockyard.network.sandbox import NetnsWorker

log = logging.getLogger("dockyard.networks")


class SandboxServing:
    def __init__(self, run: Callable[..., Awaitable[Any]], worker: Callable[[], NetnsWorker | None],
                 sandboxes: dict[str, Sandbox], chains: iptables.Chains, iptables_on: bool,
                 userland_proxy: bool, state_dir: Path) -> None:
        self._run = run  # fn(*args) on the netns worker thread
        self._get_worker = worker
        self._sandboxes = sandboxes  # NetworkService's, by container id: the resolvers' name table
        self._chains = chains
        self._iptables = iptables_on
        self._userland_proxy = userland_proxy
        self._state_dir = state_dir

    def _worker(self) -> NetnsWorker:
        worker = self._get_worker()
        assert worker is not None, "NetworkService.start() was not called"
        return worker

    async def restore(self, sandbox: Sandbox, state: SandboxState) -> None:
        """Serve a live container's resolver and published ports again after a restart."""
        sandbox.aliases, sandbox.exposed = list(state.aliases), list(state.exposed)
        sandbox.upstreams, sandbox.mac_address = [tuple(u) for u in state.upstreams], state.mac_address
        sandbox.ifname = state.ifname
        if sandbox.address is not None:
            for mapping in state.ports:
                try:
                    sock = portmap.rebind(mapping)
                except OSError as e:
                    log.warning("container %s: cannot publish %s:%d again: %s", sandbox.container_id[:12],
                                mapping.host_ip, mapping.host_port, e)
                    continue
                self.publish(sandbox, mapping, sock)
        try:
            await self.serve(sandbox)
        except Exception:
            log.exception("container %s: restoring its resolver and ports failed", sandbox.container_id[:12])

    @staticmethod
    def _kernel_target(sandbox: Sandbox, mapping: PortMapping) -> str | None:
        """The container address the kernel's DNAT sends a mapping to: of the host address's
        family; None for an IPv6 host address of a container without IPv6 (the proxy relays
        that to its IPv4 address, as docker-proxy does)."""
        if ipaddress.ip_address(mapping.host_ip).version == 6:
            return str(sandbox.address6.ip) if sandbox.address6 is not None else None
        return str(sandbox.address.ip) if sandbox.address is not None else None

    def proxied(self, sandbox: Sandbox, mapping: PortMapping) -> bool:
        """Whether the userland proxy serves a port, or its socket only holds it for the
        kernel's DNAT."""
        return self._userland_proxy or self._kernel_target(sandbox, mapping) is None

    def publish(self, sandbox: Sandbox, mapping: PortMapping, sock) -> None:
        assert sandbox.address is not None
        target = self._kernel_target(sandbox, mapping) or str(sandbox.address.ip)
        serve = self.proxied(sandbox, mapping)
        if serve and mapping.proto == "tcp":
            sock.listen(128)  # connections queue from now on, before the proxy starts
        sandbox.ports.append(mapping)
        sandbox.proxies.append(Proxy(sock, mapping.proto, (target, mapping.container_port), serve=serve))

    def ipv6_reachable(self, has_ipv6: bool) -> bool:
        """Whether a container can be published on IPv6 host addresses: it has an IPv6
        address, or the userland proxy relays to its IPv4 one."""
        return has_ipv6 or self._userland_proxy

    def reserve_ports(self, sandbox: Sandbox, requests: list[portmap.PortRequest]) -> None:
        for request in requests:
            try:
                reserved = portmap.reserve(request)
            except errdefs.DockyardError as e:
                raise type(e)(f"driver failed programming external connectivity on endpoint "
                              f"{sandbox.name or sandbox.container_id[:12]} ({sandbox.endpoint_id}): {e}") from None
            for mapping, sock in reserved:
                self.publish(sandbox, mapping, sock)

    async def serve(self, sandbox: Sandbox) -> None:
        """Once the namespace exists: the resolver inside it, the published ports' proxies and
        NAT rules, and the state a restarted daemon needs to do this again."""
        network, address = sandbox.network, sandbox.address
        assert network is not None
        if sandbox.upstreams and sandbox.netns_path is not None:
            udp, tcp = await self._run(self._worker().dns_sockets, sandbox.netns_path)
            sandbox.resolver = DnsServer(udp, tcp, self._lookup_for(sandbox), sandbox.upstreams,
                                         self._reverse_for(sandbox))
            await sandbox.resolver.start()
        for proxy in sandbox.proxies:
            await proxy.start()
        if sandbox.ports and self._iptables and address is not None:
            dnat: list[iptables.Rule] = []
            accept: list[iptables.Rule] = []
            for m in sandbox.ports:
                target = self._kernel_target(sandbox, m)
                if target is None:
                    continue  # IPv6 host address, IPv4-only container: the proxy alone
                d, a = iptables.port_rules(self._chains, network.bridge, m.proto, m.host_ip, m.host_port,
                                           target, m.container_port, hairpin=not self._userland_proxy)
                dnat += d
                accept += a
            sandbox.port_rules = dnat + accept
            await asyncio.to_thread(self._add_port_rules, dnat, accept)
        await self.save_state(sandbox)

    async def save_state(self, sandbox: Sandbox) -> None:
        """The state file, for a sandbox that has more than a namespace and an address."""
        if sandbox.aliases or sandbox.ports or sandbox.exposed or sandbox.upstreams or sandbox.mac_address \
                or sandbox.extra:
            state = SandboxState(
                aliases=sandbox.aliases, ports=sandbox.ports, exposed=sandbox.exposed,
                upstreams=sandbox.upstreams, mac_address=sandbox.mac_address, ifname=sandbox.ifname,
                extra=[ExtraState(e.network.id, e.ifname, e.aliases, e.mac_address) for e in sandbox.extra])
            await asyncio.to_thread(etcfiles.write_atomic, self.state_path(sandbox.container_id),
                                    msgspec.json.encode(state).decode())
        else:
            self.state_path(sandbox.container_id).unlink(missing_ok=True)

    @staticmethod
    def _add_port_rules(dnat: list[iptables.Rule], accept: list[iptables.Rule]) -> None:
        iptables.add(dnat)
        iptables.insert(accept, 2)  # after the established rule, before the isolation jump

    def state_path(self, container_id: str) -> Path:
        return self._state_dir / f"{container_id}.json"

    def stop(self, sandbox: Sandbox) -> None:
        """Close the sandbox's sockets in this process (the kernel rules are dropped apart)."""
        if sandbox.resolver is not None:
            sandbox.resolver.close()
            sandbox.resolver = None
        for proxy in sandbox.proxies:
            proxy.close()
        sandbox.proxies = []

    def _lookup_for(self, sandbox: Sandbox):
        """The resolver's name table for one container: the endpoints on the user-defined
        networks it is connected to (``name`` or ``name.<network>``), their addresses there."""
        def lookup(name: str) -> list | None:
            found: list = []
            for mine in sandbox.endpoints():
                network = mine.network
                if network.builtin:
                    continue
                wanted = name
                suffix = "." + network.name.lower()
                if wanted.endswith(suffix):
                    wanted = wanted[:-len(suffix)]
                for other in self._sandboxes.values():
                    for ep in other.endpoints():
                        if ep.network.id == network.id and ep.address is not None and (
                                wanted == other.name.lower() or wanted in (a.lower() for a in ep.aliases)
                                or (len(wanted) >= 12 and other.container_id.startswith(wanted))):
                            for ip in (ep.address.ip, ep.address6.ip if ep.address6 else None):
                                if ip is not None and ip not in found:
                                    found.append(ip)
            return found or None
        return lookup

    def _reverse_for(self, sandbox: Sandbox):
        """PTR answers for the resolver of one container: ``<name>.<network>`` of an address on
        a user-defined network it shares."""
        def reverse(address: ipaddress.IPv4Address) -> str | None:
            shared = {ep.network.id for ep in sandbox.endpoints() if not ep.network.builtin}
            for other in self._sandboxes.values():
                for ep in other.endpoints():
                    if ep.network.id in shared and ep.address is not None and ep.address.ip == address:
                        return f"{other.name or other.container_id[:12]}.{ep.network.name}"
            return None
        return reverse

    async def unserve(self, sandbox: Sandbox) -> None:
        """Everything ``serve`` made: sockets, NAT rules, the state file."""
        self.stop(sandbox)
        rules, sandbox.port_rules = sandbox.port_rules, []
        if rules:
            await asyncio.to_thread(iptables.delete, rules)
        self.state_path(sandbox.container_id).unlink(missing_ok=True)

    async def start_resolver_late(self, sandbox: Sandbox) -> None:
        """A container started on the default bridge joins a user-defined network: its
        resolv.conf now points at the embedded resolver, which forwards to the servers the file
        named (rewritten in place: the running container has it bind-mounted)."""
        resolv_path = sandbox.files[1]
        if resolv_path is None or sandbox.netns_path is None:
            return
        try:
            text, upstreams = etcfiles.internalize(await asyncio.to_thread(resolv_path.read_text))
            udp, tcp = await self._run(self._worker().dns_sockets, sandbox.netns_path)
        except OSError as e:
            log.warning("container %s: no embedded resolver: %s", sandbox.container_id[:12], e)
            return
        sandbox.upstreams = upstreams
        sandbox.resolver = DnsServer(udp, tcp, self._lookup_for(sandbox), upstreams, self._reverse_for(sandbox))
        await sandbox.resolver.start()
        await asyncio.to_thread(etcfiles.rewrite_in_place, resolv_path, text)
