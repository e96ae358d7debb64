"""``POST /images/{name}/tag?repo=&tag=``: point a (new or existing) tag at an image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.daemon.images import references
from dockyard.daemon.images.resolve import resolve

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


def tag(service: ImageService, ref: str, repo: str, tag_name: str) -> str:
    """Returns the familiar new reference (``myimage:1``)."""
    record = resolve(service.store, ref)
    new_ref = references.parse_repo_tag(repo, tag_name)
    with service.store.db.transaction() as cur:
        service.store.set_ref(cur, new_ref, record.id)
    service.events.emit("image", "tag", record.id, {"name": new_ref.familiar()})
    return new_ref.familiar()
