"""Garbage collection: blobs no repository references and upload sessions left behind.

Mark: every manifest revision of every repository, plus what each references (config, layers,
listed manifests). Sweep: blobs outside the mark, repository links to blobs no manifest of that
repository uses, upload sessions idle longer than ``upload_age``. A blob younger than ``grace``
seconds is never removed, so collecting while the hub serves is safe: a push uploads its blobs
before it puts the manifest naming them, and within the grace period that manifest arrives.
What is made live again between the mark and a deletion (an old blob pushed again, mounted, or
named by a new manifest) is spared: see dockyard.registry.sweeplock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from dockyard import errdefs
from dockyard.registry import errors, manifests
from dockyard.registry.store import Store
from dockyard.registry.sweeplock import Collection


@dataclass
class Report:
    blobs_removed: list[str] = field(default_factory=list)
    links_removed: int = 0
    uploads_removed: int = 0
    bytes_freed: int = 0


def collect(store: Store, grace: float = 3600, upload_age: float = 24 * 3600, dry_run: bool = False,
            on_marked: Callable[[], None] | None = None) -> Report:
    """``on_marked`` runs between the mark and the sweep (tests interleave pushes there)."""
    with store.sweep.collection() as collection:
        return _collect(store, collection, grace, upload_age, dry_run, on_marked)


def _collect(store: Store, collection: Collection, grace: float, upload_age: float, dry_run: bool,
             on_marked: Callable[[], None] | None) -> Report:
    report = Report()
    marked: set[str] = set()
    stale_links: list[tuple[str, str]] = []
    now = time.time()
    for name in store.catalog():
        used: set[str] = set()
        for digest in store.manifest_digests(name):
            used.add(digest)
            try:
                data = store.manifest_bytes(digest)
                media_type = store.resolve(name, digest).media_type
                parsed = manifests.parse(data, media_type)
            except (errors.RegistryError, OSError):
                continue
            used.update(ref.digest for ref in parsed.blobs)
        marked |= used
        for digest in store.blob_links(name):
            if digest in used:
                continue
            try:
                if now - store.link_path(name, digest).stat().st_mtime > grace:
                    stale_links.append((name, digest))
                    continue
            except FileNotFoundError:
                continue
            marked.add(digest)  # a recent upload whose manifest may still be coming
    if on_marked is not None:
        on_marked()
    for name, digest in stale_links:
        with collection.deleting() as spared:
            link = store.link_path(name, digest)
            try:
                # spared: made live since the mark; a younger link: pushed again since then
                if digest in spared or time.time() - link.stat().st_mtime <= grace:
                    marked.add(digest)
                    continue
                report.links_removed += 1
                if not dry_run:
                    link.unlink()
            except FileNotFoundError:
                continue
    for desc in store.blobs.list():
        if desc.digest in marked:
            continue
        with collection.deleting() as spared:
            if desc.digest in spared:
                continue
            try:
                if store.blobs.age(desc.digest) <= grace:
                    continue
            except errdefs.NotFound:
                continue
            report.blobs_removed.append(desc.digest)
            report.bytes_freed += desc.size
            if not dry_run:
                store.blobs.delete(desc.digest)
    for uuid, age in store.upload_ids():
        if age > upload_age:
            report.uploads_removed += 1
            if not dry_run:
                store.remove_upload_dir(uuid)
    if not dry_run:
        report.uploads_removed += store.blobs.drop_orphaned_sessions(store.upload_exists)
    return report
