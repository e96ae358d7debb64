"""Unpacked image layers, one directory per chain ID (the overlay lower dirs).

Layout under ``root``::

    <cache_id>/        the unpacked layer: an overlay lower directory
    tmp-<random>/      an extraction in progress; garbage at start-up

The ``layers`` table (metadata.py) is the truth: a directory without a row is garbage
collected by ``gc()``. Each layer's uncompressed tar is kept in the content store under
its diff ID, so save/push reproduce the exact diff.

chain_id = diff_id for a base layer, else sha256(parent_chain_id + " " + diff_id) (OCI
image spec). A layer is referenced by an image whose ``top_chain_id`` it is, or by a
child layer (``parent``); ``release`` removes it only when neither holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.storage.content import ContentStore
from dockyard.storage.metadata import Database


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None  # parent chain id
    size: int  # unpacked content bytes
    path: Path  # the overlay lower dir


def chain_id_of(parent_chain_id: str | None, diff_id: str) -> str:
    """OCI chain ID of a layer with this diff on top of ``parent_chain_id``."""
    raise NotImplementedError


class LayerStore:
    def __init__(self, root: Path, content: ContentStore, db: Database) -> None:
        raise NotImplementedError

    def register(self, fileobj: BinaryIO, parent_chain_id: str | None,
                 expected_diff_id: str | None = None) -> Layer:
        """Unpack a (possibly compressed) layer tar on top of ``parent_chain_id``.

        Returns the existing layer when its chain is already there. Raises
        errdefs.InvalidParameter for a bad tar or when the diff ID differs from
        ``expected_diff_id``; errdefs.NotFound for an unknown parent."""
        raise NotImplementedError

    def get(self, chain_id: str) -> Layer:
        """Raises errdefs.NotFound."""
        raise NotImplementedError

    def exists(self, chain_id: str) -> bool:
        raise NotImplementedError

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and its ancestors, top first."""
        raise NotImplementedError

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """Overlay lower dirs of the chain, top first."""
        raise NotImplementedError

    def tar_stream(self, chain_id: str) -> BinaryIO:
        """The layer's exact uncompressed diff tar (open file; the caller closes it)."""
        raise NotImplementedError

    def release(self, chain_id: str) -> list[str]:
        """Remove the layer, then its parents, while nothing references them (no image
        with that top_chain_id, no child layer). Returns the chain ids removed."""
        raise NotImplementedError

    def gc(self) -> None:
        """At start-up: remove extractions in progress and directories without a row."""
        raise NotImplementedError
