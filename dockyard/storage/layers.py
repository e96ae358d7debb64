"""Unpacked image layers, one directory per chain ID (the overlay lower dirs).

Layout under ``root``::

    <cache_id>/        the unpacked layer: an overlay lower directory. cache_id is 10 hex
                       digits: short, because every lower dir of a container's rootfs is
                       listed in one overlay mount option, and mount(2) takes one page
    tmp-<random>/      an extraction in progress; garbage at start-up

The ``layers`` table (metadata.py) is the truth: a directory without a row is garbage
collected by ``gc()``. A layer unpacked from a tar keeps that uncompressed tar in the content
store under its diff ID, so save/push reproduce the exact diff. A layer adopted from an
overlay upper dir (``register_dir``: build steps) has no blob until one is needed:
``tar_stream`` regenerates it from the layer directory, which ``adopt_changes`` left exactly
as the tar describes, and stores it only if its digest is the diff ID.

chain_id = diff_id for a base layer, else sha256(parent_chain_id + " " + diff_id) (OCI
image spec). A layer is referenced by an image whose ``top_chain_id`` it is, or by a
child layer (``parent``); ``release`` removes it only when neither holds.

Crash safety of ``register``, ``register_dir`` and ``register_copy``: extract into (or rename
the upper dir to, or copy it to) tmp-, syncfs, rename to <cache_id>, fsync the root, then insert the row. A crash before the
insert leaves only garbage for ``gc``; a missing diff blob is made again when asked for.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

from dockyard import errdefs
from dockyard.storage.archive import adopt_changes, clone_changes, extract_layer, tar_dir_changes
from dockyard.storage.content import ContentStore, Descriptor
from dockyard.storage.fsutil import fsync_dir, remove_tree, syncfs
from dockyard.storage.metadata import Database

_TMP_PREFIX = "tmp-"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None  # parent chain id
    size: int  # unpacked content bytes
    path: Path  # the overlay lower dir


def chain_id_of(parent_chain_id: str | None, diff_id: str) -> str:
    """OCI chain ID of a layer with this diff on top of ``parent_chain_id``."""
    if parent_chain_id is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain_id} {diff_id}".encode()).hexdigest()


class LayerStore:
    def __init__(self, root: Path, content: ContentStore, db: Database) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._content = content
        self._db = db
        # Serializes the short commit / release steps (not extraction), so a release never
        # deletes a diff blob that a concurrent register is about to reference.
        self._lock = threading.Lock()

    # ---- reading ------------------------------------------------------------------------

    def _layer(self, row: tuple) -> Layer:
        chain_id, diff_id, parent, size, cache_id = row
        return Layer(chain_id, diff_id, parent, size, self.root / cache_id)

    def _find(self, chain_id: str) -> Layer | None:
        rows = self._db.query(
            "SELECT chain_id, diff_id, parent, size, cache_id FROM layers WHERE chain_id = ?", (chain_id,))
        return self._layer(rows[0]) if rows else None

    def get(self, chain_id: str) -> Layer:
        """Raises errdefs.NotFound."""
        layer = self._find(chain_id)
        if layer is None:
            raise errdefs.NotFound(f"layer {chain_id} does not exist")
        return layer

    def exists(self, chain_id: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)))

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and its ancestors, top first (one query: this is on the container start path)."""
        rows = self._db.query(
            "WITH RECURSIVE up(chain_id, diff_id, parent, size, cache_id, depth) AS ("
            " SELECT chain_id, diff_id, parent, size, cache_id, 0 FROM layers WHERE chain_id = ?"
            " UNION ALL SELECT l.chain_id, l.diff_id, l.parent, l.size, l.cache_id, up.depth + 1"
            " FROM layers l JOIN up ON l.chain_id = up.parent)"
            " SELECT chain_id, diff_id, parent, size, cache_id FROM up ORDER BY depth", (chain_id,))
        if not rows:
            raise errdefs.NotFound(f"layer {chain_id} does not exist")
        layers = [self._layer(row) for row in rows]
        if layers[-1].parent is not None:
            raise errdefs.NotFound(f"layer {layers[-1].parent} (below {chain_id}) does not exist")
        return layers

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """Overlay lower dirs of the chain, top first."""
        return [layer.path for layer in self.chain(chain_id)]

    def tar_stream(self, chain_id: str) -> BinaryIO:
        """The layer's exact uncompressed diff tar (open file; the caller closes it)."""
        return self._from_diff_blob(chain_id, self._content.open)

    def diff_blob(self, chain_id: str) -> Descriptor:
        """The layer's diff tar as a content-store blob (its digest is the diff ID), made now
        for a layer adopted from an upper dir that had none yet."""
        return self._from_diff_blob(chain_id, self._content.info)

    def _from_diff_blob(self, chain_id: str, read: Callable[[str], _T]) -> _T:
        """``read`` of the layer's diff blob, regenerated first when it has none."""
        layer = self.get(chain_id)
        try:
            return read(layer.diff_id)
        except errdefs.NotFound:
            pass
        self._store_diff(layer)
        return read(layer.diff_id)

    def _store_diff(self, layer: Layer) -> None:
        """Regenerate the diff blob of a layer adopted from an upper dir (``register_dir``)."""
        with self._content.writer() as blob:
            try:
                for chunk in tar_dir_changes(layer.path):
                    blob.write(chunk)
            except FileNotFoundError:
                raise errdefs.NotFound(f"layer {layer.chain_id} was removed") from None
            try:
                blob.commit(expected_digest=layer.diff_id)
            except errdefs.InvalidParameter as err:
                raise errdefs.System(f"layer {layer.chain_id} does not match its diff ID any more "
                                     f"(its directory {layer.path} was changed): {err}") from None
        with self._lock:  # a release that ran meanwhile could not delete the blob: do it for it
            if not self._db.query("SELECT 1 FROM layers WHERE diff_id = ? LIMIT 1", (layer.diff_id,)):
                self._content.delete(layer.diff_id)
                raise errdefs.NotFound(f"layer {layer.chain_id} was removed")

    # ---- writing ------------------------------------------------------------------------

    def register(self, fileobj: BinaryIO, parent_chain_id: str | None,
                 expected_diff_id: str | None = None) -> Layer:
        """Unpack a (possibly compressed) layer tar on top of ``parent_chain_id``.

        Returns the existing layer when its chain is already there (without reading
        ``fileobj`` if ``expected_diff_id`` names it). Raises errdefs.InvalidParameter for
        a bad tar or when the diff ID differs from ``expected_diff_id``; errdefs.NotFound
        for an unknown parent."""
        if parent_chain_id is not None and not self.exists(parent_chain_id):
            raise errdefs.NotFound(f"parent layer {parent_chain_id} does not exist")
        if expected_diff_id is not None:
            existing = self._find(chain_id_of(parent_chain_id, expected_diff_id))
            if existing is not None:
                return existing
        tmp = self.root / (_TMP_PREFIX + secrets.token_hex(8))
        tmp.mkdir(mode=0o755)
        try:
            with self._content.writer() as blob:
                result = extract_layer(fileobj, tmp, tee=blob)  # type: ignore[arg-type]
                if expected_diff_id is not None and result.diff_id != expected_diff_id:
                    raise errdefs.InvalidParameter(
                        f"layer diff ID mismatch: expected {expected_diff_id}, got {result.diff_id}")
                return self._add(tmp, parent_chain_id, result.diff_id, result.size,
                                 lambda: blob.commit(expected_digest=result.diff_id))
        finally:
            remove_tree(tmp)  # gone already when it became the layer

    def register_dir(self, upper: Path, parent_chain_id: str | None) -> Layer:
        """Make the overlay upper dir ``upper`` (unmounted, given up by the caller) the layer of
        its changes on top of ``parent_chain_id``: moved into the store and adopted in place
        (``adopt_changes``), so the data is neither copied nor written as a tar. Same result as
        ``register`` of ``tar_dir_changes(upper)``: diff ID, chain, merged view. ``upper`` is
        gone afterwards, also on failure. Its files must be its own (as overlay makes them):
        times, owners and xattrs are set in place, so a hard link to another layer's file
        would change that layer (use ``register_copy``). Raises errdefs.NotFound for an
        unknown parent."""
        if parent_chain_id is not None and not self.exists(parent_chain_id):
            raise errdefs.NotFound(f"parent layer {parent_chain_id} does not exist")
        tmp = self.root / (_TMP_PREFIX + secrets.token_hex(8))
        try:
            os.rename(upper, tmp)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            try:  # the snapshots live on another filesystem: copy through the tar
                return self.register(_ChunkReader(tar_dir_changes(upper)), parent_chain_id)
            finally:
                remove_tree(upper)
        try:
            return self._adopt(tmp, parent_chain_id)
        finally:
            remove_tree(tmp)  # gone already when it became the layer

    def register_copy(self, upper: Path, parent_chain_id: str | None) -> Layer:
        """``register_dir`` of a copy of ``upper``, which stays as it is (a container's upper dir,
        the container perhaps running: the caller pauses it to get one instant's state). The copy
        is made in the store's tmp- directory (``clone_changes``, data copied in the kernel)."""
        if parent_chain_id is not None and not self.exists(parent_chain_id):
            raise errdefs.NotFound(f"parent layer {parent_chain_id} does not exist")
        tmp = self.root / (_TMP_PREFIX + secrets.token_hex(8))
        tmp.mkdir(mode=0o755)
        try:
            clone_changes(upper, tmp)
            return self._adopt(tmp, parent_chain_id)
        finally:
            remove_tree(tmp)  # gone already when it became the layer

    def _adopt(self, tmp: Path, parent_chain_id: str | None) -> Layer:
        result = adopt_changes(tmp)
        return self._add(tmp, parent_chain_id, result.diff_id, result.size)

    def _add(self, tmp: Path, parent_chain_id: str | None, diff_id: str, size: int,
             keep_blob: Callable[[], None] | None = None) -> Layer:
        """The prepared ``tmp`` as the layer, or the one already there for its chain; under the
        lock, so a racing register or a release of the parent is seen. ``keep_blob`` commits
        the diff blob written alongside, only when this layer is the one kept."""
        chain_id = chain_id_of(parent_chain_id, diff_id)
        with self._lock:
            existing = self._find(chain_id)
            if existing is not None:
                return existing
            if parent_chain_id is not None and not self.exists(parent_chain_id):
                raise errdefs.NotFound(f"parent layer {parent_chain_id} was removed meanwhile")
            if keep_blob is not None:
                keep_blob()
            return self._commit(tmp, chain_id, diff_id, parent_chain_id, size)

    def _commit(self, tmp: Path, chain_id: str, diff_id: str, parent: str | None, size: int) -> Layer:
        syncfs(tmp)
        while True:
            cache_id = secrets.token_hex(5)
            final = self.root / cache_id
            if not final.exists():
                break
        os.rename(tmp, final)
        fsync_dir(self.root)
        try:
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO layers (chain_id, diff_id, parent, size, cache_id, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (chain_id, diff_id, parent, size, cache_id,
                     datetime.datetime.now(datetime.timezone.utc).isoformat()))
        except BaseException:
            remove_tree(final)
            raise
        return Layer(chain_id, diff_id, parent, size, final)

    def release(self, chain_id: str) -> list[str]:
        """Remove the layer, then its parents, while nothing references them (no image
        with that top_chain_id, no child layer). Returns the chain ids removed."""
        removed: list[str] = []
        current: str | None = chain_id
        with self._lock:
            while current is not None:
                with self._db.transaction() as cur:
                    row = cur.execute("SELECT diff_id, parent, cache_id FROM layers WHERE chain_id = ?",
                                      (current,)).fetchone()
                    if row is None:
                        break
                    in_use = cur.execute(
                        "SELECT 1 FROM images WHERE top_chain_id = ? UNION ALL "
                        "SELECT 1 FROM layers WHERE parent = ? LIMIT 1", (current, current)).fetchone()
                    if in_use:
                        break
                    cur.execute("DELETE FROM layers WHERE chain_id = ?", (current,))
                    diff_id, parent, cache_id = row
                    diff_shared = cur.execute("SELECT 1 FROM layers WHERE diff_id = ? LIMIT 1",
                                              (diff_id,)).fetchone()
                # the row is gone: a crash from here on leaves only garbage for gc()
                remove_tree(self.root / cache_id)
                if not diff_shared:
                    self._content.delete(diff_id)
                removed.append(current)
                current = parent
        return removed

    def gc(self) -> None:
        """At start-up: remove extractions in progress and directories without a row."""
        known = {row[0] for row in self._db.query("SELECT cache_id FROM layers")}
        for entry in self.root.iterdir():
            if entry.name not in known:
                remove_tree(entry)


class _ChunkReader:
    """A file-like ``read`` over an iterator of byte chunks (a tar being generated)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data
