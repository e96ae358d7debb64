"""The files of a container's log, for both file log drivers' writers (``jsonlog``,
``locallog``): appending to ``<log>`` and rotating it (Docker's ``max-size``/``max-file``):
``<log>.N-1`` is dropped, ``<log>.i`` becomes ``<log>.i+1``, ``<log>`` becomes ``<log>.1``
(gzipped in a child process with ``compress``: ``dockyard.shim.logcompress``) and a new
``<log>`` is started. With one file, the old one is truncated in place (json-file) or unlinked
(local: a reader keeps its inode). The record formats and when to rotate are the drivers'."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.shim.logcompress import Compressor


class RotatingLogFile:
    """``<log>`` open for appending, and its rotated files; not thread-safe (the shim is
    single-threaded)."""

    def __init__(self, path: Path, max_size: int | None, max_files: int, compress: bool,
                 truncates: bool) -> None:
        self.path = path
        self.max_size = max_size if max_size and max_size > 0 else None
        self.max_files = max(1, max_files)
        self.compress = compress and self.max_files > 1
        self._truncates = truncates  # with one file: truncate in place rather than unlink
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._compressor = Compressor()

    def close(self) -> None:
        """Close ``<log>``; a compression under way finishes on its own (the shim reaps it)."""
        os.close(self._fd)
        self._compressor.close()

    def wait_compressed(self) -> None:
        """Block until the last rotation's compression is done (tests; the next rotation)."""
        self._compressor.wait()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._size += len(data)

    def _rotate(self, last_time: str) -> None:
        """Rotate now; ``last_time`` is the time of the file's last record (RFC3339Nano), for
        the gzip header a reader's ``--since`` skips the file by."""
        if self.max_files == 1 and self._truncates:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        self.wait_compressed()
        os.close(self._fd)
        if self.max_files == 1:
            os.unlink(self.path)
        else:
            ext = ".gz" if self.compress else ""
            try:
                os.unlink(f"{self.path}.{self.max_files - 1}{ext}")
            except FileNotFoundError:
                pass
            for index in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{index - 1}{ext}", f"{self.path}.{index}{ext}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0
        if self.compress:
            self._compressor.start(Path(f"{self.path}.1"), last_time)
