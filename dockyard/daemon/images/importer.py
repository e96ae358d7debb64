"""``POST /images/create?fromSrc=-``: a root filesystem tar in, a one-layer image out.

The config is what ``docker import`` makes: the host's platform, ``--change``
instructions applied to an empty container config, the message as comment and as
the single history entry (``Imported from -`` when none is given).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from dockyard import errdefs
from dockyard.apitypes import image as api
from dockyard.daemon.images import changes as change_rules
from dockyard.daemon.images import references
from dockyard.oci.platform import host_arch
from dockyard.daemon.images.register import register_with_new_layer
from dockyard.daemon.images.store import now_rfc3339
from dockyard.oci import image_spec as spec

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


def import_image(service: ImageService, source: IO[bytes], repo: str, tag_name: str, message: str,
                 changes: list[str], platform: str) -> list[api.ProgressMessage]:
    name = references.parse_repo_tag(repo, tag_name) if repo else None
    os_name, arch = "linux", host_arch()
    if platform:
        os_name, _, arch = platform.partition("/")
        if os_name != "linux":
            raise errdefs.InvalidParameter(f"operating system is not supported: {os_name}")
        arch = arch.partition("/")[0] or host_arch()
    config = change_rules.apply(spec.ContainerConfig(), changes)
    comment = message or "Imported from -"
    created = now_rfc3339()

    def make_config(diff_id: str) -> bytes:
        return spec.encode(spec.ImageConfig(
            architecture=arch, os=os_name, created=created, comment=comment, config=config,
            rootfs=spec.RootFS(diff_ids=[diff_id]), history=[spec.History(created=created, comment=comment)]))

    result = register_with_new_layer(service.lock, service.layers, service.store, source, None, make_config,
                                     [name] if name else [])
    service.events.emit("image", "import", result.id, {"name": result.id})
    for ref in result.tagged:
        service.events.emit("image", "tag", result.id, {"name": ref.familiar()})
    return [api.ProgressMessage(status=result.id)]
