"""ContainerService: the container operations of the Engine API, without HTTP.

Owns the containers table (through ``ContainerStore``), the running
containers' shim handles and one exit-watch task per running container, and
the attach sessions waiting for a start. Siblings arrive as Protocols
(images, networks, shims, events); ``daemon/daemon.py`` wires them.

Locking: one asyncio.Lock per container serializes start/remove/rename and
exit handling. Nothing waits for an exit while holding it (stop/kill release
it first), so an exit can always be recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal as signals
import time
import tempfile
from dataclasses import dataclass
from pathlib import Path
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Callable, Iterator, Protocol

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import (
    ContainerInspect, ContainerSummary, CreateRequest, CreateResponse, EndpointSettings, MountPoint, PruneResponse,
    UpdateRequest, WaitResponse,
)
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import archive as cp
from dockyard.daemon.containers import create as creating
from dockyard.daemon.containers import changes as changes_mod
from dockyard.daemon.containers import logdrivers, names, startup, views
from dockyard.daemon.containers import restart as restarting
from dockyard.daemon.containers import health as health_mod
from dockyard.daemon.containers import spec as spec_mod
from dockyard.daemon.containers import update as update_mod
from dockyard.daemon.containers import user as users
from dockyard.runtime.cgroups import MigrationWarmer, manager_for
from dockyard.daemon.containers import stats as stats_mod
from dockyard.daemon.containers import top as top_mod
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.changes import Change
from dockyard.daemon.containers.attach import DEFAULT_DETACH_KEYS, AttachSession, parse_detach_keys
from dockyard.daemon.containers.logs import LogOptions, read as read_logs
from dockyard.daemon.containers.record import ContainerRecord, RootfsMount
from dockyard.daemon.containers.store import ContainerStore
from dockyard.daemon.containers.top import TopResponse
from dockyard.daemon.interfaces import (
    CommitTarget, EventSink, ImageInfo, ImageLookup, NetworkAttacher, SandboxInfo, VolumeMounter,
)
from dockyard.mount import Mount
from dockyard.shim import rootfs
from dockyard.shim.client import ExitStatus, ShimHandle, ShimManager
from dockyard.storage.metadata import Database

log = logging.getLogger("dockyard.containers")

DEFAULT_STOP_TIMEOUT = 10
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class RootfsExporter(Protocol):
    def export(self, mounts: list[Mount]) -> Iterator[bytes]:
        """Tar of the merged tree the mounts make (mounted briefly by the image service)."""


@dataclass
class _NewContainer:
    """A container create between its checks and its record (its mounts are resolved between)."""
    cid: str
    name: str
    image: ImageInfo
    prepared: creating.Created
    endpoints: dict[str, EndpointSettings]


@dataclass
class _Running:
    handle: ShimHandle
    exited: asyncio.Event
    watch: asyncio.Task | None = None
    exit_on_next: bool = False  # a user's stop/kill: this exit never restarts (moby's ExitOnNext)


def parse_signal(value: str | int | None, default: str = "SIGKILL") -> int:
    """"SIGKILL", "KILL", "kill" or "9" -> 9; Docker's "Invalid signal: x" otherwise."""
    text = str(value if value not in (None, "") else default).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            base, _, offset = name[3:].partition("+")
            if not offset:
                base, _, offset = name[3:].partition("-")
                offset = f"-{offset}" if offset else "0"
            number = (signals.SIGRTMIN if base == "RTMIN" else signals.SIGRTMAX) + int(offset or 0)
            return int(number)
        try:
            return int(signals.Signals[name])
        except KeyError:
            pass
    raise errdefs.InvalidParameter(f"Invalid signal: {value}")


