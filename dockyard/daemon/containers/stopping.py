"""A user's kill, stop, restart, pause and unpause of a container (moby's kill.go, stop.go,
restart.go, pause.go). Each marks the container as stopped by its user where Docker does, so
its restart policy leaves it down."""

from __future__ import annotations

from dockyard import errdefs
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.core import ContainerCore
from dockyard.daemon.containers.signals import parse_signal, send_signal, stop_running
from dockyard.daemon.containers.supervisor import Supervisor


class Stopping:
    def __init__(self, core: ContainerCore, supervisor: Supervisor) -> None:
        self._core = core
        self._supervisor = supervisor

    async def kill(self, ref: str, signal: str | None = None) -> None:
        core = self._core
        rec = core.store.get(ref)
        number = parse_signal(signal)
        if rec.state.status == st.RESTARTING:
            async with core.lock(rec.id):
                rec.manually_stopped = True
                self._supervisor.stop_restarting(rec)
            return
        running = core.live.get(rec.id)
        if running is None or not rec.state.running:
            raise errdefs.Conflict(f"Container {rec.id} is not running")
        await send_signal(core, rec, running, number)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        core = self._core
        rec = core.store.get(ref)
        if rec.state.status == st.RESTARTING:
            async with core.lock(rec.id):
                rec.manually_stopped = True
                self._supervisor.stop_restarting(rec)
            core.emit(rec, "stop")
            return
        running = core.live.get(rec.id)
        if running is None or not rec.state.running:
            raise errdefs.NotModified("Container already stopped")
        rec.manually_stopped = True
        await stop_running(core, rec, running, timeout, signal)
        core.emit(rec, "stop")

    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        core = self._core
        rec = core.store.get(ref)
        if rec.state.status == st.RESTARTING:
            async with core.lock(rec.id):
                self._supervisor.stop_restarting(rec)
        running = core.live.get(rec.id)
        if running is not None and rec.state.running:
            await stop_running(core, rec, running, timeout, signal)
            core.emit(rec, "stop")
        await self._supervisor.start(rec.id)
        core.emit(rec, "restart")

    async def pause(self, ref: str) -> None:
        core = self._core
        rec = core.store.get(ref)
        async with core.lock(rec.id):
            running = core.live.get(rec.id)
            if running is None or not rec.state.running:
                raise errdefs.Conflict(f"Container {rec.id} is not running")
            if rec.state.paused:
                raise errdefs.Conflict(f"Container {rec.id} is already paused")
            await running.handle.pause()
            st.transition(rec.state, st.PAUSED, rec.id)
            core.store.save(rec)
            core.emit(rec, "pause")

    async def unpause(self, ref: str) -> None:
        core = self._core
        rec = core.store.get(ref)
        async with core.lock(rec.id):
            running = core.live.get(rec.id)
            if running is None or not rec.state.paused:
                raise errdefs.Conflict(f"Container {rec.id} is not paused")
            await running.handle.resume()
            st.transition(rec.state, st.RUNNING, rec.id)
            core.store.save(rec)
            core.emit(rec, "unpause")
