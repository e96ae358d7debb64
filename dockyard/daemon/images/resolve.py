"""Finding an image by what a user typed, in Docker's order.

1. ``sha256:<64 hex>`` or a bare 64-hex ID: the image with that ID.
2. A reference (``busybox``, ``busybox:1``, ``host:5000/a/b@sha256:...``): the tag or
   digest row, with ``:latest`` added when neither is given.
3. Otherwise, when it looks like one, a unique ID prefix (``d7c``, ``sha256:d7c``);
   a prefix that matches two images is an error, as in Docker.
"""

from __future__ import annotations

import re

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.daemon.images.store import ImageRecord, ImageStore

_FULL_ID = re.compile(r"^(?:sha256:)?([a-f0-9]{64})$")
_ID_PREFIX = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


def resolve(store: ImageStore, ref: str) -> ImageRecord:
    full = _FULL_ID.match(ref)
    if full:
        record = store.get("sha256:" + full.group(1))
        if record is None:
            raise errdefs.no_such_image(ref)
        return record
    parsed: references.Reference | None = None
    try:
        parsed = references.parse_tagged(ref)
    except errdefs.InvalidParameter:
        if not _ID_PREFIX.match(ref):
            raise
    if parsed is not None:
        image_id = (store.digest_target(str(parsed.with_digest(parsed.digest))) if parsed.digest
                    else store.ref_target(str(parsed)))
        if image_id is not None:
            record = store.get(image_id)
            if record is not None:
                return record
        if parsed.digest:
            # Docker also accepts name@<image ID> when the image carries that name.
            record = store.get(parsed.digest)
            if record is not None and any(
                    references.parse(r).name == parsed.name for r in store.refs_of(record.id)):
                return record
    prefix = _ID_PREFIX.match(ref)
    if prefix:
        matches = store.by_prefix(prefix.group(1))
        if len(matches) > 1:
            raise errdefs.InvalidParameter(f"ambiguous image ID prefix {ref}: matches more than one image")
        if matches:
            record = store.get(matches[0])
            if record is not None:
                return record
    raise errdefs.no_such_image(parsed.familiar() if parsed is not None else ref)
