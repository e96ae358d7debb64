"""Supervisor: a container's run, from its start through the watch on its exit to the restart
its policy asks for (moby's start.go and monitor.go), and the health checks while it runs.

One exit-watch task per running container (``ContainerCore.live``); the policy's back-off and
the restarts waiting it out are kept here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Protocol

from dockyard import errdefs
from dockyard.daemon.containers import health as health_mod
from dockyard.daemon.containers import restart as restarting
from dockyard.daemon.containers import startup, views
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.core import ContainerCore, Running, log
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.signals import stop_running
from dockyard.shim.client import ExitStatus, ShimHandle


class Remove(Protocol):
    def __call__(self, ref: str, force: bool = False, volumes: bool = False) -> Awaitable[None]: ...


class Supervisor:
    def __init__(self, core: ContainerCore, remove: Remove) -> None:
        self._core = core
        self._remove = remove  # an auto-remove container's end (removal.Removal.remove)
        self._backoff: dict[str, restarting.Backoff] = {}
        self._restarts: dict[str, asyncio.Task] = {}  # containers waiting out their restart delay
        self.ready = asyncio.Event()  # set once start-up restarts are done (moby's waitForStartupDone)
        self.health = health_mod.HealthMonitor(self._health_report)

    # ---- start -----------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        """A user's start (and the restart policies' at daemon start, as a user's would be)."""
        core = self._core
        rec = core.store.get(ref)
        try:
            async with core.lock(rec.id):
                if rec.state.status == st.RESTARTING:  # moby counts it as running
                    raise errdefs.NotModified("Container already started")
                rec.restart_count = 0  # a user's start begins the policy's count and back-off anew
                self._backoff.pop(rec.id, None)
                await self.start_locked(rec)
        except errdefs.NotModified:
            raise
        except errdefs.DockyardError:
            # moby: a failed start of an AutoRemove container removes it (docker run --rm
            # waits for "removed" and must not hang)
            if rec.host_config.auto_remove and not rec.state.running and core.store.has_id(rec.id):
                await self._remove(rec.id, force=True)
            raise

    async def start_locked(self, rec: ContainerRecord) -> None:
        core = self._core
        if rec.state.status == st.RUNNING:
            raise errdefs.NotModified("Container already started")
        st.check_start(rec.state, rec.id)
        core.migration_warmer.poke(rec.runtime)
        await core.warmed(rec.id)
        handle, sandbox = await startup.launch(
            rec, config=core.config, images=core.images, networks=core.networks, shims=core.shims,
            volumes=core.volumes, resolve_peer=self._network_peer, pending=core.pending.get(rec.id, []),
            on_failure=lambda message, code: self._record_start_failure(rec, message, code))
        core.pending.pop(rec.id, None)
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
        self.start_health(rec, time.time())
        core.store.save(rec, durable=False)  # "running" does not outlive a power loss anyway
        self.watch(rec.id, handle)
        core.emit(rec, "start")

    def start_health(self, rec: ContainerRecord, started_at: float) -> None:
        rec.health = self.health.start(rec.id, rec.config.healthcheck, rec.config.shell, rec.health,
                                       started_at)

    def _health_report(self, cid: str, health: health_mod.Health, changed: str | None) -> None:
        core = self._core
        if not core.store.has_id(cid):
            return
        rec = core.store.get(cid)
        rec.health = health
        core.store.save(rec)
        if changed:
            core.emit(rec, f"health_status: {changed}")

    def _record_start_failure(self, rec: ContainerRecord, message: str, exit_code: int) -> None:
        rec.state.error = message
        rec.state.exit_code = exit_code
        self._core.store.save(rec)

    def _network_peer(self, ref: str) -> str:
        """``container:<ref>`` -> the peer's full ID; it must be running (Docker's 409)."""
        peer = self._core.store.get(ref)
        if not peer.state.running:
            raise errdefs.Conflict(f"cannot join network of a non running container: {peer.id}")
        return peer.id

    # ---- exit --------------------------------------------------------------------------
    def watch(self, cid: str, handle: ShimHandle) -> Running:
        running = Running(handle=handle, exited=asyncio.Event())
        self._core.live[cid] = running
        running.watch = asyncio.ensure_future(self._watch_exit(cid, running))
        # Held until it ends: the exit's handling drops ``live``'s entry first, and a task the
        # loop alone knows (weakly) is collected mid-way with what it awaits when that is only
        # reachable through it (a shim connection's StreamReader: its protocol's is a weakref);
        # its waiters would never be answered.
        self._core.keep(running.watch)
        return running

    async def _watch_exit(self, cid: str, running: Running) -> None:
        try:
            status = await running.handle.wait()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the shim vanished: record what we know
            log.warning("container %s: lost its shim: %s", cid, e)
            status = startup.shim_died()
        await self._on_exit(cid, running, status)

    async def _on_exit(self, cid: str, running: Running, status: ExitStatus) -> None:
        core = self._core
        auto_remove = False
        async with core.lock(cid):
            core.live.pop(cid, None)

            async def shutdown() -> None:
                try:
                    await running.handle.shutdown()
                except Exception as e:
                    log.warning("container %s: shim shutdown: %s", cid, e)

            async def release_sandbox() -> None:
                try:
                    await core.networks.release_sandbox(cid)
                except Exception as e:
                    log.warning("container %s: releasing the sandbox: %s", cid, e)

            # independent: the shim's cleanup and the network's teardown overlap. An auto-remove
            # container (never restarted: create refuses a restart policy with it) is removed
            # without waiting for its shim's cleanup, whose rootfs unmount waits for an RCU grace
            # period (1-100 ms): the removal's file cleanup, in the background, waits for it.
            if core.store.has_id(cid) and core.store.get(cid).host_config.auto_remove:
                task = core.shim_shutdowns[cid] = asyncio.ensure_future(shutdown())
                core.keep(task)
                await release_sandbox()
            else:
                await asyncio.gather(shutdown(), release_sandbox())
            await core.volumes.unmount(cid)
            if core.store.has_id(cid):
                rec = core.store.get(cid)
                if status.error == startup.SHIM_DIED:
                    await asyncio.to_thread(startup.clean_orphan, rec, core.config)
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
                self.health.stop(cid, rec.health)
                # An auto-remove's row is deleted right after (removal): saving its exit first
                # is undone at once. Should the daemon die between the two, the start-up finds
                # it running without its shim, records the exit and removes it (restore).
                if not (rec.host_config.auto_remove and delay is None):
                    core.store.save(rec)
                core.emit(rec, "die", exitCode=str(status.exit_code), execDuration=str(int(ran_for)))
                if delay is not None:
                    self._restarts[cid] = asyncio.ensure_future(self._restart_later(cid, delay))
                auto_remove = rec.host_config.auto_remove and delay is None
            running.exited.set()
            core.answer_waiters(core.exit_waiters.pop(cid, []), status.exit_code)
        if auto_remove:
            try:
                await self._remove(cid, force=False)
            except errdefs.DockyardError as e:
                log.warning("container %s: auto-remove: %s", cid, e)
        core.shim_shutdowns.pop(cid, None)  # no removal took it: the next start's sweep will

    # ---- restart policy ----------------------------------------------------------------
    def _restart_delay(self, rec: ContainerRecord, running: Running, exit_code: int,
                       ran_for: float) -> float | None:
        """Seconds until the policy brings the container back, or None when it stays down."""
        if running.exit_on_next or self._core.shutting_down or rec.state.status != st.RUNNING:
            return None
        if not restarting.wants_restart(rec.host_config.restart_policy, exit_code, rec.manually_stopped,
                                        rec.restart_count):
            self._backoff.pop(rec.id, None)
            return None
        return self._backoff.setdefault(rec.id, restarting.Backoff()).next(ran_for)

    async def _restart_later(self, cid: str, delay: float) -> None:
        core = self._core
        await asyncio.sleep(delay)
        await self.ready.wait()
        async with core.lock(cid):
            self._restarts.pop(cid, None)
            if not core.store.has_id(cid):
                return
            rec = core.store.get(cid)
            if rec.state.status != st.RESTARTING:
                return
            try:
                await self.start_locked(rec)
            except errdefs.DockyardError as e:  # moby gives up: the container stays exited
                log.warning("container %s: restart by policy failed: %s", cid, e)
                self.stop_restarting(rec)

    def stop_restarting(self, rec: ContainerRecord) -> None:
        """A restarting container stays down: its pending restart is cancelled."""
        task = self._restarts.pop(rec.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._backoff.pop(rec.id, None)
        if rec.state.status == st.RESTARTING:
            error, exit_code = rec.state.error, rec.state.exit_code
            st.transition(rec.state, st.EXITED, rec.name)
            rec.state.error, rec.state.exit_code = error, exit_code
            self._core.store.save(rec)

    # ---- daemon shutdown ---------------------------------------------------------------
    async def close(self) -> None:
        """Stop watching; the shims keep the containers running (live-restore), or with
        live_restore off stop them first, as dockerd does (their StopSignal and timeout; not a
        user's stop, so their restart policy brings them back with the daemon)."""
        core = self._core
        core.shutting_down = True
        self.health.close()
        for task in list(self._restarts.values()):
            task.cancel()
        if not core.config.live_restore:
            await asyncio.gather(*(self._stop_for_shutdown(cid) for cid in list(core.live)))
        for running in list(core.live.values()):
            if running.watch is not None:
                running.watch.cancel()
        core.live.clear()
        # what a shutdown interrupts the next start sweeps; finishing it is quicker for everyone
        await asyncio.gather(*core.background, return_exceptions=True)

    async def _stop_for_shutdown(self, cid: str) -> None:
        core = self._core
        running = core.live.get(cid)
        if running is None or not core.store.has_id(cid):
            return
        try:
            await stop_running(core, core.store.get(cid), running, None, None)
        except Exception as e:
            log.warning("container %s: stopping at shutdown: %s", cid, e)
