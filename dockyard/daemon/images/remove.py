"""``DELETE /images/{name}`` and ``POST /images/prune``, with Docker's untag semantics.

Removing by reference untags; the image itself goes only with its last reference.
Removing by ID deletes the image (and its only tag, or all tags with force).
Conflicts, as Docker words them:

- hard (never forced): a running container uses it; it has child images.
- soft (force overrides): a stopped container uses it; other tags still point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard import errdefs
from dockyard.apitypes import image as api
from dockyard.daemon.images import filters as flt
from dockyard.daemon.images import references
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.store import short_id

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


@dataclass
class _Conflict:
    hard: bool
    used: bool
    message: str

    def error(self, image_id: str) -> errdefs.Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        return errdefs.Conflict(f"conflict: unable to delete {short_id(image_id)} ({force}) - {self.message}")


def _is_id_prefix(image_id: str, ref: str) -> bool:
    return image_id.startswith(ref) or image_id.partition(":")[2].startswith(ref)


def _check_conflict(service: ImageService, image_id: str, tagged: bool, stopped: bool) -> _Conflict | None:
    """Hard conflicts always; ``tagged``: other references remain; ``stopped``: a stopped user."""
    if service.store.children(image_id):
        return _Conflict(True, False, "image has dependent child images")
    users = service.containers.containers_using_image(image_id)
    running = [cid for cid, is_running in users if is_running]
    if running:
        return _Conflict(True, True, f"image is being used by running container {running[0][:12]}")
    if tagged and service.store.refs_of(image_id):
        return _Conflict(False, False, "image is referenced in multiple repositories")
    if stopped and users:
        return _Conflict(False, True, f"image is being used by stopped container {users[0][0][:12]}")
    return None


def _untag(service: ImageService, image_id: str, name: str, records: list[api.DeleteResponse]) -> None:
    with service.store.db.transaction() as cur:
        service.store.delete_ref(cur, name)
    records.append(api.DeleteResponse(untagged=references.familiar(name)))
    service.events.emit("image", "untag", image_id, {"name": image_id})


def _delete(service: ImageService, image_id: str, force: bool, prune: bool, quiet: bool,
            records: list[api.DeleteResponse]) -> int:
    """Delete the image (untagging what is left), then its unreferenced layers; returns bytes freed."""
    conflict = _check_conflict(service, image_id, tagged=not force, stopped=not force)
    if conflict is not None:
        if quiet and (service.store.refs_of(image_id) or service.store.children(image_id) or conflict.used):
            return 0  # an untag already happened: that was the job
        raise conflict.error(image_id)
    for name in service.store.refs_of(image_id):
        _untag(service, image_id, name, records)
    record = service.store.get(image_id)
    if record is None:
        return 0
    freed = 0
    with service.lock:
        sizes = dict((l.chain_id, l.size) for l in service.layers.chain(record.top_chain_id)) \
            if record.top_chain_id else {}
        with service.store.db.transaction() as cur:
            service.store.delete_image(cur, image_id)
        # A forced delete under a stopped container keeps the layers its snapshot sits on;
        # remove_rootfs releases them with the container.
        keep = bool(service.containers.containers_using_image(image_id))
        removed = service.layers.release(record.top_chain_id) if record.top_chain_id and not keep else []
    service.events.emit("image", "delete", image_id, {"name": image_id})
    records.append(api.DeleteResponse(deleted=image_id))
    for chain_id in removed:
        records.append(api.DeleteResponse(deleted=chain_id))
        freed += sizes.get(chain_id, 0)
    if prune and record.parent and service.store.get(record.parent) is not None \
            and not service.store.refs_of(record.parent) and not service.store.children(record.parent):
        freed += _delete(service, record.parent, False, True, True, records)
    return freed


def remove(service: ImageService, ref: str, force: bool, prune: bool) -> list[api.DeleteResponse]:
    records: list[api.DeleteResponse] = []
    _remove(service, ref, force, prune, records)
    return records


def _remove(service: ImageService, ref: str, force: bool, prune: bool, records: list[api.DeleteResponse]) -> int:
    """Docker's ImageDelete; appends to ``records`` and returns the bytes freed."""
    record = resolve(service.store, ref)
    image_id = record.id
    tags = service.store.refs_of(image_id)
    digests = service.store.digests_of(image_id)
    removed_ref = False
    if not _is_id_prefix(image_id, ref):
        named = references.parse_tagged(ref)
        users = service.containers.containers_using_image(image_id)
        if users and len(tags) + len(digests) == 1:
            if not force:
                raise errdefs.Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - container '
                    f"{users[0][0][:12]} is using its referenced image {short_id(image_id)}")
            _untag_named(service, image_id, named, records)
            return 0
        _untag_named(service, image_id, named, records)
        if service.store.refs_of(image_id) or service.store.digests_of(image_id):
            return 0
        removed_ref = True
    elif len(tags) == 1 or (not tags and len({references.parse(d).name for d in digests}) == 1):
        conflict = _check_conflict(service, image_id, tagged=False, stopped=not force)
        if conflict is not None:
            raise conflict.error(image_id)
        for name in tags:
            _untag(service, image_id, name, records)
    return _delete(service, image_id, force, prune, removed_ref, records)


