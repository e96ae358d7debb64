"""Which registry blobs hold each layer (Docker's v2 metadata service).

For a diff ID, the compressed blobs known to carry it: digest, media type, size and the
repositories (``registry/path``) where it was pulled from or pushed to. Push uses this to
HEAD or cross-mount a blob instead of compressing and uploading the layer again. One small
JSON file per diff ID, written atomically; losing one only costs an upload.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import msgspec

from dockyard.storage.fsutil import fsync_dir

_MAX_ENTRIES = 50


class BlobRecord(msgspec.Struct, rename="camel"):
    digest: str
    media_type: str
    size: int
    repository: str  # "localhost:5000/busybox", "docker.io/library/busybox"


class BlobInfo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, diff_id: str) -> Path:
        return self.root / diff_id.replace(":", "-")

    def get(self, diff_id: str) -> list[BlobRecord]:
        try:
            return msgspec.json.decode(self._path(diff_id).read_bytes(), type=list[BlobRecord])
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return []

    def add(self, diff_id: str, record: BlobRecord) -> None:
        with self._lock:
            records = [r for r in self.get(diff_id)
                       if not (r.digest == record.digest and r.repository == record.repository)]
            records.insert(0, record)
            path = self._path(diff_id)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(msgspec.json.encode(records[:_MAX_ENTRIES]))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(self.root)
