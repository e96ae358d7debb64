"""A running container's cgroup: ``docker top`` (its processes), ``docker stats`` (its
samples) and ``docker update`` (its limits changed in place and in the record), and the freeze
that holds it still while commit reads its diff (moby's top_unix.go, stats.go, update.go)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import AsyncIterator, Iterator

from dockyard import errdefs
from dockyard.apitypes.container import UpdateRequest
from dockyard.daemon.containers import spec as spec_mod
from dockyard.daemon.containers import stats as stats_mod
from dockyard.daemon.containers import top as top_mod
from dockyard.daemon.containers import update as update_mod
from dockyard.daemon.containers.core import ContainerCore
from dockyard.daemon.containers.top import TopResponse
from dockyard.runtime.cgroups import manager_for


async def top(core: ContainerCore, ref: str, ps_args: str) -> TopResponse:
    rec = core.store.get(ref)
    if rec.id not in core.live or not rec.state.running:
        raise errdefs.Conflict(f"Container {rec.id} is not running")
    cgroups_path = core.cgroups_path(rec)

    def run() -> TopResponse:
        return top_mod.top(top_mod.container_pids(cgroups_path), ps_args or "-ef")
    result = await asyncio.to_thread(run)
    core.emit(rec, "top")
    return result


def stats(core: ContainerCore, ref: str, stream: bool, one_shot: bool) -> AsyncIterator[dict]:
    """Docker's stats documents: one per second while streaming; a stopped container gives
    one empty sample, as dockerd does."""
    rec = core.store.get(ref)
    cgroups_path = core.cgroups_path(rec)

    async def documents() -> AsyncIterator[dict]:
        previous = None
        while True:
            if rec.id not in core.live:
                yield {"name": "/" + rec.name, "id": rec.id, "read": stats_mod.ZERO_TIME,
                       "preread": stats_mod.ZERO_TIME}
                return
            current = await asyncio.to_thread(stats_mod.sample, cgroups_path, rec.state.pid,
                                              rec.host_config.pids_limit)
            if previous is not None or one_shot or stream:
                yield stats_mod.document(rec.id, rec.name, current, previous)
                if not stream:
                    return
            previous = current
            await asyncio.sleep(1)

    return documents()


async def update(core: ContainerCore, ref: str, request: UpdateRequest) -> dict:
    rec = core.store.get(ref)
    async with core.lock(rec.id):
        hc, warnings = update_mod.merged(rec.host_config, request, rec.host_config.auto_remove)
        if rec.id in core.live and rec.state.running:
            cgroups_path = f"{hc.cgroup_parent or core.config.cgroup_parent}/{rec.id}"  # the updated config
            resources = spec_mod.resources(hc)
            resources.devices = []  # the device rules do not change; rewriting them is not free
            try:
                await asyncio.to_thread(manager_for(cgroups_path).apply, resources)
            except OSError as e:
                raise errdefs.InvalidParameter(f"Cannot update container {rec.id}: {e}") from None
        rec.host_config = hc
        core.store.save(rec)
        core.emit(rec, "update")
    return {"Warnings": warnings}


@contextmanager
def paused_for_commit(core: ContainerCore, container_id: str, pause: bool) -> Iterator[None]:
    """Freeze the container's cgroup while its diff is read (called from a worker thread,
    so through the cgroup itself rather than the shim; the visible state stays running)."""
    rec = core.store.get(container_id)
    if not (pause and rec.state.running and not rec.state.paused):
        yield
        return
    cgroups = manager_for(core.cgroups_path(rec))
    cgroups.freeze()
    try:
        yield
    finally:
        cgroups.thaw()
