"""The idle daemon's memory: what its composition root leaves unloaded, and when it gives freed
heap pages back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from types import SimpleNamespace

from dockyard.daemon import daemon as daemon_mod

# Loaded at the first build, registry operation or log read, not at daemon start: the builder and
# what only it uses, the registry client and the pull/push code, the log readers.
FIRST_USE = ("dockyard.daemon.build.builder", "dockyard.daemon.build.context", "dockyard.daemon.build.copy",
             "dockyard.daemon.build.dockerfile", "dockyard.daemon.build.instructions",
             "dockyard.daemon.build.squash", "dockyard.daemon.build.platforms",
             "dockyard.distribution.client", "dockyard.distribution.transport", "dockyard.distribution.auth",
             "dockyard.daemon.distribution.pull", "dockyard.daemon.distribution.push",
             "dockyard.daemon.distribution.download", "dockyard.daemon.distribution.manifests",
             "dockyard.shim.jsonlog_reader", "dockyard.shim.locallog_reader", "dockyard.shim.logread")


def test_the_daemon_starts_without_the_builder_registry_client_and_log_readers():
    # What dockyardd imports to serve (cmd, then serve's imports), in a fresh interpreter.
    code = ("import sys, dockyard.cmd.dockyardd, aiohttp.web, dockyard.api.server, dockyard.daemon.daemon\n"
            f"print(' '.join(m for m in {FIRST_USE!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_the_build_service_loads_the_builder_at_the_first_build(tmp_path):
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from dockyard.daemon.build.service import BuildService\n"
            "svc = BuildService.__new__(BuildService)\n"
            "svc._images = svc._cache = svc._containers = svc._puller = None\n"
            f"svc._scratch, svc._builder = Path({str(tmp_path)!r}), None\n"
            "assert 'dockyard.daemon.build.builder' not in sys.modules\n"
            "assert svc._loaded_builder() is svc._loaded_builder()\n"
            "print(type(svc._builder).__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "dockyard.daemon.build.builder"


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def _fake_clock(monkeypatch) -> tuple[list[float], list[float]]:
    """(the trims made, at which CPU time; the process's CPU clock, for the test to advance)."""
    trims: list[float] = []
    cpu = [0.0]
    monkeypatch.setattr(daemon_mod.syscalls, "malloc_trim", lambda: trims.append(cpu[0]))
    monkeypatch.setattr(daemon_mod, "time", SimpleNamespace(process_time=lambda: cpu[0], monotonic=time.monotonic))
    monkeypatch.setattr(daemon_mod, "HEAP_TRIM_POLL", 0.01)
    return trims, cpu


def test_heap_trimmed_at_start_and_once_when_work_stops(monkeypatch):
    trims, cpu = _fake_clock(monkeypatch)

    async def scenario() -> None:
        trimmer = asyncio.ensure_future(daemon_mod.Daemon._trim_heap())
        try:
            await _until(lambda: len(trims) == 1)  # start-up's garbage
            await asyncio.sleep(0.2)  # idle for ~20 polls: nothing new to give back
            assert len(trims) == 1
            cpu[0] += 1.0  # a request's work
            await _until(lambda: len(trims) == 2)  # given back once the daemon is quiet again
            await asyncio.sleep(0.2)
            assert len(trims) == 2
        finally:
            trimmer.cancel()

    asyncio.run(scenario())


def test_heap_trimmed_now_and_then_while_busy(monkeypatch):
    trims, cpu = _fake_clock(monkeypatch)
    monkeypatch.setattr(daemon_mod, "HEAP_TRIM_BUSY", 0.05)

    async def scenario() -> None:
        trimmer = asyncio.ensure_future(daemon_mod.Daemon._trim_heap())
        try:
            await _until(lambda: len(trims) == 1)
            deadline = time.monotonic() + 5
            while len(trims) < 3:  # never quiet: the CPU clock moves between any two polls
                assert time.monotonic() < deadline, "no trim while busy"
                cpu[0] += 1.0
                await asyncio.sleep(0.002)
        finally:
            trimmer.cancel()

    asyncio.run(scenario())
