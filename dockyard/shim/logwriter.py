"""Which log writer the shim gives a container: by its log driver (json-file, local; none: no log)."""

from __future__ import annotations

from typing import Protocol

from dockyard.shim.client import SpawnRequest
from dockyard.shim.jsonlog import JsonLogWriter
from dockyard.shim.locallog import LocalLogWriter


class LogWriter(Protocol):
    def write(self, stream: str, data: bytes) -> None: ...
    def end_stream(self, stream: str) -> None: ...
    def close(self) -> None: ...


def open_log_writer(req: SpawnRequest) -> LogWriter | None:
    if req.log_path is None:
        return None
    if req.log_driver == "local":
        return LocalLogWriter(req.log_path, req.log_max_size, req.log_max_files, req.log_compress,
                              req.log_attrs)
    return JsonLogWriter(req.log_path, req.log_max_size, req.log_max_files, req.log_compress,
                         req.log_attrs)
