"""ContainerService: the container operations of the Engine API, without HTTP.

The one facade the API routers and the other services call; the work is done by parts that
share one ``core.ContainerCore`` (the containers table through ``ContainerStore``, the running
containers' shims, the per-container locks, the waiters and pending attach sessions):

- ``creation``: create (checks, mounts, snapshot, record)
- ``supervisor``: start, the watch on exits, policy restarts, health checks, shutdown
- ``stopping`` (over ``signals``): kill, stop, restart, pause, unpause
- ``removal``: rm, auto-remove (files in the background), prune, the start-up sweep
- ``restore``: the containers at daemon start, then the restart policies' starts
- ``listing``: ps, inspect, counts; ``streams``: attach, logs, resize; ``resources``: top,
  stats, update, commit's freeze; ``copying``: docker cp

What stays here fits on a screen: wait, rename, the network service's hooks, the exec
target, changes and export. Siblings arrive as Protocols (images, networks, shims, events,
volumes); ``daemon/daemon.py`` wires them.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from typing import AsyncIterator, Callable, Iterator, Protocol

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import (
    ContainerInspect, ContainerSummary, CreateRequest, CreateResponse, EndpointSettings, PruneResponse,
    UpdateRequest, WaitResponse,
)
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import archive as cp
from dockyard.daemon.containers import changes as changes_mod
from dockyard.daemon.containers import copying, creation, listing, names, resources, startup, streams
from dockyard.daemon.containers import health as health_mod
from dockyard.daemon.containers import restore as restoring
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.attach import AttachSession
from dockyard.daemon.containers.changes import Change
from dockyard.daemon.containers.core import ContainerCore, rootfs_mounts
from dockyard.daemon.containers.logs import LogOptions
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.removal import Removal
from dockyard.daemon.containers.stopping import Stopping
from dockyard.daemon.containers.store import ContainerStore
from dockyard.daemon.containers.supervisor import Supervisor
from dockyard.daemon.containers.top import TopResponse
from dockyard.daemon.interfaces import (
    CommitTarget, EventSink, ImageLookup, NetworkAttacher, SandboxInfo, VolumeMounter,
)
from dockyard.mount import Mount
from dockyard.shim.client import ShimHandle, ShimManager
from dockyard.storage.metadata import Database

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class RootfsExporter(Protocol):
    def export(self, mounts: list[Mount]) -> Iterator[bytes]:
        """Tar of the merged tree the mounts make (mounted briefly by the image service)."""


class ContainerService:
    def __init__(self, config: DaemonConfig, db: Database, images: ImageLookup, networks: NetworkAttacher,
                 shims: ShimManager, events: EventSink, volumes: VolumeMounter) -> None:
        self._core = ContainerCore(config=config, store=ContainerStore(db), images=images, networks=networks,
                                   shims=shims, events=events, volumes=volumes)
        self._store = self._core.store
        self._supervisor = Supervisor(self._core, self.remove)
        self._stopping = Stopping(self._core, self._supervisor)
        self._removal = Removal(self._core, self._supervisor)
        # the container's execs that have not ended (inspect's ExecIDs); daemon.py wires it to
        # the exec service, which keeps the exec records
        self.exec_ids: Callable[[str], list[str]] = lambda cid: []

    def get(self, ref: str) -> ContainerRecord:
        return self._store.get(ref)

    # ---- create (creation) -------------------------------------------------------------
    def create(self, request: CreateRequest, name: str | None = None) -> CreateResponse:
        """For synchronous callers (build steps): volume drivers are called on this thread."""
        return creation.create(self._core, request, name)

    async def create_async(self, request: CreateRequest, name: str | None = None,
                           default_read_only_non_recursive: bool = False) -> CreateResponse:
        """The API's create: the volumes' driver calls run in a worker thread. A client before
        API 1.44 sets ``default_read_only_non_recursive`` (its read-only binds stay non-recursive)."""
        return await creation.create_async(self._core, request, name, default_read_only_non_recursive)

    # ---- start / stop / kill / restart / pause (supervisor, stopping) -------------------
    async def start(self, ref: str) -> None:
        await self._supervisor.start(ref)

    def use_probe_runner(self, run_probe: health_mod.ProbeRunner) -> None:
        """How health probes run in a container (the exec service's, wired by daemon.py)."""
        self._supervisor.health.run_probe = run_probe

    async def kill(self, ref: str, signal: str | None = None) -> None:
        await self._stopping.kill(ref, signal)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        await self._stopping.stop(ref, timeout, signal)

    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        await self._stopping.restart(ref, timeout, signal)

    async def pause(self, ref: str) -> None:
        await self._stopping.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self._stopping.unpause(ref)

    # ---- wait ----------------------------------------------------------------------
    def wait(self, ref: str, condition: str = "not-running") -> asyncio.Future:
        """Register a waiter now (so a start that follows cannot be missed); await the result.

        The future's result is a ``WaitResponse``."""
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise errdefs.InvalidParameter(f'invalid condition: "{condition}"')
        rec = self._store.get(ref)
        waiter: asyncio.Future = asyncio.get_running_loop().create_future()
        if condition == "not-running" and not rec.state.running and rec.state.status != st.RESTARTING:
            waiter.set_result(WaitResponse(status_code=rec.state.exit_code))
        elif condition == "removed":
            self._core.removed_waiters.setdefault(rec.id, []).append(waiter)
        else:
            self._core.exit_waiters.setdefault(rec.id, []).append(waiter)
        return waiter

    # ---- remove / rename / prune ------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        await self._removal.remove(ref, force, volumes)

    def network_endpoints_changed(self, container_id: str, sandbox: SandboxInfo) -> None:
        """After network connect/disconnect of a running container (NetworkService's hook)."""
        rec = self._store.get(container_id)
        rec.networks = startup.endpoints(sandbox, rec.networks)
        self._store.save(rec)

    def connect_stopped(self, ref: str, network_name: str, network_id: str,
                        config: EndpointSettings | None) -> str:
        """``network connect`` of a container that is not running: recorded for its next start."""
        rec = self._store.get(ref)
        mode = rec.host_config.network_mode
        if mode == "none":
            raise errdefs.Forbidden("container cannot be connected to multiple networks with one of the "
                                    "networks in private (none) mode")
        if mode == "host" or mode.startswith("container:"):
            raise errdefs.Forbidden("container sharing network namespace with another container or host "
                                    "cannot be connected to any other network")
        if network_name in rec.networks or any(ep.network_id == network_id for ep in rec.networks.values()):
            raise errdefs.Forbidden(f"endpoint with name {rec.name} already exists in network {network_name}")
        entry = startup.endpoint_config(config) or EndpointSettings()
        entry.network_id = network_id
        rec.networks[network_name] = entry
        self._store.save(rec)
        return rec.id

    def disconnect_stopped(self, ref: str, network_name: str, network_id: str) -> str:
        """``network disconnect`` of a container that is not running."""
        rec = self._store.get(ref)
        key = network_name if network_name in rec.networks else next(
            (k for k, ep in rec.networks.items() if ep.network_id and ep.network_id == network_id), None)
        if key is None:
            raise errdefs.Forbidden(f"container {rec.id} is not connected to network {network_name}")
        del rec.networks[key]
        self._store.save(rec)
        return rec.id

    def rename(self, ref: str, new_name: str) -> None:
        rec = self._store.get(ref)
        if not new_name:
            raise errdefs.InvalidParameter("Neither old nor new names may be empty")
        new_name = names.validate_name(new_name)
        if new_name == rec.name:
            raise errdefs.InvalidParameter("Renaming a container with the same name as its current name")
        holder = self._store.holder_of(new_name)
        if holder:
            raise names.name_conflict(new_name, holder)
        old = rec.name
        self._store.rename(rec, new_name)
        self._core.networks.container_renamed(rec.id, new_name)
        self._core.emit(rec, "rename", oldName="/" + old)

    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse:
        return await self._removal.prune(filters)

    # ---- the image service's window for commit (ContainerCommitSource) ---------------
    def commit_target(self, ref: str) -> CommitTarget:
        rec = self._store.get(ref)
        return CommitTarget(id=rec.id, image_id=rec.image_id, snapshot_key=rec.id,
                            config=msgspec.to_builtins(rec.config))

    def paused_for_commit(self, container_id: str, pause: bool) -> AbstractContextManager[None]:
        """The container's cgroup frozen while its diff is read (when ``pause`` and it runs)."""
        return resources.paused_for_commit(self._core, container_id, pause)

    # ---- exec (daemon/containers/exec.py keeps the exec records) ---------------------------
    def exec_target(self, ref: str) -> tuple[ContainerRecord, ShimHandle]:
        """A running container and its shim; moby's getActiveContainer refusals otherwise."""
        rec = self._store.get(ref)
        running = self._core.live.get(rec.id)
        if rec.state.restarting:
            # moby counts a restarting container as running, so this is its answer, not "not running"
            raise errdefs.Conflict(f"Container {rec.id} is restarting, wait until the container is running")
        if running is None or not rec.state.running:
            raise errdefs.Conflict(f"container {rec.id} is not running")
        if rec.state.paused:
            raise errdefs.Conflict(f"Container {ref} is paused, unpause the container before exec")
        return rec, running.handle

    def emit_exec_event(self, rec: ContainerRecord, action: str, exec_id: str, **extra: str) -> None:
        self._core.emit(rec, action, execID=exec_id, **extra)

    # ---- inspect / list (listing) ----------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> ContainerInspect:
        return listing.inspect(self._core, ref, size, self.exec_ids)

    def list(self, all: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[ContainerSummary]:
        return listing.list_containers(self._core, all, limit, size, filters)

    def counts(self) -> dict[str, int]:
        return listing.counts(self._core)

    def disk_usage(self) -> list[dict]:
        """Summaries with SizeRw, for /system/df."""
        return [msgspec.to_builtins(s) for s in self.list(all=True, size=True)]

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return listing.containers_using_image(self._core, image_id)

    # ---- attach / logs / resize (streams) -------------------------------------------------
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True, detach_keys: str | None = None) -> AttachSession:
        return await streams.attach(self._core, ref, stdin=stdin, stdout=stdout, stderr=stderr, logs=logs,
                                    stream=stream, detach_keys=detach_keys)

    async def detach(self, session: AttachSession) -> None:
        """The client went away: drop a still-pending session, close a connected one."""
        await streams.detach(self._core, session)

    def logs(self, ref: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str = "", until: str = "", timestamps: bool = False,
             tail: str = "all", details: bool = False) -> AsyncIterator[tuple[int, bytes]]:
        return streams.logs(self._core, ref, LogOptions(stdout=stdout, stderr=stderr, follow=follow, since=since,
                                                        until=until, timestamps=timestamps, tail=tail,
                                                        details=details))

    def tty(self, ref: str) -> bool:
        return self._store.get(ref).config.tty

    async def resize(self, ref: str, height: int, width: int) -> None:
        await streams.resize(self._core, ref, height, width)

    # ---- top / stats / update (resources) --------------------------------------------------
    async def top(self, ref: str, ps_args: str = "") -> TopResponse:
        return await resources.top(self._core, ref, ps_args)

    async def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> AsyncIterator[dict]:
        """Docker's stats documents: one per second while streaming; a stopped container gives
        one empty sample, as dockerd does."""
        return resources.stats(self._core, ref, stream, one_shot)

    async def update(self, ref: str, request: UpdateRequest) -> dict:
        return await resources.update(self._core, ref, request)

    # ---- changes / export ------------------------------------------------------------------
    async def changes(self, ref: str) -> list[Change]:
        rec = self._store.get(ref)
        upper = self._core.upper(rec)
        if upper is None:
            return []
        lower = self._core.images.layer_dirs(self._core.images.resolve(rec.image_id))
        return await asyncio.to_thread(changes_mod.changes, upper, lower)

    def export(self, ref: str) -> Iterator[bytes]:
        rec = self._store.get(ref)
        self._core.emit(rec, "export")
        if rec.id in self._core.live:
            from dockyard.storage.archive import tar_dir
            return tar_dir(self._core.exec_dir(rec.id) / "rootfs")
        exporter: RootfsExporter = self._core.images  # type: ignore[assignment]
        return exporter.export(rootfs_mounts(rec))

    # ---- docker cp: /containers/{id}/archive (copying) ---------------------------------------
    async def stat_path(self, ref: str, path: str) -> cp.PathStat:
        return await copying.stat_path(self._core, ref, path)

    async def get_archive(self, ref: str, path: str) -> tuple[cp.PathStat, AsyncIterator[bytes]]:
        """The path's stat and a tar of it; the stream must be read to its end or closed."""
        return await copying.get_archive(self._core, ref, path)

    async def put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], copy_uid_gid: bool = False,
                          no_overwrite_dir_non_dir: bool = False) -> None:
        """Extract a tar into the directory ``path``; a refused tar changes nothing."""
        await copying.put_archive(self._core, ref, path, body, copy_uid_gid, no_overwrite_dir_non_dir)

    # ---- daemon start / stop -----------------------------------------------------------
    async def restore(self) -> None:
        """Reattach to the shims of containers that were running when the daemon stopped."""
        await restoring.restore(self._core, self._supervisor, self._removal)

    async def start_by_policy(self) -> None:
        """After restore and the networks' reconcile: start the containers whose restart policy
        wants them up; then policy restarts may run."""
        await restoring.start_by_policy(self._core, self._supervisor)

    async def close(self) -> None:
        """Daemon shutdown: stop watching; the shims keep the containers running (live-restore),
        or with live_restore off stop them first, as dockerd does."""
        await self._supervisor.close()
