"""What the builder needs from the image store, in one narrow adapter over ImageService.

A build step's image is either the parent's layers with a new config (metadata steps) or
the parent's layers plus one new layer (RUN, COPY, ADD): both go through the image
service's own registration, so a failure leaves no row and no half layer. Images of a
build are chained by ``parent`` like the classic builder's, so ``docker history`` and the
cache can follow them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.daemon.images.register import NewImage, register_image, register_with_layer
from dockyard.daemon.images.resolve import resolve
from dockyard.daemon.images.service import ImageService
from dockyard.mount import Mount
from dockyard.oci import image_spec as spec


@dataclass(frozen=True)
class BaseImage:
    id: str  # "" for scratch
    config: spec.ImageConfig
    top_chain_id: str | None


SNAPSHOT_PREFIX = "build-"  # the builder's scratch snapshots: COPY/ADD/WORKDIR targets and --from sources


class BuildImages:
    def __init__(self, service: ImageService) -> None:
        self._service = service

    def resolve(self, ref: str) -> BaseImage:
        record = resolve(self._service.store, ref)
        return BaseImage(id=record.id, config=record.config, top_chain_id=record.top_chain_id)

    def get(self, image_id: str) -> BaseImage | None:
        record = self._service.store.get(image_id)
        if record is None:
            return None
        return BaseImage(id=record.id, config=record.config, top_chain_id=record.top_chain_id)

    def with_config(self, parent: BaseImage, config: spec.ImageConfig) -> BaseImage:
        """A metadata step: the parent's layers, a new config. Also a step found in a
        ``--cache-from`` image: then the config may name one more layer, already present."""
        data = spec.encode(config)
        count = len(config.rootfs.diff_ids)
        result = register_image(self._service.lock, self._service.layers, self._service.store, NewImage(
            config=data, layers=[_present] * count, parent=parent.id))
        image = self.get(result.id)
        assert image is not None
        return image

    def with_snapshot(self, parent: BaseImage, key: str,
                      make_config: Callable[[str], spec.ImageConfig], keep: bool = False) -> BaseImage:
        """A filesystem step done in the snapshot ``key`` (over ``parent``, unmounted): its upper
        dir becomes the new layer, without a tar written and unpacked again. A scratch snapshot
        is moved (gone afterwards); ``keep`` copies it (a RUN container's, which its service removes)."""
        made: list[spec.ImageConfig] = []

        def config_bytes(diff_id: str) -> bytes:
            made.append(make_config(diff_id))
            return spec.encode(made[-1])

        result = register_with_layer(self._service.lock, self._service.layers, self._service.store,
                                     lambda: self._service.snapshotter.commit(key, keep=keep), config_bytes, [],
                                     parent=parent.id)
        record = self._service.store.get(result.id)
        assert record is not None
        return BaseImage(id=record.id, config=record.config, top_chain_id=record.top_chain_id)

    def layers_above(self, image: BaseImage, base: BaseImage) -> list[Path]:
        """The layer dirs ``image`` has on top of ``base``'s, bottom first (``--squash``)."""
        if image.top_chain_id is None:
            return []
        chain = self._service.layers.chain(image.top_chain_id)  # top first
        return [layer.path for layer in reversed(chain[:len(chain) - len(base.config.rootfs.diff_ids)])]

    def squashed(self, base: BaseImage, key: str, make_config: Callable[[str], spec.ImageConfig]) -> BaseImage:
        """The merged layer in the snapshot ``key`` (over ``base``) on top of ``base``'s layers; no
        parent, as moby's SquashImage. Its files are hard links to the layers' own files, so the
        layer is a copy of the upper dir (``commit(keep=True)``), never the dir itself."""
        made: list[spec.ImageConfig] = []

        def config_bytes(diff_id: str) -> bytes:
            made.append(make_config(diff_id))
            return spec.encode(made[-1])

        result = register_with_layer(self._service.lock, self._service.layers, self._service.store,
                                     lambda: self._service.snapshotter.commit(key, keep=True), config_bytes, [])
        image = self.get(result.id)
        assert image is not None
        return image

    def upper_dir(self, key: str) -> Path:
        return self._service.snapshotter.upper_dir(key)

    def own_layer_size(self, image: BaseImage) -> int:
        """The size of the layer the image's step added (0 when it added none)."""
        record = self._service.store.get(image.id)
        parent = self._service.store.get(record.parent) if record and record.parent else None
        if record is None or record.top_chain_id is None or \
                (parent is not None and parent.top_chain_id == record.top_chain_id):
            return 0
        return self._service.layers.chain(record.top_chain_id)[0].size

    def tag(self, image_id: str, name: str) -> str:
        """Tag the image; returns the familiar name Docker prints."""
        ref = references.parse_tagged(name)
        if ref.digest:
            raise errdefs.InvalidParameter(f"invalid reference format: {name!r} (a build tag cannot be a digest)")
        self._service.tag(image_id, ref.familiar_name, ref.tag or references.DEFAULT_TAG)
        return ref.familiar()

    # ---- scratch rootfs for COPY/ADD -------------------------------------------------
    def prepare(self, key: str, image: BaseImage) -> list[Mount]:
        return self._service.snapshotter.prepare(key, image.top_chain_id)

    def remove(self, key: str) -> None:
        self._service.snapshotter.remove(key)

    @staticmethod
    def scratch_key() -> str:
        return SNAPSHOT_PREFIX + secrets.token_hex(8)

    def remove_leftover_snapshots(self) -> None:
        """Scratch snapshots (``build-*``) of builds the daemon died in."""
        for entry in self._service.snapshotter.root.iterdir():
            if entry.name.startswith(SNAPSHOT_PREFIX):
                self._service.snapshotter.remove(entry.name)


def _present() -> object:
    raise AssertionError("layer expected to be registered already")
