"""``GET /images/json`` and the images part of ``GET /system/df``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from dockyard.apitypes import image as api
from dockyard.daemon.images import filters as flt
from dockyard.daemon.images.references import familiar, parse
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.store import ImageRecord

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


def _summary(record: ImageRecord, tags: list[str], digests: list[str]) -> api.ImageSummary:
    config = record.config
    return api.ImageSummary(
        id=record.id, parent_id=record.parent, repo_tags=[familiar(t) for t in tags],
        repo_digests=[parse(d).familiar() for d in digests],
        created=int(flt.parse_created(config.created)), size=record.size, shared_size=-1,
        labels=dict(config.config.labels or {}) if config.config else {}, containers=-1)


def _chains(service: ImageService, record: ImageRecord) -> list[tuple[str, int]]:
    if record.top_chain_id is None:
        return []
    return [(layer.chain_id, layer.size) for layer in service.layers.chain(record.top_chain_id)]


def list_images(service: ImageService, all: bool, filters: dict[str, list[str]],
                shared_size: bool) -> list[api.ImageSummary]:
    flt.validate(filters, flt.LIST_FILTERS)
    dangling = flt.dangling(filters)
    before = min((flt.parse_created(resolve(service.store, r).config.created) for r in filters.get("before", [])),
                 default=None)
    since = max((flt.parse_created(resolve(service.store, r).config.created) for r in filters.get("since", [])),
                default=None)
    until = min((flt.parse_until(v) for v in filters.get("until", [])), default=None)
    records = service.store.all()
    refs = service.store.all_refs()
    digests = service.store.all_digests()
    parents = {r.parent for r in records if r.parent}
    out = []
    for record in records:
        tags = refs.get(record.id, [])
        if dangling is not None and dangling == bool(tags):
            continue
        # Without all, hide untagged intermediates (parents of other images), as Docker does.
        if not all and not tags and record.id in parents:
            continue
        created = flt.parse_created(record.config.created)
        if before is not None and created >= before:
            continue
        if since is not None and created <= since:
            continue
        if until is not None and created > until:
            continue
        summary = _summary(record, tags, digests.get(record.id, []))
        if "label" in filters and not flt.labels_match(summary.labels, filters["label"]):
            continue
        if "reference" in filters and not flt.reference_match(tags, filters["reference"]):
            continue
        out.append((record, summary))
    if shared_size:
        _fill_counts(service, out, records)
    out.sort(key=lambda pair: pair[1].created, reverse=True)
    return [summary for _, summary in out]


def _fill_counts(service: ImageService, pairs: list[tuple[ImageRecord, api.ImageSummary]],
                 records: list[ImageRecord]) -> None:
    """SharedSize (layer bytes also used by another image) and Containers counts."""
    users: dict[str, int] = {}
    chains = {record.id: _chains(service, record) for record in records}
    for chain in chains.values():
        for chain_id, _ in chain:
            users[chain_id] = users.get(chain_id, 0) + 1
    for record, summary in pairs:
        summary.shared_size = sum(size for chain_id, size in chains[record.id] if users[chain_id] > 1)
        summary.containers = len(service.containers.containers_using_image(record.id))


def disk_usage(service: ImageService) -> dict[str, Any]:
    """``{"LayersSize": ..., "Images": [...]}``: every image, with shared size and container counts."""
    records = service.store.all()
    refs = service.store.all_refs()
    digests = service.store.all_digests()
    pairs = [(r, _summary(r, refs.get(r.id, []), digests.get(r.id, []))) for r in records]
    _fill_counts(service, pairs, records)
    layer_sizes: dict[str, int] = {}
    for record in records:
        layer_sizes.update(_chains(service, record))
    usage = api.ImagesDiskUsage(layers_size=sum(layer_sizes.values()),
                                images=sorted((s for _, s in pairs), key=lambda s: s.created, reverse=True))
    return msgspec.to_builtins(usage)
