"""Adding an image: layers first, then the image row and its tags in one transaction.

Shared by load, import and commit. Layers are unpacked one by one (each is its own
committed state in the layer store); only when all are there does one transaction
add the image and its references. If anything fails on the way, the layers this call
made are released again, so a failed load or import leaves no half image behind:
no row, no layer directory (content-addressed blobs may stay; they are harmless).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import IO, Callable

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.daemon.images.store import ImageStore
from dockyard.oci import image_spec as spec
from dockyard.storage.layers import Layer, LayerStore, chain_id_of


@dataclass
class Registered:
    id: str
    new: bool
    tagged: list[references.Reference] = field(default_factory=list)
    # refs that pointed at another image before: (ref, previous image id)
    moved: list[tuple[references.Reference, str]] = field(default_factory=list)


@dataclass
class NewImage:
    config: bytes  # exactly as hashed into the ID
    layers: list[Callable[[], IO[bytes]]]  # openers of the layer blobs, base first
    names: list[references.Reference] = field(default_factory=list)
    parent: str = ""

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def _diff_ids(image: NewImage) -> list[str]:
    try:
        diff_ids = spec.decode_config(image.config).rootfs.diff_ids
    except Exception as e:
        raise errdefs.InvalidParameter(f"invalid image config: {e}") from None
    if len(diff_ids) != len(image.layers):
        raise errdefs.InvalidParameter(
            f"invalid image: config lists {len(diff_ids)} layers, {len(image.layers)} given")
    return diff_ids


def register_images(lock: threading.RLock, layers: LayerStore, store: ImageStore,
                    images: list[NewImage]) -> list[Registered]:
    """Unpack every image's layers, then add all images and names in one transaction."""
    plans = [(image, _diff_ids(image)) for image in images]
    with lock:
        made: list[str] = []  # the topmost chains this call registered: released on failure
        try:
            tops: list[str | None] = []
            for image, diff_ids in plans:
                top: str | None = None
                made.append("")  # this image's topmost new chain, once it has one
                for diff_id, open_layer in zip(diff_ids, image.layers):
                    chain = chain_id_of(top, diff_id)
                    if not layers.exists(chain):
                        reader = open_layer()
                        try:
                            layers.register(reader, top, expected_diff_id=diff_id)
                            while reader.read(1 << 20):  # to EOF, so a verifying reader checks its digest
                                pass
                        finally:
                            reader.close()
                        made[-1] = chain
                    top = chain
                tops.append(top)
            results = []
            with store.db.transaction() as cur:
                for (image, _), top in zip(plans, tops):
                    size = sum(layer.size for layer in layers.chain(top)) if top else 0
                    result = Registered(id=image.id, new=store.insert(cur, image.id, image.config, top, size,
                                                                     image.parent))
                    for name in image.names:
                        previous = store.set_ref(cur, name, image.id)
                        result.tagged.append(name)
                        if previous is not None and previous != image.id:
                            result.moved.append((name, previous))
                    results.append(result)
            return results
        except BaseException:
            for chain in reversed(made):
                if chain:
                    layers.release(chain)
            raise


def register_image(lock: threading.RLock, layers: LayerStore, store: ImageStore,
                   image: NewImage) -> Registered:
    return register_images(lock, layers, store, [image])[0]


def register_with_new_layer(lock: threading.RLock, layers: LayerStore, store: ImageStore, diff: IO[bytes],
                            parent_chain_id: str | None, make_config: Callable[[str], bytes],
                            names: list[references.Reference], parent: str = "") -> Registered:
    """Import and commit: the config names the new layer by its diff ID, known only once the
    layer is unpacked. ``make_config(diff_id)`` builds the config bytes, base layers first."""
    return register_with_layer(lock, layers, store, lambda: layers.register(diff, parent_chain_id), make_config,
                               names, parent)


def register_with_layer(lock: threading.RLock, layers: LayerStore, store: ImageStore, new_layer: Callable[[], Layer],
                        make_config: Callable[[str], bytes], names: list[references.Reference],
                        parent: str = "") -> Registered:
    """``register_with_new_layer`` for a layer that ``new_layer()`` makes in the layer store
    (a build step's snapshot adopted as a layer: ``OverlaySnapshotter.commit``)."""
    with lock:
        layer = new_layer()
        try:
            config = make_config(layer.diff_id)
            chain = [lay.diff_id for lay in reversed(layers.chain(layer.chain_id))]
            # Every layer exists already, so no opener is ever called.
            return register_image(lock, layers, store, NewImage(
                config=config, layers=[_present] * len(chain), names=names, parent=parent))
        except BaseException:
            layers.release(layer.chain_id)
            raise


def _present() -> IO[bytes]:
    raise AssertionError("layer expected to be registered already")
