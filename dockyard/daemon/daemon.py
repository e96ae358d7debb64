"""The composition root: builds every service and wires them together.

Only this module sees all the implementations; each service gets its siblings
as the narrow Protocols of ``dockyard.daemon.interfaces``. It owns start-up
order (storage, events, networks, shims, containers restore) and shutdown.
"""

from __future__ import annotations

import asyncio
import logging

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.events import EventFilter, EventService
from dockyard.daemon.system import SystemService
from dockyard.storage.metadata import Database

log = logging.getLogger("dockyard.daemon")


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        for d in (config.data_root, config.exec_root, config.data_root / "containers",
                  config.exec_root / "containers"):
            d.mkdir(parents=True, exist_ok=True)
        self.db = Database(config.db_path)
        self.events = EventService()
        self.make_event_filter = EventFilter
        self.containers = None
        self.images = None
        self.networks = None
        self.system = SystemService(config, _NoContainers(), _NoImages(), self._runtimes())

    def _runtimes(self) -> dict[str, str]:
        return {"dockyard": "builtin", **self.config.runtimes}

    async def start(self) -> None:
        self.events.bind_loop(asyncio.get_running_loop())

    async def stop(self) -> None:
        self.db.close()


class _NoContainers:
    def counts(self) -> dict[str, int]:
        return {"total": 0, "running": 0, "paused": 0, "stopped": 0}

    def disk_usage(self) -> list:
        return []


class _NoImages:
    def count(self) -> int:
        return 0

    def disk_usage(self) -> dict:
        return {"LayersSize": 0, "Images": []}
