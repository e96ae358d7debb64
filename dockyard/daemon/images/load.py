"""``POST /images/load``: docker-archive or OCI layout tar in, images registered.

All images of the archive are checked and unpacked before any is added, then all are
added in one transaction: a truncated, corrupt or escaping archive adds nothing.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from dockyard.apitypes import image as api
from dockyard.daemon.images.archive_read import read_archive
from dockyard.daemon.images.register import NewImage, register_images

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


def load(service: ImageService, archive: IO[bytes]) -> list[api.ProgressMessage]:
    """Returns the lines Docker streams back (``Loaded image: busybox:latest``)."""
    found = read_archive(archive)
    images = [NewImage(config=image.config, layers=[layer.open for layer in image.layers], names=image.names)
              for image in found]
    results = register_images(service.lock, service.layers, service.store, images)
    out = []
    for result in results:
        for name, previous in result.moved:
            out.append(api.ProgressMessage(stream=f"The image {name.familiar()} already exists, renaming the "
                                                  f"old one with ID {previous} to empty string\n"))
        service.events.emit("image", "load", result.id, {"name": result.id})
        if result.tagged:
            out.extend(api.ProgressMessage(stream=f"Loaded image: {name.familiar()}\n") for name in result.tagged)
        else:
            out.append(api.ProgressMessage(stream=f"Loaded image ID: {result.id}\n"))
    return out
