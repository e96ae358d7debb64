"""Reconcile on start: after a daemon restart (also after a kill -9), re-adopt the sandboxes
of live containers and remove what belongs to containers that are gone."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Iterable, Mapping

import msgspec

from dockyard.daemon.network_core import NONE, NetworkCore, log
from dockyard.daemon.network_model import Endpoint, Sandbox, SandboxState
from dockyard.network import netns
from dockyard.network.sandbox import SPARE_PREFIX


class Reconciler(NetworkCore):
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
