"""System routes: /_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, AsyncIterator, Protocol

import msgspec
from aiohttp import web

from dockyard import errdefs
from dockyard.api.app import add_plain_route, json_response
from dockyard.api.fastpath import Plain
from dockyard.api.versions import MAX_VERSION


class SystemBackend(Protocol):
    def version(self) -> dict[str, Any]: ...
    def info(self) -> dict[str, Any]: ...
    def disk_usage(self) -> dict[str, Any]: ...


class EventsBackend(Protocol):
    def subscribe(self, since_ns: int | None, until_ns: int | None, filters: Any) -> AsyncIterator[Any]: ...


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query parameter: {"key": ["v"]} or the old {"key": {"v": true}}."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid filter '{raw}'") from None
    if not isinstance(body, dict):
        raise errdefs.InvalidParameter(f"invalid filter '{raw}'")
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise errdefs.InvalidParameter(f"invalid filter '{raw}'")
    return out


def parse_timestamp(value: str | None, now: float) -> int | None:
    """Docker's since/until: unix seconds with optional fraction, RFC3339, or a Go duration."""
    if value is None or value == "":
        return None
    try:
        if "." in value:
            sec, frac = value.split(".", 1)
            return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
        return int(value) * 1_000_000_000
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return int(dt.timestamp() * 1e9)
    except ValueError:
        pass
    seconds = _duration(value)
    if seconds is None:
        raise errdefs.InvalidParameter(f"invalid value for time: {value!r}")
    return int((now - seconds) * 1e9)


def _duration(value: str) -> float | None:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    total, num = 0.0, ""
    i = 0
    if not value:
        return None
    while i < len(value):
        c = value[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        for unit in ("ns", "us", "µs", "ms", "s", "m", "h"):
            if value.startswith(unit, i) and num:
                total += float(num) * units[unit]
                num = ""
                i += len(unit)
                break
        else:
            return None
    return None if num else total


def setup(app: web.Application, system: SystemBackend, events: EventsBackend,
          make_filter: Any) -> None:
    def ping(query: Mapping[str, str], version: str, method: str) -> Plain:
        headers = {"Api-Version": MAX_VERSION, "Builder-Version": "1", "Swarm": "inactive",
                   "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
        if method == "HEAD":
            # as dockerd: an explicit zero length (without one the Go client took ~1 ms longer
            # over every docker command, each of which begins with this ping)
            return Plain(b"", content_type="text/plain; charset=utf-8",
                         headers={**headers, "Content-Length": "0"})
        return Plain(b"OK", content_type="text/plain; charset=utf-8", headers=headers)

    def version(query: Mapping[str, str], version: str, method: str) -> Plain:
        return Plain(msgspec.json.encode(system.version()))

    def info(query: Mapping[str, str], version: str, method: str) -> Plain:
        return Plain(msgspec.json.encode(system.info()))

    async def df(request: web.Request) -> web.Response:
        return json_response(system.disk_usage())

    async def stream_events(request: web.Request) -> web.StreamResponse:
        now = time.time()
        since = parse_timestamp(request.query.get("since"), now)
        until = parse_timestamp(request.query.get("until"), now)
        filters = make_filter(parse_filters(request.query.get("filters")))
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        encoder = msgspec.json.Encoder()
        async for ev in events.subscribe(since, until, filters):
            await resp.write(encoder.encode(ev.to_json()) + b"\n")
        await resp.write_eof()
        return resp

    add_plain_route(app, ("GET", "HEAD"), "/_ping", ping)
    add_plain_route(app, ("GET",), "/version", version)
    add_plain_route(app, ("GET",), "/info", info)
    app.router.add_get("/system/df", df)
    app.router.add_get("/events", stream_events)
