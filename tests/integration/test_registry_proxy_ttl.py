"""The pull-through cache's TTL (distribution's ``proxy.ttl``) on a clock the test sets: the
mirror runs in this process (its own event loop in a thread) so its clock is ours; upstream is a
real hub process, stopped to take it offline. No sleeps: time moves only when the test says."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from aiohttp import web

from dockyard.registry.config import HubConfig
from dockyard.registry.keys import UPSTREAM
from dockyard.registry.proxy import Upstream, parse_duration
from dockyard.registry.server import make_app
from dockyard.registry.store import Store
from tests.integration import registry_hub as rh
from tests.integration.tempdirs import temp_dir
from tests.integration.test_registry_api import push_image, sha

HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class InProcessMirror:
    """The hub's app on 127.0.0.1:<a port the kernel picks>, served by a loop in a thread."""

    def __init__(self, data: Path, upstream: str, ttl: str, clock: Clock) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None
        try:
            self.port = self._call(self._start(HubConfig(addr="127.0.0.1:0", data=str(data),
                                                         proxy_remote_url=f"http://{upstream}", proxy_ttl=ttl), clock))
        except BaseException:
            self.close()
            raise
        self.hub = rh.Hub(root=data.parent, port=self.port, proc=None)  # for its request()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self, config: HubConfig, clock: Clock) -> int:
        app = make_app(config)
        app[UPSTREAM].expiry.clock = clock
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return self.runner.addresses[0][1]

    def get(self, path: str) -> rh.Reply:
        return self.hub.request("GET", path)

    def close(self) -> None:
        if self.runner is not None:
            self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def root():
    with temp_dir("dy-proxy-ttl-") as path:
        yield path


@pytest.fixture
def upstream():
    with rh.running() as h:
        yield h


def test_cached_content_expires_after_the_ttl(root, upstream):
    digest, body = push_image(upstream, "library/app", "1", [b"layer one"])
    layer = sha(b"layer one")
    clock = Clock(1_000_000.0)
    mirror = InProcessMirror(root / "data", upstream.host, "1h", clock)
    try:
        assert mirror.get("/v2/library/app/manifests/1").body == body
        assert mirror.get(f"/v2/library/app/blobs/{layer}").body == b"layer one"
        schedule = json.loads((root / "data/proxy-expiry.json").read_text())
        assert {(e["kind"], e["digest"], e["expires"]) for e in schedule} == {
            ("manifest", digest, clock.now + HOUR), ("blob", layer, clock.now + HOUR)}
        # half an hour on, the tag is fetched from upstream again: the manifest's hour starts anew
        clock.now += HOUR / 2
        assert mirror.get("/v2/library/app/manifests/1").status == 200
        rh.stop(upstream)  # upstream gone: the cache answers until the TTL says otherwise
        clock.now += HOUR / 2 - 1
        assert mirror.get("/v2/library/app/manifests/1").body == body
        assert mirror.get(f"/v2/library/app/blobs/{layer}").body == b"layer one"
        clock.now += 1  # the blob's hour is up, not the manifest's
        assert mirror.get("/v2/library/app/manifests/1").body == body
        assert not Store(root / "data").link_path("library/app", layer).exists()  # the repository let it go
        # its bytes, until garbage collection takes them, are the same bytes: linked again
        assert mirror.get(f"/v2/library/app/blobs/{layer}").body == b"layer one"
        schedule = json.loads((root / "data/proxy-expiry.json").read_text())
        assert ("blob", layer, clock.now + HOUR) in {(e["kind"], e["digest"], e["expires"]) for e in schedule}
    finally:
        mirror.close()
    # the schedule outlives a restart: the manifest goes at its time
    mirror = InProcessMirror(root / "data", upstream.host, "1h", clock)
    try:
        clock.now += HOUR / 2 - 1
        assert mirror.get("/v2/library/app/manifests/1").status == 200
        clock.now += 1
        assert mirror.get("/v2/library/app/manifests/1").code == "MANIFEST_UNKNOWN"
        assert mirror.get(f"/v2/library/app/manifests/{digest}").code == "MANIFEST_UNKNOWN"
        assert [e["kind"] for e in json.loads((root / "data/proxy-expiry.json").read_text())] == ["blob"]
    finally:
        mirror.close()


def test_ttl_setting(root):
    assert parse_duration("168h") == 168 * HOUR and parse_duration("1h30m") == 1.5 * HOUR
    assert parse_duration("0") == 0 and parse_duration("-1s") == -1 and parse_duration("250ms") == 0.25
    for bad in ("", "10", "1d", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    store = Store(root / "data")
    assert Upstream("http://127.0.0.1:1", store).expiry.ttl == 168 * HOUR  # distribution's default
    assert Upstream("http://127.0.0.1:1", store, ttl="0").expiry is None  # never expires
    assert Upstream("http://127.0.0.1:1", store, ttl="-1h").expiry is None
