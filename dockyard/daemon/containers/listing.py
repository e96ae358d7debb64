"""The read side over all containers: ``docker ps`` (its filters and order), inspect, the
counts ``docker info`` shows and which containers use an image (moby's list.go, inspect.go).
The projections themselves are ``views``."""

from __future__ import annotations

from typing import Callable

from dockyard import errdefs
from dockyard.apitypes.container import ContainerInspect, ContainerSummary
from dockyard.daemon.containers import startup, views
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.core import ContainerCore
from dockyard.daemon.containers.record import ContainerRecord


def list_containers(core: ContainerCore, all: bool = False, limit: int = -1, size: bool = False,
                    filters: dict[str, list[str]] | None = None) -> list[ContainerSummary]:
    filters = dict(filters or {})
    views.check_filters(filters)
    records = sorted(core.store.all(), key=lambda r: r.created, reverse=True)
    if "before" in filters:
        before = core.store.get(filters.pop("before")[0])
        records = [r for r in records if r.created < before.created]
        all = True
    if "since" in filters:
        since = core.store.get(filters.pop("since")[0])
        records = [r for r in records if r.created > since.created]
        all = True
    if limit > 0 or "status" in filters or "exited" in filters:
        all = True
    ancestors: set[str] = set()
    for value in filters.get("ancestor", []):
        try:
            ancestors.add(core.images.resolve(value).id)
        except errdefs.NotFound:
            continue
    out = []
    labels: dict[str, str] = {}
    for rec in records:
        if not all and not rec.state.running and rec.state.status != st.RESTARTING:
            continue
        if not views.matches(rec, filters, ancestors):
            continue
        if rec.config.image not in labels:
            labels[rec.config.image] = _image_label(core, rec)
        size_rw = startup.dir_size(core.upper(rec)) if size else None
        out.append(views.summary(rec, labels[rec.config.image], size_rw=size_rw))
        if 0 < limit <= len(out):
            break
    return out


def _image_label(core: ContainerCore, rec: ContainerRecord) -> str:
    """The name the container was made from, or the image ID once that name points elsewhere."""
    try:
        if core.images.resolve(rec.config.image).id == rec.image_id:
            return rec.config.image
    except errdefs.DockyardError:
        pass
    return rec.image_id


def inspect(core: ContainerCore, ref: str, size: bool, exec_ids: Callable[[str], list[str]]) -> ContainerInspect:
    rec = core.store.get(ref)
    size_rw = startup.dir_size(core.upper(rec)) if size else None
    view = views.inspect(rec, size_rw=size_rw)
    view.exec_ids = exec_ids(rec.id) or None
    return view


def counts(core: ContainerCore) -> dict[str, int]:
    records = core.store.all()
    running = sum(1 for r in records if r.state.status == st.RUNNING)
    paused = sum(1 for r in records if r.state.status == st.PAUSED)
    return {"total": len(records), "running": running, "paused": paused,
            "stopped": len(records) - running - paused}


def containers_using_image(core: ContainerCore, image_id: str) -> list[tuple[str, bool]]:
    return [(r.id, r.state.running) for r in core.store.all() if r.image_id == image_id]
