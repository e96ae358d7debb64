"""The containers at daemon start (moby's daemon.restore): reattach to the shims that kept
them running, record the exits that came while the daemon was down, end the shims of starts
it did not finish, remove what an interrupted create or rm left, then start the containers
whose restart policy wants them up."""

from __future__ import annotations

import asyncio

from dockyard import errdefs
from dockyard.daemon.containers import restart as restarting
from dockyard.daemon.containers import startup, views
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.core import ContainerCore, log
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.removal import Removal
from dockyard.daemon.containers.supervisor import Supervisor


async def restore(core: ContainerCore, supervisor: Supervisor, removal: Removal) -> None:
    """Reattach to the shims of containers that were running when the daemon stopped."""
    for rec in core.store.all():
        if rec.state.status == st.REMOVING:  # the daemon stopped half way through a removal:
            st.transition(rec.state, st.DEAD, rec.name)  # moby leaves it dead for the user to rm
            core.store.save(rec)
            await _reap_stray_shim(core, rec)
            continue
        if rec.state.status not in (st.RUNNING, st.PAUSED, st.RESTARTING):
            await _reap_stray_shim(core, rec)
            continue
        handle = None
        try:
            handle = await core.shims.connect(core.exec_dir(rec.id), rec.id)
        except Exception as e:
            log.warning("container %s: reconnecting to its shim: %s", rec.id, e)
        if handle is not None:
            running = supervisor.watch(rec.id, handle)
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
                supervisor.start_health(rec, views.parse_rfc3339(rec.state.started_at))
                core.store.save(rec)
            continue
        if rec.state.status == st.RESTARTING:  # the daemon stopped during the back-off
            st.transition(rec.state, st.EXITED, rec.name)
            core.store.save(rec)
            continue
        status = startup.read_exit_file(core.exec_dir(rec.id))
        if status.error == startup.SHIM_DIED:
            await asyncio.to_thread(startup.clean_orphan, rec, core.config)
        st.transition(rec.state, st.EXITED, rec.name, now=status.finished_at)
        rec.state.exit_code = status.exit_code
        rec.state.oom_killed = status.oom_killed
        rec.state.error = status.error
        startup.forget_sandbox(rec)
        core.store.save(rec)
        try:
            await core.networks.release_sandbox(rec.id)
        except Exception as e:
            log.warning("container %s: releasing the sandbox: %s", rec.id, e)
        await core.volumes.unmount(rec.id)
        core.emit(rec, "die", exitCode=str(status.exit_code))
    # moby's restore: an auto-remove container that is not running is removed (its exit came
    # while the daemon was down, or the removal's commit did not outlive a power loss)
    for rec in core.store.all():
        if rec.host_config.auto_remove and rec.state.status not in (st.RUNNING, st.PAUSED, st.RESTARTING):
            try:
                await removal.remove(rec.id, force=True, volumes=True)
            except errdefs.DockyardError as e:
                log.warning("container %s: auto-remove at start-up: %s", rec.id, e)
    await asyncio.to_thread(removal.sweep_leftovers)


async def _reap_stray_shim(core: ContainerCore, rec: ContainerRecord) -> None:
    """The daemon died between a shim's spawn and the record of the start: that shim (and
    the cgroups, mounts and process it holds) belongs to nobody; end it."""
    exec_dir = core.exec_dir(rec.id)
    if not (exec_dir / "shim.sock").exists():
        if (exec_dir / "init.pid").exists() and not (exec_dir / "exit.json").exists():
            await asyncio.to_thread(startup.clean_orphan, rec, core.config)  # its shim died too
        return
    try:
        handle = await core.shims.connect(exec_dir, rec.id)
    except Exception as e:
        log.warning("container %s: reconnecting to a stray shim: %s", rec.id, e)
        handle = None
    if handle is not None:
        log.info("container %s: ending the shim of a start the daemon did not finish", rec.id)
        await handle.discard()
    await asyncio.to_thread(startup.clean_orphan, rec, core.config)


async def start_by_policy(core: ContainerCore, supervisor: Supervisor) -> None:
    """After restore and the networks' reconcile: start the containers whose restart policy
    wants them up (moby: always; unless-stopped unless a user stopped it; on-failure after a
    failure with retries left), as a user's start would. Then policy restarts may run."""
    for rec in core.store.all():
        if rec.state.status != st.EXITED or not rec.has_been_started or rec.host_config.auto_remove:
            continue
        if not restarting.wants_restart(rec.host_config.restart_policy, rec.state.exit_code,
                                        rec.manually_stopped, rec.restart_count):
            continue
        try:
            await supervisor.start(rec.id)
        except errdefs.DockyardError as e:
            log.warning("container %s: start by restart policy: %s", rec.id, e)
    supervisor.ready.set()