class ContainerService:
    def __init__(self, config: DaemonConfig, db: Database, images: ImageLookup, networks: NetworkAttacher,
                 shims: ShimManager, events: EventSink, volumes: VolumeMounter) -> None:
        self._config = config
        self._store = ContainerStore(db)
        self._images = images
        self._networks = networks
        self._shims = shims
        self._events = events
        self._volumes = volumes
        self._locks: dict[str, asyncio.Lock] = {}
        self._live: dict[str, _Running] = {}
        self._pending: dict[str, list[AttachSession]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future]] = {}
        self._shim_shutdowns: dict[str, asyncio.Future] = {}  # an exited auto-remove's, for its removal
        self._file_cleanups: set[asyncio.Future] = set()  # those shutdowns and the file removals after them
        # the container's execs that have not ended (inspect's ExecIDs); daemon.py wires it to
        # the exec service, which keeps the exec records
        self.exec_ids: Callable[[str], list[str]] = lambda cid: []
        self._backoff: dict[str, restarting.Backoff] = {}
        self._restarts: dict[str, asyncio.Task] = {}  # containers waiting out their restart delay
        self._shutting_down = False
        self._ready = asyncio.Event()  # set once start-up restarts are done (moby's waitForStartupDone)
        self._health = health_mod.HealthMonitor(self._health_report)
        # the kernel's wait before moving a container's init into its cgroup (~10 ms) elapses
        # while the create's answer, the CLI's next requests and the shim's spawn go on
        self._migration_warmer = MigrationWarmer()

    # ---- helpers -----------------------------------------------------------------
    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _emit(self, rec: ContainerRecord, action: str, **extra: str) -> None:
        attributes = {**(rec.config.labels or {}), "image": rec.config.image, "name": rec.name, **extra}
        self._events.emit("container", action, rec.id, attributes)

    def _exec_dir(self, cid: str) -> Path:
        return self._config.container_exec_dir(cid)

    def _data_dir(self, cid: str) -> Path:
        return self._config.container_data_dir(cid)

    def get(self, ref: str) -> ContainerRecord:
        return self._store.get(ref)

    # ---- create --------------------------------------------------------------------
    def create(self, request: CreateRequest, name: str | None = None) -> CreateResponse:
        """For synchronous callers (build steps): volume drivers are called on this thread."""
        new = self._begin_create(request, name)
        return self._finish_create(new, self._volumes.resolve_mounts(*self._mount_args(new)))

    async def create_async(self, request: CreateRequest, name: str | None = None,
                           default_read_only_non_recursive: bool = False) -> CreateResponse:
        """The API's create: the volumes' driver calls (a volume plugin up to its timeout, copy-up)
        run in a worker thread, so a slow plugin delays this answer, never the event loop. A name
        taken meanwhile is still refused, by the store's unique name. A client before API 1.44
        sets ``default_read_only_non_recursive`` (its read-only binds stay non-recursive)."""
        new = self._begin_create(request, name)
        return self._finish_create(new, await self._volumes.resolve_mounts_async(
            *self._mount_args(new), default_read_only_non_recursive))

    def _begin_create(self, request: CreateRequest, name: str | None) -> _NewContainer:
        if name:
            name = names.validate_name(name)
            holder = self._store.holder_of(name)
            if holder:
                raise names.name_conflict(name, holder)
        image = startup.resolve_image(self._images, request.image)
        cid = names.new_id(self._store.has_id)
        prepared = creating.prepare(request, image, cid, self._config)
        endpoints = creating.endpoints_config(request, prepared.host_config.network_mode)
        self._networks.check_endpoints(prepared.host_config.network_mode, endpoints)
        name = name or names.generate_name(lambda n: self._store.holder_of(n) is not None)
        return _NewContainer(cid, name, image, prepared, endpoints)

    def _mount_args(self, new: _NewContainer) -> tuple:
        return (new.cid, new.prepared.host_config, new.prepared.config.volumes,
                self._images.layer_dirs(new.image), lambda ref: self._store.get(ref).id)

    def _finish_create(self, new: _NewContainer, mounts: list[MountPoint]) -> CreateResponse:
        """After the mounts are resolved: the rootfs snapshot and the record (undone on failure)."""
        cid, name, image, prepared, endpoints = new.cid, new.name, new.image, new.prepared, new.endpoints
        data_dir = self._data_dir(cid)
        try:
            rootfs = self._images.prepare_rootfs(cid, image)
        except BaseException:
            self._volumes.release_blocking(cid, remove_anonymous=True)
            raise
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            rec = ContainerRecord(
                id=cid, name=name, created=views.now_rfc3339(), image_id=image.id,
                path=prepared.path, args=prepared.args, config=prepared.config,
                host_config=prepared.host_config, runtime=prepared.runtime,
                log_path=logdrivers.log_file(data_dir, cid, prepared.host_config.log_config.type),
                mounts=mounts, networks=endpoints,
                rootfs_mounts=[RootfsMount(type=m.type, source=m.source, options=list(m.options))
                               for m in rootfs],
            )
            self._store.add(rec)
        except BaseException:
            self._images.remove_rootfs(cid)
            self._volumes.release_blocking(cid, remove_anonymous=True)
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        self._emit(rec, "create")
        self._migration_warmer.poke()  # a start usually follows (docker run)
        return CreateResponse(id=cid, warnings=prepared.warnings)

    # ---- start ---------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        rec = self._store.get(ref)
        try:
            async with self._lock(rec.id):
                if rec.state.status == st.RESTARTING:  # moby counts it as running
                    raise errdefs.NotModified("Container already started")
                rec.restart_count = 0  # a user's start begins the policy's count and back-off anew
                self._backoff.pop(rec.id, None)
                await self._start_locked(rec)
        except errdefs.NotModified:
            raise
        except errdefs.DockyardError:
            # moby: a failed start of an AutoRemove container removes it (docker run --rm
            # waits for "removed" and must not hang)
            if rec.host_config.auto_remove and not rec.state.running and self._store.has_id(rec.id):
                await self.remove(rec.id, force=True)
            raise

    async def _start_locked(self, rec: ContainerRecord) -> None:
        if rec.state.status == st.RUNNING:
            raise errdefs.NotModified("Container already started")
        st.check_start(rec.state, rec.id)
        self._migration_warmer.poke()
        handle, sandbox = await startup.launch(
            rec, config=self._config, images=self._images, networks=self._networks, shims=self._shims,
            volumes=self._volumes, resolve_peer=self._network_peer, pending=self._pending.get(rec.id, []),
            on_failure=lambda message, code: self._record_start_failure(rec, message, code))
        self._pending.pop(rec.id, None)
        st.transition(rec.state, st.RUNNING, rec.id, now=views.now_rfc3339())
        rec.state.pid = handle.pid
        rec.has_been_started = True
        rec.manually_stopped = False
        rec.sandbox_key = sandbox.netns_path or ""
        rec.networks = startup.endpoints(sandbox, rec.networks)
        rec.ports = sandbox.ports
        rec.hostname_path = str(sandbox.hostname_path or "")
        rec.hosts_path = str(sandbox.hosts_path or "")
        rec.resolv_conf_path = str(sandbox.resolv_conf_path or "")
        self._start_health(rec, time.time())
        self._store.save(rec, durable=False)  # "running" does not outlive a power loss anyway
        self._watch(rec.id, handle)
        self._emit(rec, "start")

    def use_probe_runner(self, run_probe: health_mod.ProbeRunner) -> None:
        """How health probes run in a container (the exec service's, wired by daemon.py)."""
        self._health.run_probe = run_probe

    def _start_health(self, rec: ContainerRecord, started_at: float) -> None:
        rec.health = self._health.start(rec.id, rec.config.healthcheck, rec.config.shell, rec.health,
                                        started_at)

    def _health_report(self, cid: str, health: health_mod.Health, changed: str | None) -> None:
        if not self._store.has_id(cid):
            return
        rec = self._store.get(cid)
        rec.health = health
        self._store.save(rec)
        if changed:
            self._emit(rec, f"health_status: {changed}")

    def _record_start_failure(self, rec: ContainerRecord, message: str, exit_code: int) -> None:
        rec.state.error = message
        rec.state.exit_code = exit_code
        self._store.save(rec)

    def _network_peer(self, ref: str) -> str:
        """``container:<ref>`` -> the peer's full ID; it must be running (Docker's 409)."""
        peer = self._store.get(ref)
        if not peer.state.running:
            raise errdefs.Conflict(f"cannot join network of a non running container: {peer.id}")
        return peer.id

    def _watch(self, cid: str, handle: ShimHandle) -> None:
        running = _Running(handle=handle, exited=asyncio.Event())
        self._live[cid] = running
        running.watch = asyncio.ensure_future(self._watch_exit(cid, running))

    async def _watch_exit(self, cid: str, running: _Running) -> None:
        try:
            status = await running.handle.wait()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the shim vanished: record what we know
            log.warning("container %s: lost its shim: %s", cid, e)
            status = startup.shim_died()
        await self._on_exit(cid, running, status)

    async def _on_exit(self, cid: str, running: _Running, status: ExitStatus) -> None:
        auto_remove = False
        async with self._lock(cid):
            self._live.pop(cid, None)

            async def shutdown() -> None:
                try:
                    await running.handle.shutdown()
                except Exception as e:
                    log.warning("container %s: shim shutdown: %s", cid, e)

            async def release_sandbox() -> None:
                try:
                    await self._networks.release_sandbox(cid)
                except Exception as e:
                    log.warning("container %s: releasing the sandbox: %s", cid, e)

            # independent: the shim's cleanup and the network's teardown overlap. An auto-remove
            # container (never restarted: create refuses a restart policy with it) is removed
            # without waiting for its shim's cleanup, whose rootfs unmount waits for an RCU grace
            # period (1-100 ms): the removal's file cleanup, in the background, waits for it.
            if self._store.has_id(cid) and self._store.get(cid).host_config.auto_remove:
                task = self._shim_shutdowns[cid] = asyncio.ensure_future(shutdown())
                self._file_cleanups.add(task)  # held until done (the loop keeps weak references)
                task.add_done_callback(self._file_cleanups.discard)
                await release_sandbox()
            else:
                await asyncio.gather(shutdown(), release_sandbox())
            await self._volumes.unmount(cid)
            if self._store.has_id(cid):
                rec = self._store.get(cid)
                if status.error == startup.SHIM_DIED:
                    await asyncio.to_thread(startup.clean_orphan, rec, self._config)
                finished_at = status.finished_at or views.now_rfc3339()
                ran_for = max(0.0, views.parse_rfc3339(finished_at) - views.parse_rfc3339(rec.state.started_at))
                delay = self._restart_delay(rec, running, status.exit_code, ran_for)
                if delay is None:
                    st.transition(rec.state, st.EXITED, rec.name, now=finished_at)
                else:  # moby's SetRestarting: the exit is recorded, the count goes up
                    st.transition(rec.state, st.RESTARTING, rec.name)
                    rec.state.pid = 0
                    rec.state.finished_at = finished_at
                    rec.restart_count += 1
                rec.state.exit_code = status.exit_code
                rec.state.oom_killed = status.oom_killed
                rec.state.error = status.error
                startup.forget_sandbox(rec)
                self._health.stop(cid, rec.health)
                # an auto-remove's delete (durable) follows at once: one fsync instead of three
                self._store.save(rec, durable=not (rec.host_config.auto_remove and delay is None))
                self._emit(rec, "die", exitCode=str(status.exit_code), execDuration=str(int(ran_for)))
                if delay is not None:
                    self._restarts[cid] = asyncio.ensure_future(self._restart_later(cid, delay))
                auto_remove = rec.host_config.auto_remove and delay is None
            running.exited.set()
            for fut in self._exit_waiters.pop(cid, []):
                if not fut.done():
                    fut.set_result(status.exit_code)
        if auto_remove:
            try:
                await self.remove(cid, force=False)
            except errdefs.DockyardError as e:
                log.warning("container %s: auto-remove: %s", cid, e)
        self._shim_shutdowns.pop(cid, None)  # no removal took it: the next start's sweep will

    def _restart_delay(self, rec: ContainerRecord, running: _Running, exit_code: int,
                       ran_for: float) -> float | None:
        """Seconds until the policy brings the container back, or None when it stays down."""
        if running.exit_on_next or self._shutting_down or rec.state.status != st.RUNNING:
            return None
        if not restarting.wants_restart(rec.host_config.restart_policy, exit_code, rec.manually_stopped,
                                        rec.restart_count):
            self._backoff.pop(rec.id, None)
            return None
        return self._backoff.setdefault(rec.id, restarting.Backoff()).next(ran_for)

    async def _restart_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._ready.wait()
        async with self._lock(cid):
            self._restarts.pop(cid, None)
            if not self._store.has_id(cid):
                return
            rec = self._store.get(cid)
            if rec.state.status != st.RESTARTING:
                return
            try:
                await self._start_locked(rec)
            except errdefs.DockyardError as e:  # moby gives up: the container stays exited
                log.warning("container %s: restart by policy failed: %s", cid, e)
                self._stop_restarting(rec)

    def _stop_restarting(self, rec: ContainerRecord) -> None:
        """A restarting container stays down: its pending restart is cancelled."""
        task = self._restarts.pop(rec.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._backoff.pop(rec.id, None)
        if rec.state.status == st.RESTARTING:
            error, exit_code = rec.state.error, rec.state.exit_code
            st.transition(rec.state, st.EXITED, rec.name)
            rec.state.error, rec.state.exit_code = error, exit_code
            self._store.save(rec)

    async def _stop_for_shutdown(self, cid: str) -> None:
        running = self._live.get(cid)
        if running is None or not self._store.has_id(cid):
            return
        try:
            await self._stop(self._store.get(cid), running, None, None)
        except Exception as e:
            log.warning("container %s: stopping at shutdown: %s", cid, e)

    # ---- stop / kill / restart / pause --------------------------------------------------
    async def kill(self, ref: str, signal: str | None = None) -> None:
        rec = self._store.get(ref)
        number = parse_signal(signal)
        if rec.state.status == st.RESTARTING:
            async with self._lock(rec.id):
                rec.manually_stopped = True
                self._stop_restarting(rec)
            return
        running = self._live.get(rec.id)
        if running is None or not rec.state.running:
            raise errdefs.Conflict(f"Container {rec.id} is not running")
        await self._signal(rec, running, number)

    async def _signal(self, rec: ContainerRecord, running: _Running, number: int) -> None:
        # moby's killWithSignal: the user stopped it (unless-stopped stays down, also after a
        # daemon restart), and the exit this signal causes never restarts
        if not self._shutting_down and not rec.manually_stopped:
            rec.manually_stopped = True
            self._store.save(rec)
        if (number == signals.SIGKILL or not rec.config.stop_signal
                or number == parse_signal(rec.config.stop_signal, default="SIGTERM")):
            running.exit_on_next = True
        await running.handle.kill(number, all_processes=False)
        self._emit(rec, "kill", signal=str(number))
        if number == signals.SIGKILL and rec.state.paused:
            await running.handle.resume()  # a frozen process only dies once thawed

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        rec = self._store.get(ref)
        if rec.state.status == st.RESTARTING:
            async with self._lock(rec.id):
                rec.manually_stopped = True
                self._stop_restarting(rec)
            self._emit(rec, "stop")
            return
        running = self._live.get(rec.id)
        if running is None or not rec.state.running:
            raise errdefs.NotModified("Container already stopped")
        rec.manually_stopped = True
        await self._stop(rec, running, timeout, signal)
        self._emit(rec, "stop")

    async def _stop(self, rec: ContainerRecord, running: _Running, timeout: int | None,
                    signal: str | None) -> None:
        if timeout is None:
            timeout = rec.config.stop_timeout if rec.config.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
        number = parse_signal(signal or rec.config.stop_signal, default="SIGTERM")
        if number != signals.SIGKILL:
            try:
                await self._signal(rec, running, number)
                await asyncio.wait_for(running.exited.wait(), None if timeout < 0 else timeout)
                return
            except asyncio.TimeoutError:
                pass
            except errdefs.DockyardError as e:
                log.info("container %s: stop signal failed (%s), killing", rec.id, e)
        if not running.exited.is_set():
            try:
                await self._signal(rec, running, signals.SIGKILL)
            except errdefs.DockyardError:
                if running.exited.is_set():
                    return
                raise
            await running.exited.wait()

    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        rec = self._store.get(ref)
        if rec.state.status == st.RESTARTING:
            async with self._lock(rec.id):
                self._stop_restarting(rec)
        running = self._live.get(rec.id)
        if running is not None and rec.state.running:
            await self._stop(rec, running, timeout, signal)
            self._emit(rec, "stop")
        await self.start(rec.id)
        self._emit(rec, "restart")

    async def pause(self, ref: str) -> None:
        rec = self._store.get(ref)
        async with self._lock(rec.id):
            running = self._live.get(rec.id)
            if running is None or not rec.state.running:
                raise errdefs.Conflict(f"Container {rec.id} is not running")
            if rec.state.paused:
                raise errdefs.Conflict(f"Container {rec.id} is already paused")
            await running.handle.pause()
            st.transition(rec.state, st.PAUSED, rec.id)
            self._store.save(rec)
            self._emit(rec, "pause")

    async def unpause(self, ref: str) -> None:
        rec = self._store.get(ref)
        async with self._lock(rec.id):
            running = self._live.get(rec.id)
            if running is None or not rec.state.paused:
                raise errdefs.Conflict(f"Container {rec.id} is not paused")
            await running.handle.resume()
            st.transition(rec.state, st.RUNNING, rec.id)
            self._store.save(rec)
            self._emit(rec, "unpause")

    # ---- wait ----------------------------------------------------------------------
    def wait(self, ref: str, condition: str = "not-running") -> asyncio.Future:
        """Register a waiter now (so a start that follows cannot be missed); await the result.

        The future's result is a ``WaitResponse``."""
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise errdefs.InvalidParameter(f'invalid condition: "{condition}"')
        rec = self._store.get(ref)
        loop = asyncio.get_running_loop()
        inner: asyncio.Future = loop.create_future()
        if condition == "not-running" and not rec.state.running and rec.state.status != st.RESTARTING:
            inner.set_result(rec.state.exit_code)
        elif condition == "removed":
            self._removed_waiters.setdefault(rec.id, []).append(inner)
        else:
            self._exit_waiters.setdefault(rec.id, []).append(inner)

        async def answer() -> WaitResponse:
            code = await inner
            return WaitResponse(status_code=code)

        return asyncio.ensure_future(answer())

    # ---- remove / rename / prune ------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        rec = self._store.get(ref)
        if rec.state.status == st.RESTARTING:
            if not force:
                raise errdefs.Conflict(f'cannot remove container "/{rec.name}": container is restarting: '
                                       "stop the container before removing or force remove")
            async with self._lock(rec.id):
                self._stop_restarting(rec)
        running = self._live.get(rec.id)
        if running is not None and rec.state.running:
            if not force:
                st.transition(rec.state, st.REMOVING, rec.name)  # raises Docker's 409
            try:
                await self._signal(rec, running, signals.SIGKILL)
            except errdefs.Conflict:
                pass  # it exited between the check and the kill: force rm goes on, as dockerd's
            await running.exited.wait()
        async with self._lock(rec.id):
            if not self._store.has_id(rec.id):
                return  # removed meanwhile (auto-remove)
            st.transition(rec.state, st.REMOVING, rec.name)
            shim_shutdown = self._shim_shutdowns.pop(rec.id, None)
            if shim_shutdown is None:
                self._store.save(rec, durable=False)  # the delete below (or Dead on failure) syncs it
                try:
                    # Deleting a big tree takes a while: off the event loop.
                    await asyncio.to_thread(self._remove_files, rec)
                except Exception as e:
                    st.transition(rec.state, st.DEAD, rec.name)  # Docker shows such a container as Dead
                    self._store.save(rec)
                    raise errdefs.System(f"unable to remove filesystem for {rec.id}: {e}") from None
            else:
                # an auto-remove: the row goes first (name and ID free at once, the waiters
                # answered), the files after its shim's cleanup, in the background. A crash
                # meanwhile leaves files without a row, which the next start sweeps.
                task = asyncio.ensure_future(self._remove_files_later(rec, shim_shutdown))
                self._file_cleanups.add(task)
                task.add_done_callback(self._file_cleanups.discard)
            await self._volumes.release(rec.id, remove_anonymous=volumes or rec.host_config.auto_remove)
            # an auto-remove's delete needs no fsync: should a power loss undo it, the container
            # is found stopped at the next start, and removed then (restore)
            self._store.delete(rec.id, durable=shim_shutdown is None)
            for session in self._pending.pop(rec.id, []):
                session.abandon()
            self._emit(rec, "destroy")
            for fut in self._exit_waiters.pop(rec.id, []) + self._removed_waiters.pop(rec.id, []):
                if not fut.done():
                    fut.set_result(rec.state.exit_code)
        self._locks.pop(rec.id, None)

    async def _remove_files_later(self, rec: ContainerRecord, shim_shutdown: asyncio.Future) -> None:
        """An auto-removed container's files, once its shim has unmounted the rootfs (or given up:
        ``_remove_files`` unmounts what is left). Moby too only logs an auto-remove's failure."""
        await shim_shutdown
        try:
            await asyncio.to_thread(self._remove_files, rec)
        except Exception as e:
            log.warning("container %s: auto-remove: unable to remove filesystem: %s", rec.id, e)

    def _remove_files(self, rec: ContainerRecord) -> None:
        rootfs_dir = self._exec_dir(rec.id) / "rootfs"
        if os.path.ismount(rootfs_dir):  # its shim died before unmounting it
            rootfs.unmount_all(tuple(self._rootfs_mounts(rec)), rootfs_dir)
        self._images.remove_rootfs(rec.id)
        shutil.rmtree(self._exec_dir(rec.id), ignore_errors=True)
        shutil.rmtree(self._data_dir(rec.id), ignore_errors=True)

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
        self._networks.container_renamed(rec.id, new_name)
        self._emit(rec, "rename", oldName="/" + old)

    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse:
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        until = min((startup.parse_timestamp(v) for v in filters.get("until", [])), default=None)
        deleted: list[str] = []
        reclaimed = 0
        for rec in self._store.all():
            if rec.state.status not in (st.CREATED, st.EXITED, st.DEAD):
                continue
            if until is not None and views.parse_rfc3339(rec.created) >= until:
                continue
            labels = rec.config.labels or {}
            if not all(views.label_match(labels, v) for v in filters.get("label", [])):
                continue
            if any(views.label_match(labels, v) for v in filters.get("label!", [])):
                continue
            size = startup.dir_size(self._upper(rec))
            try:
                await self.remove(rec.id)
            except errdefs.DockyardError as e:
                log.warning("prune: %s: %s", rec.id, e)
                continue
            deleted.append(rec.id)
            reclaimed += size
        self._events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return PruneResponse(containers_deleted=deleted or None, space_reclaimed=reclaimed)

    # ---- inspect / list --------------------------------------------------------------
    def _cgroups_path(self, rec: ContainerRecord) -> str:
        return f"{rec.host_config.cgroup_parent or self._config.cgroup_parent}/{rec.id}"

    # ---- the image service's window for commit (ContainerCommitSource) ---------------
    def commit_target(self, ref: str) -> CommitTarget:
        rec = self._store.get(ref)
        return CommitTarget(id=rec.id, image_id=rec.image_id, snapshot_key=rec.id,
                            config=msgspec.to_builtins(rec.config))

    @contextmanager
    def paused_for_commit(self, container_id: str, pause: bool) -> Iterator[None]:
        """Freeze the container's cgroup while its diff is read (called from a worker thread,
        so through the cgroup itself rather than the shim; the visible state stays running)."""
        rec = self._store.get(container_id)
        if not (pause and rec.state.running and not rec.state.paused):
            yield
            return
        cgroups = manager_for(self._cgroups_path(rec))
        cgroups.freeze()
        try:
            yield
        finally:
            cgroups.thaw()

    def _upper(self, rec: ContainerRecord) -> Path | None:
        try:
            return self._images.rootfs_upper(rec.id)
        except (errdefs.DockyardError, NotImplementedError):
            return None

    def inspect(self, ref: str, size: bool = False) -> ContainerInspect:
        rec = self._store.get(ref)
        size_rw = startup.dir_size(self._upper(rec)) if size else None
        view = views.inspect(rec, size_rw=size_rw)
        view.exec_ids = self.exec_ids(rec.id) or None
        return view

    # ---- exec (daemon/containers/exec.py keeps the exec records) ---------------------------
    def exec_target(self, ref: str) -> tuple[ContainerRecord, ShimHandle]:
        """A running container and its shim; moby's getActiveContainer refusals otherwise."""
        rec = self._store.get(ref)
        running = self._live.get(rec.id)
        if rec.state.restarting:
            # moby counts a restarting container as running, so this is its answer, not "not running"
            raise errdefs.Conflict(f"Container {rec.id} is restarting, wait until the container is running")
        if running is None or not rec.state.running:
            raise errdefs.Conflict(f"container {rec.id} is not running")
        if rec.state.paused:
            raise errdefs.Conflict(f"Container {ref} is paused, unpause the container before exec")
        return rec, running.handle

    def emit_exec_event(self, rec: ContainerRecord, action: str, exec_id: str, **extra: str) -> None:
        self._emit(rec, action, execID=exec_id, **extra)

    def list(self, all: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[ContainerSummary]:
        filters = dict(filters or {})
        views.check_filters(filters)
        records = sorted(self._store.all(), key=lambda r: r.created, reverse=True)
        if "before" in filters:
            before = self._store.get(filters.pop("before")[0])
            records = [r for r in records if r.created < before.created]
            all = True
        if "since" in filters:
            since = self._store.get(filters.pop("since")[0])
            records = [r for r in records if r.created > since.created]
            all = True
        if limit > 0 or "status" in filters or "exited" in filters:
            all = True
        ancestors: set[str] = set()
        for value in filters.get("ancestor", []):
            try:
                ancestors.add(self._images.resolve(value).id)
            except errdefs.NotFound:
                continue
        out = []
        labels: dict[str, str] = {}
        for rec in records:
            if not all and not rec.state.running and rec.state.status != st.RESTARTING:
                continue
            if not views.matches(rec, filters, ancestors):
                continue
            if rec.config.image not in labels:
                labels[rec.config.image] = self._image_label(rec)
            size_rw = startup.dir_size(self._upper(rec)) if size else None
            out.append(views.summary(rec, labels[rec.config.image], size_rw=size_rw))
            if 0 < limit <= len(out):
                break
        return out

    def _image_label(self, rec: ContainerRecord) -> str:
        """The name the container was made from, or the image ID once that name points elsewhere."""
        try:
            if self._images.resolve(rec.config.image).id == rec.image_id:
                return rec.config.image
        except errdefs.DockyardError:
            pass
        return rec.image_id

    def counts(self) -> dict[str, int]:
        records = self._store.all()
        running = sum(1 for r in records if r.state.status == st.RUNNING)
        paused = sum(1 for r in records if r.state.status == st.PAUSED)
        return {"total": len(records), "running": running, "paused": paused,
                "stopped": len(records) - running - paused}

    def disk_usage(self) -> list[dict]:
        """Summaries with SizeRw, for /system/df."""
        return [msgspec.to_builtins(s) for s in self.list(all=True, size=True)]

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(r.id, r.state.running) for r in self._store.all() if r.image_id == image_id]

    # ---- attach / logs / resize / export ------------------------------------------------
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True, detach_keys: str | None = None) -> AttachSession:
        rec = self._store.get(ref)
        if rec.state.paused:
            raise errdefs.Conflict("You cannot attach to a paused container, unpause it first")
        if rec.state.restarting:
            raise errdefs.Conflict("You cannot attach to a restarting container, wait until it is running")
        keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
        session = AttachSession(rec.id, stdin=stdin and rec.config.open_stdin, stdout=stdout, stderr=stderr,
                                tty=rec.config.tty, stdin_once=rec.config.stdin_once, detach_keys=keys)
        if logs and rec.log_path:
            session.replay = [item async for item in read_logs(
                rec, LogOptions(stdout=stdout, stderr=stderr), lambda: True)]
        if not stream:
            session.abandon()
            return session
        async with self._lock(rec.id):
            running = self._live.get(rec.id)
            if running is not None and rec.state.running:
                session.connect(await running.handle.attach(session.stdin, stdout, stderr))
            else:
                self._pending.setdefault(rec.id, []).append(session)
        self._emit(rec, "attach")
        return session

    async def detach(self, session: AttachSession) -> None:
        """The client went away: drop a still-pending session, close a connected one."""
        pending = self._pending.get(session.container_id)
        if pending and session in pending:
            pending.remove(session)
        await session.close()
        if session.detached and self._store.has_id(session.container_id):
            self._emit(self._store.get(session.container_id), "detach")

    def logs(self, ref: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str = "", until: str = "", timestamps: bool = False,
             tail: str = "all") -> AsyncIterator[tuple[int, bytes]]:
        options = LogOptions(stdout=stdout, stderr=stderr, follow=follow, since=since, until=until,
                             timestamps=timestamps, tail=tail)
        rec = self._store.get(ref)
        if rec.host_config.log_config.type == "none" or not rec.log_path:
            raise errdefs.NotImplementedFeature("configured logging driver does not support reading")
        if not options.stdout and not options.stderr:
            raise errdefs.InvalidParameter("You must choose at least one stream")
        cid = rec.id
        return read_logs(rec, options, lambda: cid not in self._live)

    def tty(self, ref: str) -> bool:
        return self._store.get(ref).config.tty

    async def resize(self, ref: str, height: int, width: int) -> None:
        rec = self._store.get(ref)
        running = self._live.get(rec.id)
        if running is None or not rec.state.running:
            raise errdefs.Conflict(f"Container {rec.id} is not running")
        await running.handle.resize(height, width)
        self._emit(rec, "resize", height=str(height), width=str(width))

    async def top(self, ref: str, ps_args: str = "") -> TopResponse:
        rec = self._store.get(ref)
        if rec.id not in self._live or not rec.state.running:
            raise errdefs.Conflict(f"Container {rec.id} is not running")
        cgroups_path = self._cgroups_path(rec)

        def run() -> TopResponse:
            return top_mod.top(top_mod.container_pids(cgroups_path), ps_args or "-ef")
        result = await asyncio.to_thread(run)
        self._emit(rec, "top")
        return result

    async def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> AsyncIterator[dict]:
        """Docker's stats documents: one per second while streaming; a stopped container gives
        one empty sample, as dockerd does."""
        rec = self._store.get(ref)
        cgroups_path = self._cgroups_path(rec)

        async def documents() -> AsyncIterator[dict]:
            previous = None
            while True:
                if rec.id not in self._live:
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

    async def update(self, ref: str, request: UpdateRequest) -> dict:
        rec = self._store.get(ref)
        async with self._lock(rec.id):
            hc, warnings = update_mod.merged(rec.host_config, request, rec.host_config.auto_remove)
            if rec.id in self._live and rec.state.running:
                cgroups_path = f"{hc.cgroup_parent or self._config.cgroup_parent}/{rec.id}"  # the updated config
                resources = spec_mod.resources(hc)
                resources.devices = []  # the device rules do not change; rewriting them is not free
                try:
                    await asyncio.to_thread(manager_for(cgroups_path).apply, resources)
                except OSError as e:
                    raise errdefs.InvalidParameter(f"Cannot update container {rec.id}: {e}") from None
            rec.host_config = hc
            self._store.save(rec)
            self._emit(rec, "update")
        return {"Warnings": warnings}

    async def changes(self, ref: str) -> list[Change]:
        rec = self._store.get(ref)
        upper = self._upper(rec)
        if upper is None:
            return []
        lower = self._images.layer_dirs(self._images.resolve(rec.image_id))
        return await asyncio.to_thread(changes_mod.changes, upper, lower)

    def export(self, ref: str) -> Iterator[bytes]:
        rec = self._store.get(ref)
        self._emit(rec, "export")
        if rec.id in self._live:
            from dockyard.storage.archive import tar_dir
            return tar_dir(self._exec_dir(rec.id) / "rootfs")
        exporter: RootfsExporter = self._images  # type: ignore[assignment]
        return exporter.export(self._rootfs_mounts(rec))

    @staticmethod
    def _rootfs_mounts(rec: ContainerRecord) -> list[Mount]:
        return [Mount(type=m.type, source=m.source, options=tuple(m.options)) for m in rec.rootfs_mounts]

    # ---- docker cp: /containers/{id}/archive -----------------------------------------------
    @asynccontextmanager
    async def _cp_view(self, ref: str) -> AsyncIterator[tuple[ContainerRecord, cp.View]]:
        """The container's files for cp. A stopped container's snapshot is mounted by the
        operation itself, so its lock is held throughout (start and remove wait)."""
        rec = self._store.get(ref)
        binds = cp.view_binds(rec.mounts, {"/etc/hostname": rec.hostname_path, "/etc/hosts": rec.hosts_path,
                                           "/etc/resolv.conf": rec.resolv_conf_path},
                              self._volumes.volume_path)
        view = cp.View(live_root=None, rootfs_mounts=tuple(self._rootfs_mounts(rec)), binds=binds,
                       scratch=self._config.exec_root / "cp")
        async with self._lock(rec.id):
            if rec.id not in self._live:
                yield rec, view
                return
        yield rec, dataclasses.replace(view, live_root=self._exec_dir(rec.id) / "rootfs")

    async def stat_path(self, ref: str, path: str) -> cp.PathStat:
        async with self._cp_view(ref) as (_, view):
            return await asyncio.to_thread(cp.stat_path, view, path, ref)

    async def get_archive(self, ref: str, path: str) -> tuple[cp.PathStat, AsyncIterator[bytes]]:
        """The path's stat and a tar of it; the stream must be read to its end or closed."""
        files = self._cp_view(ref)
        rec, view = await files.__aenter__()
        try:
            reader = await asyncio.to_thread(cp.ArchiveReader, view, path, ref)
        except BaseException:
            await files.__aexit__(None, None, None)
            raise
        self._emit(rec, "archive-path")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while (chunk := await asyncio.to_thread(reader.next_chunk)) is not None:
                    yield chunk
            finally:
                await asyncio.to_thread(reader.close)
                await files.__aexit__(None, None, None)
        return reader.stat, chunks()

    async def put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], copy_uid_gid: bool = False,
                          no_overwrite_dir_non_dir: bool = False) -> None:
        """Extract a tar into the directory ``path``. The tar is spooled to disk first and
        checked whole before anything is written: a refused tar changes nothing."""
        rec = self._store.get(ref)
        cp.check_writable(path, rec.mounts, rec.host_config.readonly_rootfs)
        owner = None
        if copy_uid_gid and rec.config.user:
            layers = self._images.layer_dirs(self._images.resolve(rec.image_id))
            user = await asyncio.to_thread(users.resolve, rec.config.user, layers)
            owner = (user.uid, user.gid)
        with tempfile.TemporaryFile(dir=self._config.data_root) as spool:
            async for chunk in body:
                spool.write(chunk)
            async with self._cp_view(ref) as (rec, view):
                await asyncio.to_thread(cp.extract, view, path, ref, spool, owner, no_overwrite_dir_non_dir)
        self._emit(rec, "extract-to-dir")

    # ---- daemon start / stop -----------------------------------------------------------
    async def restore(self) -> None:
        """Reattach to the shims of containers that were running when the daemon stopped."""
        for rec in self._store.all():
            if rec.state.status == st.REMOVING:  # the daemon stopped half way through a removal:
                st.transition(rec.state, st.DEAD, rec.name)  # moby leaves it dead for the user to rm
                self._store.save(rec)
                await self._reap_stray_shim(rec)
                continue
            if rec.state.status not in (st.RUNNING, st.PAUSED, st.RESTARTING):
                await self._reap_stray_shim(rec)
                continue
            handle = None
            try:
                handle = await self._shims.connect(self._exec_dir(rec.id), rec.id)
            except Exception as e:
                log.warning("container %s: reconnecting to its shim: %s", rec.id, e)
            if handle is not None:
                self._watch(rec.id, handle)
                running = self._live[rec.id]
                try:
                    ended = (await handle.state()).status in ("draining", "stopped")
                except Exception:
                    ended = False
                if ended:  # it exited while the daemon was down: record that before serving
                    try:
                        await asyncio.wait_for(running.exited.wait(), 5)
                    except asyncio.TimeoutError:
                        log.warning("container %s: its exit was not recorded within 5 s", rec.id)
                    continue
                if rec.state.status == st.RUNNING:  # moby starts the monitor over (status starting)
                    self._start_health(rec, views.parse_rfc3339(rec.state.started_at))
                    self._store.save(rec)
                continue
            if rec.state.status == st.RESTARTING:  # the daemon stopped during the back-off
                st.transition(rec.state, st.EXITED, rec.name)
                self._store.save(rec)
                continue
            status = startup.read_exit_file(self._exec_dir(rec.id))
            if status.error == startup.SHIM_DIED:
                await asyncio.to_thread(startup.clean_orphan, rec, self._config)
            st.transition(rec.state, st.EXITED, rec.name, now=status.finished_at)
            rec.state.exit_code = status.exit_code
            rec.state.oom_killed = status.oom_killed
            rec.state.error = status.error
            startup.forget_sandbox(rec)
            self._store.save(rec)
            try:
                await self._networks.release_sandbox(rec.id)
            except Exception as e:
                log.warning("container %s: releasing the sandbox: %s", rec.id, e)
            await self._volumes.unmount(rec.id)
            self._emit(rec, "die", exitCode=str(status.exit_code))
        # moby's restore: an auto-remove container that is not running is removed (its exit came
        # while the daemon was down, or the removal's commit did not outlive a power loss)
        for rec in self._store.all():
            if rec.host_config.auto_remove and rec.state.status not in (st.RUNNING, st.PAUSED, st.RESTARTING):
                try:
                    await self.remove(rec.id, force=True, volumes=True)
                except errdefs.DockyardError as e:
                    log.warning("container %s: auto-remove at start-up: %s", rec.id, e)
        await asyncio.to_thread(self._sweep_leftovers)

    def _sweep_leftovers(self) -> None:
        """A crash during create or rm leaves files of a container without its row (the row is
        added last and deleted last; an auto-remove deletes it first): its snapshot, its data
        and exec dirs. Blocking."""
        dirs = (self._config.data_root / "containers", self._config.exec_root / "containers",
                self._config.snapshot_root)
        stray = {entry.name for d in dirs if d.is_dir() for entry in d.iterdir()
                 if len(entry.name) == 64 and all(c in "0123456789abcdef" for c in entry.name)}
        for cid in stray - {rec.id for rec in self._store.all()}:
            log.info("container %s: removing what an interrupted create or rm left", cid)
            rootfs_dir = self._exec_dir(cid) / "rootfs"
            if os.path.ismount(rootfs_dir):
                rootfs.unmount_all((Mount(type="overlay", source="overlay"),), rootfs_dir)
            self._images.remove_rootfs(cid)
            shutil.rmtree(self._exec_dir(cid), ignore_errors=True)
            shutil.rmtree(self._data_dir(cid), ignore_errors=True)

    async def _reap_stray_shim(self, rec: ContainerRecord) -> None:
        """The daemon died between a shim's spawn and the record of the start: that shim (and
        the cgroups, mounts and process it holds) belongs to nobody; end it."""
        exec_dir = self._exec_dir(rec.id)
        if not (exec_dir / "shim.sock").exists():
            if (exec_dir / "init.pid").exists() and not (exec_dir / "exit.json").exists():
                await asyncio.to_thread(startup.clean_orphan, rec, self._config)  # its shim died too
            return
        try:
            handle = await self._shims.connect(exec_dir, rec.id)
        except Exception as e:
            log.warning("container %s: reconnecting to a stray shim: %s", rec.id, e)
            handle = None
        if handle is not None:
            log.info("container %s: ending the shim of a start the daemon did not finish", rec.id)
            await startup.discard(handle)
        await asyncio.to_thread(startup.clean_orphan, rec, self._config)

    async def start_by_policy(self) -> None:
        """After restore and the networks' reconcile: start the containers whose restart policy
        wants them up (moby: always; unless-stopped unless a user stopped it; on-failure after a
        failure with retries left), as a user's start would. Then policy restarts may run."""
        for rec in self._store.all():
            if rec.state.status != st.EXITED or not rec.has_been_started or rec.host_config.auto_remove:
                continue
            if not restarting.wants_restart(rec.host_config.restart_policy, rec.state.exit_code,
                                            rec.manually_stopped, rec.restart_count):
                continue
            try:
                await self.start(rec.id)
            except errdefs.DockyardError as e:
                log.warning("container %s: start by restart policy: %s", rec.id, e)
        self._ready.set()

    async def close(self) -> None:
        """Daemon shutdown: stop watching; the shims keep the containers running (live-restore),
        or with live_restore off stop them first, as dockerd does (their StopSignal and timeout;
        not a user's stop, so their restart policy brings them back with the daemon)."""
        self._shutting_down = True
        self._health.close()
        for task in list(self._restarts.values()):
            task.cancel()
        if not self._config.live_restore:
            await asyncio.gather(*(self._stop_for_shutdown(cid) for cid in list(self._live)))
        for running in list(self._live.values()):
            if running.watch is not None:
                running.watch.cancel()
        self._live.clear()
        # what a shutdown interrupts the next start sweeps; finishing it is quicker for everyone
        await asyncio.gather(*self._file_cleanups, return_exceptions=True)
