"""Removal: ``docker rm`` (with -f: kill first), the auto-remove of a --rm container (its row
at once, its files in the background after its shim's cleanup), ``container prune``, and the
start-up sweep of files whose container row is gone (moby's delete.go and prune)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal as signals

from dockyard import errdefs
from dockyard.apitypes.container import PruneResponse
from dockyard.daemon.containers import startup, views
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.core import ContainerCore, log, rootfs_mounts
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.signals import send_signal
from dockyard.daemon.containers.supervisor import Supervisor
from dockyard.mount import Mount
from dockyard.shim import rootfs


class Removal:
    def __init__(self, core: ContainerCore, supervisor: Supervisor) -> None:
        self._core = core
        self._supervisor = supervisor

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        core = self._core
        rec = core.store.get(ref)
        if rec.state.status == st.RESTARTING:
            if not force:
                raise errdefs.Conflict(f'cannot remove container "/{rec.name}": container is restarting: '
                                       "stop the container before removing or force remove")
            async with core.lock(rec.id):
                self._supervisor.stop_restarting(rec)
        running = core.live.get(rec.id)
        if running is not None and rec.state.running:
            if not force:
                st.transition(rec.state, st.REMOVING, rec.name)  # raises Docker's 409
            try:
                await send_signal(core, rec, running, signals.SIGKILL)
            except errdefs.Conflict:
                pass  # it exited between the check and the kill: force rm goes on, as dockerd's
            await running.exited.wait()
        async with core.lock(rec.id):
            if not core.store.has_id(rec.id):
                return  # removed meanwhile (auto-remove)
            st.transition(rec.state, st.REMOVING, rec.name)
            await core.warmed(rec.id)  # its files are removed below: none may come after
            shim_shutdown = core.shim_shutdowns.pop(rec.id, None)
            if shim_shutdown is None:
                core.store.save(rec, durable=False)  # the delete below (or Dead on failure) syncs it
                try:
                    # Deleting a big tree takes a while: off the event loop.
                    await asyncio.to_thread(self._remove_files, rec.id, rootfs_mounts(rec))
                except Exception as e:
                    st.transition(rec.state, st.DEAD, rec.name)  # Docker shows such a container as Dead
                    core.store.save(rec)
                    raise errdefs.System(f"unable to remove filesystem for {rec.id}: {e}") from None
            else:
                # an auto-remove: the row goes first (name and ID free at once, the waiters
                # answered), the files after its shim's cleanup, in the background. A crash
                # meanwhile leaves files without a row, which the next start sweeps.
                core.keep(asyncio.ensure_future(self._remove_files_later(rec, shim_shutdown)))
            await core.volumes.release(rec.id, remove_anonymous=volumes or rec.host_config.auto_remove)
            # an auto-remove's delete needs no fsync: should a power loss undo it, the container
            # is found stopped at the next start, and removed then (restore)
            core.store.delete(rec.id, durable=shim_shutdown is None)
            for session in core.pending.pop(rec.id, []):
                session.abandon()
            core.emit(rec, "destroy")
            core.answer_waiters(core.exit_waiters.pop(rec.id, []) + core.removed_waiters.pop(rec.id, []),
                                rec.state.exit_code)
        core.locks.pop(rec.id, None)

    async def _remove_files_later(self, rec: ContainerRecord, shim_shutdown: asyncio.Future) -> None:
        """An auto-removed container's files, once its shim has unmounted the rootfs (or given up:
        ``_remove_files`` unmounts what is left). Moby too only logs an auto-remove's failure."""
        await shim_shutdown
        try:
            await asyncio.to_thread(self._remove_files, rec.id, rootfs_mounts(rec))
        except Exception as e:
            log.warning("container %s: auto-remove: unable to remove filesystem: %s", rec.id, e)

    def _remove_files(self, cid: str, mounts: list[Mount]) -> None:
        """The container's snapshot, exec and data dirs; its rootfs is unmounted first when its
        shim died before doing so. Blocking."""
        core = self._core
        rootfs_dir = core.exec_dir(cid) / "rootfs"
        if os.path.ismount(rootfs_dir):
            rootfs.unmount_all(tuple(mounts), rootfs_dir)
        core.images.remove_rootfs(cid)
        shutil.rmtree(core.exec_dir(cid), ignore_errors=True)
        shutil.rmtree(core.data_dir(cid), ignore_errors=True)

    def sweep_leftovers(self) -> None:
        """A crash during create or rm leaves files of a container without its row (the row is
        added last and deleted last; an auto-remove deletes it first): its snapshot, its data
        and exec dirs. Blocking."""
        core = self._core
        dirs = (core.config.data_root / "containers", core.config.exec_root / "containers",
                core.config.snapshot_root)
        stray = {entry.name for d in dirs if d.is_dir() for entry in d.iterdir()
                 if len(entry.name) == 64 and all(c in "0123456789abcdef" for c in entry.name)}
        for cid in stray - {rec.id for rec in core.store.all()}:
            log.info("container %s: removing what an interrupted create or rm left", cid)
            self._remove_files(cid, [Mount(type="overlay", source="overlay")])

    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse:
        core = self._core
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        until = min((startup.parse_timestamp(v) for v in filters.get("until", [])), default=None)
        deleted: list[str] = []
        reclaimed = 0
        for rec in core.store.all():
            if rec.state.status not in (st.CREATED, st.EXITED, st.DEAD):
                continue
            if until is not None and views.parse_rfc3339(rec.created) >= until:
                continue
            labels = rec.config.labels or {}
            if not all(views.label_match(labels, v) for v in filters.get("label", [])):
                continue
            if any(views.label_match(labels, v) for v in filters.get("label!", [])):
                continue
            size = startup.dir_size(core.upper(rec))
            try:
                await self.remove(rec.id)
            except errdefs.DockyardError as e:
                log.warning("prune: %s: %s", rec.id, e)
                continue
            deleted.append(rec.id)
            reclaimed += size
        core.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return PruneResponse(containers_deleted=deleted or None, space_reclaimed=reclaimed)
