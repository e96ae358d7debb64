"""Restart policy verdicts and moby's back-off; the container service's restarts and health wiring
against fakes."""

from __future__ import annotations

import asyncio

from dockyard.apitypes.container import CreateRequest, HealthConfig, HostConfig, RestartPolicy
from dockyard.daemon.containers.restart import Backoff, wants_restart
from tests.unit.test_containers_service import env, service  # noqa: F401 - the fixture and its service


def test_policies():
    assert not wants_restart(RestartPolicy(name=""), 1, False, 0)
    assert not wants_restart(RestartPolicy(name="no"), 1, False, 0)
    assert wants_restart(RestartPolicy(name="always"), 0, True, 99)
    assert wants_restart(RestartPolicy(name="unless-stopped"), 0, False, 5)
    assert not wants_restart(RestartPolicy(name="unless-stopped"), 1, True, 0)
    assert not wants_restart(RestartPolicy(name="on-failure"), 0, False, 0)
    assert wants_restart(RestartPolicy(name="on-failure"), 3, False, 1000)  # 0: no limit
    assert wants_restart(RestartPolicy(name="on-failure", maximum_retry_count=2), 3, False, 1)
    assert not wants_restart(RestartPolicy(name="on-failure", maximum_retry_count=2), 3, False, 2)


def test_backoff_doubles_caps_and_resets():
    b = Backoff()
    assert [b.next(0.1) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    for _ in range(20):
        b.next(1)
    assert b.next(1) == 60.0
    assert b.next(10.0) == 0.1  # a run of 10 s starts over


# ---- the container service with fakes: policy restarts, cancel, health wiring --------------


def test_service_restarts_by_policy_and_a_stop_cancels(env):  # noqa: F811
    async def main():
        svc = service(env)
        events = env[2]["events"]
        shims = env[2]["shims"]
        await svc.start_by_policy()  # start-up done: policy restarts may run
        shims.exit_code = 3
        cid = svc.create(CreateRequest(image="busybox", host_config=HostConfig(
            restart_policy=RestartPolicy(name="on-failure", maximum_retry_count=2)))).id
        await svc.start(cid)
        for _ in range(200):
            if svc.get(cid).state.status == "exited":
                break
            await asyncio.sleep(0.01)
        rec = svc.get(cid)
        assert (rec.state.status, rec.state.exit_code, rec.restart_count) == ("exited", 3, 2)
        assert events.actions().count("start") == 3 and events.actions().count("die") == 3
        assert "restart" not in events.actions()  # moby: die then start, no restart event

        shims.exit_code = 0
        always = svc.create(CreateRequest(image="busybox", host_config=HostConfig(
            restart_policy=RestartPolicy(name="always")))).id
        await svc.start(always)
        for _ in range(200):
            if svc.get(always).state.status == "restarting":
                break
            await asyncio.sleep(0.005)
        assert svc.get(always).state.status == "restarting"
        assert svc.inspect(always).state.running is True
        await svc.stop(always)
        count = svc.get(always).restart_count
        await asyncio.sleep(0.3)
        assert svc.get(always).state.status == "exited" and svc.get(always).restart_count == count
        await svc.close()
    asyncio.run(main())


def test_service_health_wiring(env):  # noqa: F811
    async def main():
        svc = service(env)
        events = env[2]["events"]
        env[2]["shims"].exit_code = None  # keeps running

        async def probe(cid, cmd, timeout):
            return 0, "ok\n"
        svc.use_probe_runner(probe)
        cid = svc.create(CreateRequest(image="busybox", healthcheck=HealthConfig(
            test=["CMD", "true"], interval=10_000_000))).id
        await svc.start(cid)
        assert svc.get(cid).health.status == "starting"
        for _ in range(200):
            if svc.get(cid).health.status == "healthy":
                break
            await asyncio.sleep(0.01)
        assert svc.get(cid).health.status == "healthy"
        assert "health_status: healthy" in events.actions()
        await svc.kill(cid)
        for _ in range(100):
            if svc.get(cid).state.status == "exited":
                break
            await asyncio.sleep(0.01)
        assert svc.get(cid).health.status == "unhealthy"  # the monitor stopped with the container
        await svc.close()
    asyncio.run(main())
