"""Health checks: one probe loop per running container with a HEALTHCHECK, as moby runs them.

The probe runs in the container through a ``ProbeRunner`` (``exec`` of the test command);
this module owns when it runs and what a result means:

- the first probe comes one interval after the start; while the container is still
  ``starting`` within its start period, probes come every ``start_interval``;
- exit code 0 is healthy (the failing streak resets); anything else is a failure,
  and ``retries`` failures in a row make it unhealthy; failures within the start period
  do not count while the container has not yet been healthy;
- a probe that outlives ``timeout`` is a failure with exit code -1;
- ``State.Health.Log`` keeps the last five results, each output cut at 4 KiB;
- when the container stops, the monitor stops and the status says unhealthy (moby does so
  "for compatibility reasons").

Status changes are reported to the owner (the container service), which saves the record
and emits ``health_status: <status>``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

from dockyard import errdefs
from dockyard.apitypes.container import Health, HealthcheckResult, HealthConfig
from dockyard.apitypes.exec import ExecCreateRequest, ExecCreateResponse, ExecInspect
from dockyard.daemon.containers.views import now_rfc3339

log = logging.getLogger("dockyard.health")

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
NONE = "none"  # what ``ps --filter health=`` calls a container without a health check

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
DEFAULT_SHELL = ["/bin/sh", "-c"]

# (container_id, command, timeout in seconds) -> (exit code, combined stdout and stderr)
ProbeRunner = Callable[[str, list[str], float], Awaitable[tuple[int, str]]]
# (container_id, its Health after a probe, the new status when it changed)
Reporter = Callable[[str, Health, "str | None"], None]


def _seconds(nanoseconds: int | None, default: float) -> float:
    return nanoseconds / 1e9 if nanoseconds and nanoseconds > 0 else default


@dataclass(frozen=True)
class Schedule:
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int

    @classmethod
    def of(cls, config: HealthConfig) -> "Schedule":
        return cls(interval=_seconds(config.interval, DEFAULT_INTERVAL),
                   timeout=_seconds(config.timeout, DEFAULT_TIMEOUT),
                   start_period=_seconds(config.start_period, DEFAULT_START_PERIOD),
                   start_interval=_seconds(config.start_interval, DEFAULT_START_INTERVAL),
                   retries=config.retries if config.retries and config.retries > 0 else DEFAULT_RETRIES)

    def next_delay(self, status: str, running_for: float) -> float:
        if running_for < self.start_period and status == STARTING:
            return self.start_interval
        return self.interval


def probe_command(config: HealthConfig | None, shell: list[str] | None) -> list[str] | None:
    """The command a probe runs: CMD args as given, CMD-SHELL through the container's shell;
    None for NONE, an empty or unknown test (no monitor at all)."""
    test = (config.test if config is not None else None) or []
    if not test:
        return None
    if test[0] == "CMD" and len(test) > 1:
        return list(test[1:])
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*(shell or DEFAULT_SHELL), " ".join(test[1:])]
    if test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        log.warning("unknown health check type %r: the container is not monitored", test[0])
    return None


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() for the timeout message: "200ms", "30s", "1m30s"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def record(health: Health, result: HealthcheckResult, schedule: Schedule, since_start: float) -> str | None:
    """Fold one probe result into ``health``; the new status when it changed (moby's
    handleProbeResult). ``since_start``: seconds from the container's start to the probe's."""
    before = health.status
    health.log = [*health.log, result][-MAX_LOG_ENTRIES:]
    if result.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
    elif not (health.status == STARTING and since_start < schedule.start_period):
        health.failing_streak += 1
        if health.failing_streak >= schedule.retries:
            health.status = UNHEALTHY
    return health.status if health.status != before else None


class HealthMonitor:
    """The probe loops of the running containers."""

    def __init__(self, report: Reporter, run_probe: ProbeRunner | None = None) -> None:
        self.run_probe = run_probe  # wired by the composition root (exec); None: probes fail
        self._report = report
        self._loops: dict[str, asyncio.Task] = {}

    def start(self, container_id: str, config: HealthConfig | None, shell: list[str] | None,
              health: Health | None, started_at: float) -> Health | None:
        """Begin monitoring (replacing any loop the container had); the Health to keep on the
        container (reset to starting), or None when it has no health check."""
        self.stop(container_id)
        command = probe_command(config, shell)
        if command is None or config is None:
            return None
        health = health or Health()
        health.status, health.failing_streak = STARTING, 0
        schedule = Schedule.of(config)
        self._loops[container_id] = asyncio.ensure_future(
            self._loop(container_id, command, schedule, health, started_at))
        return health

    def stop(self, container_id: str, health: Health | None = None) -> None:
        task = self._loops.pop(container_id, None)
        if task is not None:
            task.cancel()
        if health is not None:
            health.status = UNHEALTHY  # moby: unhealthy once the monitor stopped

    def close(self) -> None:
        for cid in list(self._loops):
            self.stop(cid)

    async def _loop(self, container_id: str, command: list[str], schedule: Schedule, health: Health,
                    started_at: float) -> None:
        while True:
            await asyncio.sleep(schedule.next_delay(health.status, time.time() - started_at))
            began = time.time()
            result = await self._probe(container_id, command, schedule.timeout)
            if self._loops.get(container_id) is not asyncio.current_task():
                return  # stopped meanwhile: wait_for can swallow a cancel that meets its result
            changed = record(health, result, schedule, began - started_at)
            try:
                self._report(container_id, health, changed)
            except Exception as e:  # the container went away meanwhile
                log.info("container %s: health result not recorded: %s", container_id, e)

    async def _probe(self, container_id: str, command: list[str], timeout: float) -> HealthcheckResult:
        start = now_rfc3339()
        if self.run_probe is None:
            return HealthcheckResult(start=start, end=now_rfc3339(), exit_code=-1,
                                     output="health checks need exec, which this daemon lacks")
        try:
            code, output = await asyncio.wait_for(self.run_probe(container_id, command, timeout), timeout)
        except asyncio.TimeoutError:
            code, output = -1, f"Health check exceeded timeout ({go_duration(timeout)})"
        except errdefs.DockyardError as e:
            code, output = -1, e.message
        except OSError as e:
            code, output = -1, str(e)
        data = output.encode()
        if len(data) > MAX_OUTPUT_LEN:
            output = data[:MAX_OUTPUT_LEN].decode(errors="ignore")
        return HealthcheckResult(start=start, end=now_rfc3339(), exit_code=code, output=output)


# ---- probes through exec ---------------------------------------------------------------

class _ExecOutput(Protocol):
    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def close(self) -> None: ...


class Execs(Protocol):
    """The part of the exec service a probe uses (daemon/containers/exec.py)."""

    def create(self, ref: str, body: ExecCreateRequest) -> ExecCreateResponse: ...

    async def start(self, exec_id: str, *, detach: bool) -> _ExecOutput | None: ...

    def inspect(self, exec_id: str) -> ExecInspect: ...


def exec_probe(execs: Execs) -> ProbeRunner:
    """A ProbeRunner that execs the command in the container (as moby's cmdProbe), its stdout
    and stderr together; a probe cancelled at its timeout kills the process it started."""
    async def run(container_id: str, command: list[str], timeout: float) -> tuple[int, str]:
        created = execs.create(container_id, ExecCreateRequest(cmd=command, attach_stdout=True,
                                                               attach_stderr=True))
        output = bytearray()
        session = None
        try:
            session = await execs.start(created.id, detach=False)
            if session is not None:
                async for _, data in session.output():
                    if len(output) < MAX_OUTPUT_LEN:
                        output += data[:MAX_OUTPUT_LEN - len(output)]
        except asyncio.CancelledError:
            pid = execs.inspect(created.id).pid
            if pid and execs.inspect(created.id).running:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
        finally:
            if session is not None:
                await session.close()
        code = execs.inspect(created.id).exit_code
        return (code if code is not None else -1), output.decode(errors="replace")
    return run
