"""``GET /images/{name}/json``: Docker's ImageInspect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.apitypes import image as api
from dockyard.daemon.images.references import familiar, parse
from dockyard.daemon.images.resolve import resolve
from dockyard.oci import image_spec as spec

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService

GRAPH_DRIVER = "overlay2"


def inspect(service: ImageService, ref: str) -> api.ImageInspect:
    record = resolve(service.store, ref)
    config = record.config
    dirs = [str(p) for p in service.layers.lower_dirs(record.top_chain_id)] if record.top_chain_id else []
    driver_data = {}
    if dirs:
        driver_data["UpperDir"] = dirs[0]
        if len(dirs) > 1:
            driver_data["LowerDir"] = ":".join(dirs[1:])
    return api.ImageInspect(
        id=record.id,
        repo_tags=[familiar(r) for r in service.store.refs_of(record.id)],
        repo_digests=[parse(d).familiar() for d in service.store.digests_of(record.id)],
        parent=record.parent,
        comment=config.comment or "",
        created=config.created,
        docker_version=config.docker_version or "",
        author=config.author or "",
        config=config.config or spec.ContainerConfig(),
        architecture=config.architecture,
        variant=config.variant,
        os=config.os,
        size=record.size,
        graph_driver=api.DriverData(name=GRAPH_DRIVER, data=driver_data),
        root_fs=api.RootFS(type=config.rootfs.type, layers=list(config.rootfs.diff_ids)),
        metadata=api.ImageMetadata(),
    )
