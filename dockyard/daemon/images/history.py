"""``GET /images/{name}/history``: the config's history, newest first.

As Docker does: each entry's size is the size of the layer it made (0 for
``empty_layer`` steps); IDs are filled from the newest entry backwards with this
image, then its parent image, and so on; entries past the known chain are ``<missing>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.apitypes import image as api
from dockyard.daemon.images import filters
from dockyard.daemon.images.references import familiar, parse
from dockyard.daemon.images.resolve import resolve
from dockyard.storage.layers import chain_id_of

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService

MISSING = "<missing>"


def history(service: ImageService, ref: str) -> list[api.HistoryResponseItem]:
    record = resolve(service.store, ref)
    config = record.config
    diff_ids = config.rootfs.diff_ids
    items: list[api.HistoryResponseItem] = []
    chain: str | None = None
    layer_index = 0
    for step in config.history or []:
        size = 0
        if not step.empty_layer and layer_index < len(diff_ids):
            chain = chain_id_of(chain, diff_ids[layer_index])
            layer_index += 1
            if service.layers.exists(chain):
                size = service.layers.get(chain).size
        items.insert(0, api.HistoryResponseItem(
            id=MISSING, created=int(filters.parse_created(step.created)), created_by=step.created_by or "",
            tags=None, size=size, comment=step.comment or ""))
    current = record
    for item in items:
        item.id = current.id
        tags = [familiar(r) for r in service.store.refs_of(current.id) if parse(r).tag is not None]
        item.tags = tags or None
        parent = service.store.get(current.parent) if current.parent else None
        if parent is None:
            break
        current = parent
    return items
