"""Layer tars in and out: Docker layer semantics over overlayfs directories.

In: ``extract_layer`` unpacks a (gzip / zstd / bzip2 / xz / plain) layer tar into an
empty overlay lower directory, turning Docker's ``.wh.<name>`` entries into overlay
whiteouts (char device 0/0) and ``.wh..wh..opq`` into the opaque xattr, and refusing
(errdefs.InvalidParameter) any entry that would write outside the directory: absolute
names, ``..`` escapes, paths through symlinks, hardlinks to outside.

Out: ``tar_dir_changes`` turns an overlay upper directory back into a Docker layer tar
(for commit / container diff); ``tar_dir`` tars a whole tree (export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator


@dataclass(frozen=True)
class ExtractResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar stream
    size: int  # bytes of file content unpacked (Docker's layer size)
    tar_size: int  # length of the uncompressed tar stream


def extract_layer(fileobj: BinaryIO, dest: Path, tee: BinaryIO | None = None) -> ExtractResult:
    """Unpack a layer tar read from ``fileobj`` into ``dest`` (an existing, empty directory).

    ``tee``, when given, receives every byte of the uncompressed tar (e.g. a
    ContentStore writer, to keep the exact diff). Raises errdefs.InvalidParameter for
    an unknown compression, a corrupt tar, or an entry escaping ``dest``."""
    raise NotImplementedError


def tar_dir_changes(upper: Path) -> Iterator[bytes]:
    """A Docker layer tar of an overlay upper dir, in a deterministic (sorted) order:
    overlay whiteouts become ``.wh.<name>``, opaque dirs get a ``.wh..wh..opq`` entry."""
    raise NotImplementedError


def tar_dir(root: Path) -> Iterator[bytes]:
    """A tar of the whole tree under ``root`` (sorted, hardlinks preserved)."""
    raise NotImplementedError
