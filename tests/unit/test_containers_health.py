"""Health checks: the probe schedule and moby's result rules, with a fake probe runner."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from dockyard import errdefs
from dockyard.apitypes.container import ContainerConfig, Health, HealthcheckResult, HealthConfig, HostConfig, State
from dockyard.daemon.containers import health as hc
from dockyard.daemon.containers import views
from dockyard.daemon.containers.record import ContainerRecord

MS = 1_000_000  # nanoseconds


def test_probe_command():
    assert hc.probe_command(HealthConfig(test=["CMD", "true", "x"]), None) == ["true", "x"]
    assert hc.probe_command(HealthConfig(test=["CMD-SHELL", "exit 1"]), None) == ["/bin/sh", "-c", "exit 1"]
    assert hc.probe_command(HealthConfig(test=["CMD-SHELL", "x"]), ["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "x"]
    assert hc.probe_command(HealthConfig(test=["NONE"]), None) is None
    assert hc.probe_command(HealthConfig(test=[]), None) is None
    assert hc.probe_command(None, None) is None


def test_schedule_defaults_and_start_interval():
    s = hc.Schedule.of(HealthConfig(test=["CMD", "true"]))
    assert (s.interval, s.timeout, s.start_period, s.start_interval, s.retries) == (30, 30, 0, 5, 3)
    s = hc.Schedule.of(HealthConfig(interval=200 * MS, start_period=10_000 * MS, start_interval=50 * MS, retries=2))
    assert s.next_delay("starting", 1.0) == 0.05
    assert s.next_delay("healthy", 1.0) == 0.2
    assert s.next_delay("starting", 11.0) == 0.2


def test_go_duration():
    assert [hc.go_duration(x) for x in (0.2, 1, 30, 1.5, 90, 3600)] == ["200ms", "1s", "30s", "1.5s", "1m30s",
                                                                       "1h0m0s"]


def _result(code: int) -> HealthcheckResult:
    return HealthcheckResult(start="s", end="e", exit_code=code, output=str(code))


def test_record_streak_retries_and_log():
    s = hc.Schedule.of(HealthConfig(retries=2))
    h = Health()
    assert hc.record(h, _result(1), s, 5) is None and h.failing_streak == 1
    assert hc.record(h, _result(0), s, 5) == "healthy" and h.failing_streak == 0
    assert hc.record(h, _result(1), s, 5) is None and h.status == "healthy"
    assert hc.record(h, _result(2), s, 5) == "unhealthy" and h.failing_streak == 2
    for _ in range(4):
        hc.record(h, _result(1), s, 5)
    assert len(h.log) == 5 and h.failing_streak == 6


def test_failures_within_the_start_period_do_not_count_until_healthy():
    s = hc.Schedule.of(HealthConfig(retries=1, start_period=10_000 * MS))
    h = Health()
    assert hc.record(h, _result(1), s, 2.0) is None and h.failing_streak == 0 and h.status == "starting"
    assert hc.record(h, _result(0), s, 3.0) == "healthy"
    assert hc.record(h, _result(1), s, 4.0) == "unhealthy"  # once healthy, the start period is over


class _Probes:
    def __init__(self, codes: list[int], delay: float = 0.0) -> None:
        self.codes = list(codes)
        self.delay = delay
        self.calls: list[tuple[str, list[str], float]] = []

    async def __call__(self, cid: str, cmd: list[str], timeout: float) -> tuple[int, str]:
        self.calls.append((cid, cmd, timeout))
        await asyncio.sleep(self.delay)
        code = self.codes.pop(0) if self.codes else 0
        if code == 99:
            raise errdefs.Conflict("container is not running")
        return code, f"probe {len(self.calls)}\n"


def _monitor(probes: _Probes):
    reports: list[str | None] = []
    monitor = hc.HealthMonitor(lambda cid, h, changed: reports.append(changed), probes)
    return monitor, reports


def test_monitor_runs_probes_and_reports_changes():
    async def main():
        probes = _Probes([0, 1, 1, 1, 0])
        monitor, reports = _monitor(probes)
        config = HealthConfig(test=["CMD-SHELL", "check"], interval=20 * MS, retries=3)
        health = monitor.start("c1", config, None, None, time.time())
        assert health is not None and health.status == "starting"
        await asyncio.sleep(0.05)
        assert reports[0] == "healthy" and health.status == "healthy"
        while len(probes.calls) < 4:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.005)
        assert health.status == "unhealthy" and health.failing_streak == 3
        assert [r for r in reports if r] == ["healthy", "unhealthy"]
        assert probes.calls[0] == ("c1", ["/bin/sh", "-c", "check"], 30.0)
        monitor.stop("c1", health)
        calls = len(probes.calls)
        await asyncio.sleep(0.06)
        assert len(probes.calls) == calls and health.status == "unhealthy"
        assert health.log[-1].output.startswith("probe ")
    asyncio.run(main())


def test_monitor_timeout_and_errors_are_failures():
    async def main():
        probes = _Probes([0, 99], delay=0.0)
        monitor, _ = _monitor(probes)
        health = monitor.start("c1", HealthConfig(test=["CMD", "x"], interval=10 * MS, timeout=100 * MS),
                               None, None, time.time())
        probes.delay = 0.5  # outlives the timeout
        await asyncio.sleep(0.2)
        assert health.log[0].exit_code == -1
        assert health.log[0].output == "Health check exceeded timeout (100ms)"
        monitor.close()

        probes2 = _Probes([99])
        monitor2, _ = _monitor(probes2)
        health2 = monitor2.start("c2", HealthConfig(test=["CMD", "x"], interval=10 * MS), None, None, time.time())
        await asyncio.sleep(0.05)
        assert health2.log[0].exit_code == -1 and health2.log[0].output == "container is not running"
        monitor2.close()
    asyncio.run(main())


def test_no_probe_runner_and_none_test():
    async def main():
        monitor = hc.HealthMonitor(lambda *a: None)
        assert monitor.start("c", HealthConfig(test=["NONE"]), None, None, time.time()) is None
        health = monitor.start("c", HealthConfig(test=["CMD", "x"], interval=10 * MS), None, None, time.time())
        await asyncio.sleep(0.05)
        assert health.log[0].exit_code == -1
        monitor.close()
    asyncio.run(main())


def _record(health: Health | None) -> ContainerRecord:
    return ContainerRecord(id="a" * 64, name="n", created=views.now_rfc3339(), image_id="sha256:x", path="sh",
                           args=[], config=ContainerConfig(), host_config=HostConfig(),
                           state=State(status="running", running=True, started_at=views.now_rfc3339()),
                           health=health)


def test_views_status_filter_and_inspect():
    starting = _record(Health())
    assert views.status_text(starting).endswith("(health: starting)")
    healthy = _record(Health(status="healthy"))
    assert views.status_text(healthy).endswith("(healthy)")
    plain = _record(None)
    assert "(" not in views.status_text(plain)
    assert views.matches(healthy, {"health": ["healthy"]}, set())
    assert not views.matches(healthy, {"health": ["none"]}, set())
    assert views.matches(plain, {"health": ["none"]}, set())
    with pytest.raises(errdefs.InvalidParameter, match="Unrecognised filter value for health: ok"):
        views.check_filters({"health": ["ok"]})
    doc = msgspec.json.decode(msgspec.json.encode(views.inspect(healthy)))
    assert doc["State"]["Health"] == {"Status": "healthy", "FailingStreak": 0, "Log": []}
    assert doc["State"]["Running"] is True
    assert "Health" not in msgspec.json.decode(msgspec.json.encode(views.inspect(plain)))["State"]
