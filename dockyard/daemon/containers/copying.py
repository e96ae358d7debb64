"""``docker cp`` at the container level (/containers/{id}/archive): which files the copy sees
(the running container's rootfs, or the stopped one's snapshot mounted for the operation, plus
its binds), held under the container's lock; the file work itself is ``archive``."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from contextlib import asynccontextmanager
from typing import AsyncIterator

from dockyard.daemon.containers import archive as cp
from dockyard.daemon.containers import user as users
from dockyard.daemon.containers.core import ContainerCore, rootfs_mounts
from dockyard.daemon.containers.record import ContainerRecord


@asynccontextmanager
async def _view(core: ContainerCore, ref: str) -> AsyncIterator[tuple[ContainerRecord, cp.View]]:
    """The container's files for cp. A stopped container's snapshot is mounted by the
    operation itself, so its lock is held throughout (start and remove wait)."""
    rec = core.store.get(ref)
    binds = cp.view_binds(rec.mounts, {"/etc/hostname": rec.hostname_path, "/etc/hosts": rec.hosts_path,
                                       "/etc/resolv.conf": rec.resolv_conf_path},
                          core.volumes.volume_path)
    view = cp.View(live_root=None, rootfs_mounts=tuple(rootfs_mounts(rec)), binds=binds,
                   scratch=core.config.exec_root / "cp")
    async with core.lock(rec.id):
        if rec.id not in core.live:
            yield rec, view
            return
    yield rec, dataclasses.replace(view, live_root=core.exec_dir(rec.id) / "rootfs")


async def stat_path(core: ContainerCore, ref: str, path: str) -> cp.PathStat:
    async with _view(core, ref) as (_, view):
        return await asyncio.to_thread(cp.stat_path, view, path, ref)


async def get_archive(core: ContainerCore, ref: str, path: str) -> tuple[cp.PathStat, AsyncIterator[bytes]]:
    """The path's stat and a tar of it; the stream must be read to its end or closed."""
    files = _view(core, ref)
    rec, view = await files.__aenter__()
    try:
        reader = await asyncio.to_thread(cp.ArchiveReader, view, path, ref)
    except BaseException:
        await files.__aexit__(None, None, None)
        raise
    core.emit(rec, "archive-path")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while (chunk := await asyncio.to_thread(reader.next_chunk)) is not None:
                yield chunk
        finally:
            await asyncio.to_thread(reader.close)
            await files.__aexit__(None, None, None)
    return reader.stat, chunks()


async def put_archive(core: ContainerCore, ref: str, path: str, body: AsyncIterator[bytes],
                      copy_uid_gid: bool = False, no_overwrite_dir_non_dir: bool = False) -> None:
    """Extract a tar into the directory ``path``. The tar is spooled to disk first and
    checked whole before anything is written: a refused tar changes nothing."""
    rec = core.store.get(ref)
    cp.check_writable(path, rec.mounts, rec.host_config.readonly_rootfs)
    owner = None
    if copy_uid_gid and rec.config.user:
        layers = core.images.layer_dirs(core.images.resolve(rec.image_id))
        user = await asyncio.to_thread(users.resolve, rec.config.user, layers)
        owner = (user.uid, user.gid)
    with tempfile.TemporaryFile(dir=core.config.data_root) as spool:
        async for chunk in body:
            spool.write(chunk)
        async with _view(core, ref) as (rec, view):
            await asyncio.to_thread(cp.extract, view, path, ref, spool, owner, no_overwrite_dir_non_dir)
    core.emit(rec, "extract-to-dir")
