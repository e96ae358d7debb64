"""``GET /images/get`` / ``GET /images/{name}/get``: a docker-archive tar stream.

Which images and tags a list of names means (``docker save busybox`` is every tag of
the repository), then ``archive_write`` streams them. Layer blobs are the exact
uncompressed diffs the layer store kept, so image IDs survive a save/load round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Iterator

from dockyard import errdefs
from dockyard.daemon.images import references, tarstream
from dockyard.daemon.images.archive_write import ArchiveEntry, LayerBlob, write_archive
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.store import ImageRecord
from dockyard.storage.layers import chain_id_of

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


@dataclass
class _Export:
    record: ImageRecord
    tags: list[references.Reference] = field(default_factory=list)


def _select(service: ImageService, names: list[str]) -> list[_Export]:
    """What each name means to ``docker save``: a repository without a tag is all its tags."""
    chosen: dict[str, _Export] = {}

    def add(record: ImageRecord, tag: references.Reference | None) -> None:
        entry = chosen.setdefault(record.id, _Export(record))
        if tag is not None and tag not in entry.tags:
            entry.tags.append(tag)

    for name in names:
        try:
            parsed = references.parse(name)
        except errdefs.InvalidParameter:
            parsed = None
        if parsed is not None and parsed.tag is None and parsed.digest is None and ":" not in name:
            repo_tags = [references.parse(r) for r in service.store.ref_names()
                         if references.parse(r).name == parsed.name]
            if repo_tags:
                for ref in repo_tags:
                    add(resolve(service.store, str(ref)), ref)
                continue
        record = resolve(service.store, name)
        is_id = record.id.startswith(name) or record.id.partition(":")[2].startswith(name)
        add(record, None if is_id or parsed is None or parsed.digest else references.parse_tagged(name))
    return list(chosen.values())


def save(service: ImageService, names: list[str]) -> Iterator[bytes]:
    exports = _select(service, names)  # resolve now: a bad name is an error before any byte is sent
    return write_archive(_entries(service, exports))


def _entries(service: ImageService, exports: list[_Export]) -> Iterator[ArchiveEntry]:
    for export in exports:
        record = export.record
        service.events.emit("image", "save", record.id, {"name": record.id})
        layers = []
        chain: str | None = None
        for diff_id in record.config.rootfs.diff_ids:
            chain = chain_id_of(chain, diff_id)
            layers.append(LayerBlob(diff_id, service.layers.diff_blob(chain).size, partial(_read_layer, service, chain)))
        yield ArchiveEntry(config=record.config_bytes, layers=layers, tags=export.tags)


def _read_layer(service: ImageService, chain_id: str) -> Iterator[bytes]:
    with service.layers.tar_stream(chain_id) as reader:
        yield from iter(lambda: reader.read(tarstream.CHUNK), b"")
