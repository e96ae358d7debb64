import asyncio
import time

from dockyard.daemon.events import EventFilter, EventService


def test_filter_semantics():
    svc = EventService()
    svc.emit("container", "start", "abc123", {"name": "web", "image": "busybox", "tier": "front"})
    ev = svc._past[-1]
    assert EventFilter({"type": ["container"]}).match(ev)
    assert not EventFilter({"type": ["image"]}).match(ev)
    assert EventFilter({"event": ["stop", "start"]}).match(ev)
    assert EventFilter({"container": ["web"]}).match(ev)
    assert EventFilter({"container": ["abc"]}).match(ev)
    assert not EventFilter({"container": ["db"]}).match(ev)
    assert EventFilter({"image": ["busybox"]}).match(ev)  # container events of that image
    assert EventFilter({"label": ["tier=front"]}).match(ev)
    assert not EventFilter({"label": ["tier=back"]}).match(ev)
    assert not EventFilter({"type": ["container"], "event": ["die"]}).match(ev)
    body = ev.to_json()
    assert body["status"] == "start" and body["id"] == "abc123" and body["from"] == "busybox"
    assert body["Actor"] == {"ID": "abc123", "Attributes": {"name": "web", "image": "busybox", "tier": "front"}}
    assert body["time"] == body["timeNano"] // 1_000_000_000


def test_replay_then_live_until():
    async def scenario():
        svc = EventService()
        svc.bind_loop(asyncio.get_running_loop())
        since = time.time_ns()
        svc.emit("image", "tag", "sha256:1", {"name": "a:1"})
        until = time.time_ns() + 300_000_000
        got = []

        async def consume():
            async for ev in svc.subscribe(since, until, EventFilter({})):
                got.append(ev.action)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        svc.emit("image", "untag", "sha256:1", {"name": "a:1"})
        await asyncio.wait_for(task, 2)  # ends by itself at `until`
        return got

    assert asyncio.run(scenario()) == ["tag", "untag"]


def test_emit_from_thread_reaches_subscribers():
    async def scenario():
        svc = EventService()
        svc.bind_loop(asyncio.get_running_loop())
        got = []

        async def consume():
            async for ev in svc.subscribe(None, None, EventFilter({})):
                got.append(ev.action)
                return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        await asyncio.to_thread(svc.emit, "volume", "create", "v1")
        await asyncio.wait_for(task, 2)
        return got

    assert asyncio.run(scenario()) == ["create"]