def _untag_named(service: ImageService, image_id: str, named: references.Reference,
                 records: list[api.DeleteResponse]) -> None:
    _untag_one(service, image_id, named, records)
    if named.digest is None and not any(references.parse(t).name == named.name
                                        for t in service.store.refs_of(image_id)):
        # moby: the repository's last tag is gone, so are its digest references
        for digest_ref in service.store.digests_of(image_id):
            parsed = references.parse(digest_ref)
            if parsed.name == named.name:
                _untag_one(service, image_id, parsed, records)


def _untag_one(service: ImageService, image_id: str, named: references.Reference,
               records: list[api.DeleteResponse]) -> None:
    if named.digest is not None:
        with service.store.db.transaction() as cur:
            cur.execute("DELETE FROM repo_digests WHERE name = ?", (str(named),))
        records.append(api.DeleteResponse(untagged=named.familiar()))
        service.events.emit("image", "untag", image_id, {"name": image_id})
        return
    if service.store.ref_target(str(named)) != image_id:
        raise errdefs.no_such_image(named.familiar())
    _untag(service, image_id, str(named), records)


def prune(service: ImageService, filters: dict[str, list[str]]) -> api.PruneReport:
    flt.validate(filters, flt.PRUNE_FILTERS)
    dangling_only = flt.dangling(filters) is not False
    until = min((flt.parse_until(v) for v in filters.get("until", [])), default=None)
    records: list[api.DeleteResponse] = []
    freed = 0
    parents = {r.parent for r in service.store.all() if r.parent}
    for record in service.store.all():
        if record.id in parents or service.store.get(record.id) is None:
            continue  # only heads, as Docker: parents go with their last child
        if service.containers.containers_using_image(record.id):
            continue
        tags = service.store.refs_of(record.id)
        if dangling_only and tags:
            continue
        if until is not None and flt.parse_created(record.config.created) >= until:
            continue
        labels = dict(record.config.config.labels or {}) if record.config.config else {}
        if "label" in filters and not flt.labels_match(labels, filters["label"]):
            continue
        if "label!" in filters and any(flt.labels_match(labels, [w]) for w in filters["label!"]):
            continue
        try:
            if tags:
                for name in tags:
                    freed += _remove(service, references.familiar(name), False, True, records)
            else:
                freed += _delete(service, record.id, False, True, False, records)
        except errdefs.Conflict:
            continue
    service.events.emit("image", "prune", "", {"reclaimed": str(freed)})
    return api.PruneReport(images_deleted=records or None, space_reclaimed=freed)
