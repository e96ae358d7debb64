"""Making a container: the request checked (``create.prepare``, before anything is written),
its name and ID chosen, its mounts resolved by the volume service, its rootfs snapshot
prepared and its record added; what was made is undone when a later step fails."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from dockyard.apitypes.container import CreateRequest, CreateResponse, EndpointSettings, MountPoint
from dockyard.daemon.containers import create as creating
from dockyard.daemon.containers import logdrivers, names, startup, views
from dockyard.daemon.containers.core import ContainerCore, log
from dockyard.daemon.containers.record import ContainerRecord, RootfsMount
from dockyard.daemon.interfaces import ImageInfo


@dataclass
class _NewContainer:
    """A container create between its checks and its record (its mounts are resolved between)."""
    cid: str
    name: str
    image: ImageInfo
    prepared: creating.Created
    endpoints: dict[str, EndpointSettings]


def create(core: ContainerCore, request: CreateRequest, name: str | None = None) -> CreateResponse:
    """For synchronous callers (build steps): volume drivers are called on this thread."""
    new = _begin(core, request, name)
    return _finish(core, new, core.volumes.resolve_mounts(*_mount_args(core, new)))


async def create_async(core: ContainerCore, request: CreateRequest, name: str | None = None,
                       default_read_only_non_recursive: bool = False) -> CreateResponse:
    """The API's create: the volumes' driver calls (a volume plugin up to its timeout, copy-up)
    run in a worker thread, so a slow plugin delays this answer, never the event loop. A name
    taken meanwhile is still refused, by the store's unique name. A client before API 1.44
    sets ``default_read_only_non_recursive`` (its read-only binds stay non-recursive)."""
    new = _begin(core, request, name)
    response = _finish(core, new, await core.volumes.resolve_mounts_async(
        *_mount_args(core, new), default_read_only_non_recursive))
    warm_start(core, core.store.get(new.cid))
    return response


def warm_start(core: ContainerCore, rec: ContainerRecord) -> None:
    """After the answer, while the client sends its attach and wait: make the directories and
    files the start that usually follows (docker run) would make, and the next create's rootfs
    directories, in a worker thread. Making a file or a directory costs 0.1-0.3 ms on an ext4
    root, writing into one or renaming it far less. Best effort: the start makes whatever is
    missing (``ContainerCore.warmed`` waits for this)."""
    hc = rec.host_config
    exec_dir, data_dir = core.exec_dir(rec.id), core.data_dir(rec.id)

    def prepare() -> None:
        try:
            startup.prepare_exec_dir(exec_dir)
            core.networks.prepare_sandbox_files(rec.id, hc.network_mode, rec.config.hostname, hc.dns or [],
                                                hc.dns_search or [], hc.dns_options or [],
                                                hc.extra_hosts or [], data_dir)
            core.images.make_spare_rootfs()  # for the next create
        except Exception as e:  # the start makes what is missing, and reports what fails
            log.info("container %s: preparing its start: %s", rec.id, e)

    task = asyncio.ensure_future(asyncio.to_thread(prepare))
    core.warming[rec.id] = task
    core.keep(task)


def _begin(core: ContainerCore, request: CreateRequest, name: str | None) -> _NewContainer:
    store = core.store
    if name:
        name = names.validate_name(name)
        holder = store.holder_of(name)
        if holder:
            raise names.name_conflict(name, holder)
    image = startup.resolve_image(core.images, request.image)
    cid = names.new_id(store.has_id)
    prepared = creating.prepare(request, image, cid, core.config)
    endpoints = creating.endpoints_config(request, prepared.host_config.network_mode)
    core.networks.check_endpoints(prepared.host_config.network_mode, endpoints)
    name = name or names.generate_name(lambda n: store.holder_of(n) is not None)
    return _NewContainer(cid, name, image, prepared, endpoints)


def _mount_args(core: ContainerCore, new: _NewContainer) -> tuple:
    return (new.cid, new.prepared.host_config, new.prepared.config.volumes,
            core.images.layer_dirs(new.image), lambda ref: core.store.get(ref).id)


def _finish(core: ContainerCore, new: _NewContainer, mounts: list[MountPoint]) -> CreateResponse:
    """After the mounts are resolved: the rootfs snapshot and the record (undone on failure)."""
    cid, name, image, prepared, endpoints = new.cid, new.name, new.image, new.prepared, new.endpoints
    data_dir = core.data_dir(cid)
    try:
        rootfs = core.images.prepare_rootfs(cid, image)
    except BaseException:
        core.volumes.release_blocking(cid, remove_anonymous=True)
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
        core.store.add(rec)
    except BaseException:
        core.images.remove_rootfs(cid)
        core.volumes.release_blocking(cid, remove_anonymous=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    core.emit(rec, "create")
    core.migration_warmer.poke(rec.runtime)  # a start usually follows (docker run)
    return CreateResponse(id=cid, warnings=prepared.warnings)
