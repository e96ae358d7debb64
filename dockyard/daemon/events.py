"""The event log: what happened, in Docker's shape, kept for replay and streamed live.

Services call ``emit`` (from the event loop or a worker thread); ``/events``
subscribers get past events since a time and then live ones, filtered as Docker
filters them (type, event/action, container, image, network, volume, label,
daemon, scope).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator

_KEEP = 1024  # past events kept for ?since replay (Docker keeps 256)


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    scope: str
    time_nano: int

    def to_json(self) -> dict:
        body = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": self.attributes},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        if self.type in ("container", "image"):  # the legacy fields clients still read
            body["status"] = self.action
            body["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                body["from"] = self.attributes["image"]
        return body


class EventFilter:
    """Docker's event filters: values within one key OR together, keys AND together."""

    _ACTOR_KEYS = {"container": "container", "image": "image", "network": "network",
                   "volume": "volume", "daemon": "daemon", "plugin": "plugin", "node": "node",
                   "service": "service", "secret": "secret", "config": "config"}

    def __init__(self, filters: dict[str, list[str]] | None = None) -> None:
        self.filters = {k: list(v) for k, v in (filters or {}).items() if v}

    def match(self, ev: Event) -> bool:
        f = self.filters
        if "type" in f and ev.type not in f["type"]:
            return False
        if "event" in f and not any(ev.action == a or ev.action.split(":")[0] == a for a in f["event"]):
            return False
        if "scope" in f and ev.scope not in f["scope"]:
            return False
        for key, typ in self._ACTOR_KEYS.items():
            if key not in f:
                continue
            if ev.type != typ:
                # "image" also matches container events from that image, as Docker does
                if key == "image" and ev.type == "container" and ev.attributes.get("image") in f[key]:
                    continue
                return False
            names = {ev.actor_id, ev.attributes.get("name", "")}
            if not any(v in names or (len(v) >= 1 and ev.actor_id.startswith(v)) for v in f[key]):
                return False
        if "label" in f:
            for want in f["label"]:
                k, _, v = want.partition("=")
                if k not in ev.attributes or (v and ev.attributes[k] != v):
                    return False
        return True


class EventService:
    def __init__(self) -> None:
        self._past: deque[Event] = deque(maxlen=_KEEP)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def emit(self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None,
             scope: str = "local") -> None:
        ev = Event(type, action, actor_id, dict(attributes or {}), scope, time.time_ns())
        with self._lock:
            self._past.append(ev)
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._publish(ev)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._publish, ev)

    def _publish(self, ev: Event) -> None:
        for q in self._subscribers:
            q.put_nowait(ev)

    async def subscribe(self, since_ns: int | None, until_ns: int | None,
                        filters: EventFilter) -> AsyncIterator[Event]:
        """Past events after ``since_ns``, then live ones until ``until_ns`` (forever if None).

        With only ``until`` in the past, or ``since`` and ``until`` both given and passed,
        the stream ends after the replay, as dockerd's does.
        """
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            last = 0
            if since_ns is not None:
                with self._lock:
                    past = list(self._past)
                for ev in past:
                    if ev.time_nano >= since_ns and (until_ns is None or ev.time_nano <= until_ns):
                        last = ev.time_nano
                        if filters.match(ev):
                            yield ev
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = (until_ns - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    ev = await asyncio.wait_for(q.get(), timeout)
                except asyncio.TimeoutError:
                    return
                if ev.time_nano <= last:
                    continue  # already replayed
                if until_ns is not None and ev.time_nano > until_ns:
                    return
                if filters.match(ev):
                    yield ev
        finally:
            self._subscribers.discard(q)
