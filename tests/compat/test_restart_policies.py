"""Restart policies through the real docker CLI: moby's rules, back-off observed via RestartCount."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests import daemon_harness
from tests.compat.helpers import new_name, until


def _state(d, name: str) -> tuple[str, int, int]:
    r = d.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", name)
    assert r.returncode == 0, r.stderr.decode()
    status, code, count = r.stdout.decode().split()
    return status, int(code), int(count)


def _run(d, names: list[str], *args: str) -> str:
    name = new_name(names, "rp")
    r = d.docker("run", "-d", "--name", name, *args)
    assert r.returncode == 0, r.stderr.decode()
    return name


def test_on_failure_stops_after_max_retries(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    assert until(lambda: _state(dockyardd, name) == ("exited", 3, 2))
    time.sleep(1.0)  # the back-off would be 400 ms: no third restart comes; and the CLI sends
    assert _state(dockyardd, name) == ("exited", 3, 2)  # --until in whole seconds: let this one pass
    actions = dockyardd.docker("events", "--since", "0", "--until", "0s", "--filter", f"container={name}",
                               "--format", "{{.Action}}").stdout.decode().split()
    assert actions.count("start") == 3 and actions.count("die") == 3


def test_on_failure_ignores_a_clean_exit(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "on-failure", "busybox", "true")
    assert until(lambda: _state(dockyardd, name)[0] == "exited")
    time.sleep(0.3)
    assert _state(dockyardd, name) == ("exited", 0, 0)


def test_no_policy_never_restarts(dockyardd, names):
    name = _run(dockyardd, names, "busybox", "sh", "-c", "exit 1")
    assert until(lambda: _state(dockyardd, name)[0] == "exited")
    time.sleep(0.3)
    assert _state(dockyardd, name) == ("exited", 1, 0)


def test_always_restarts_with_back_off_until_stopped(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "always", "busybox", "true")
    assert until(lambda: _state(dockyardd, name)[2] >= 3)
    r = dockyardd.docker("inspect", "-f", "{{.State.Running}} {{.State.Restarting}}", name)
    assert r.stdout.decode().split()[0] == "true"  # running or restarting: Docker says Running for both
    ps = dockyardd.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert ps.startswith(("Up ", "Restarting (0)")), ps
    rm = dockyardd.docker("rm", name)
    if _state(dockyardd, name)[0] == "restarting":
        assert "container is restarting: stop the container before removing or force remove" in rm.stderr.decode()
    assert dockyardd.docker("stop", "-t", "1", name).returncode == 0
    status, _, count = _state(dockyardd, name)
    assert status == "exited"
    time.sleep(1.0)  # doubling from 100 ms, the 4th delay is 800 ms: a restart would have come
    assert _state(dockyardd, name) == ("exited", _state(dockyardd, name)[1], count)


def test_a_manual_kill_is_respected(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "unless-stopped", "busybox", "sleep", "1000")
    assert dockyardd.docker("kill", name).returncode == 0
    assert until(lambda: _state(dockyardd, name)[0] == "exited")
    time.sleep(0.4)
    assert _state(dockyardd, name) == ("exited", 137, 0)


def test_a_manual_start_resets_the_count(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "on-failure:1", "busybox", "sh", "-c", "exit 2")
    assert until(lambda: _state(dockyardd, name) == ("exited", 2, 1))
    assert dockyardd.docker("start", name).returncode == 0
    assert until(lambda: _state(dockyardd, name) == ("exited", 2, 1))


def test_update_restart_takes_effect(dockyardd, names):
    name = new_name(names, "rp")
    assert dockyardd.docker("create", "--name", name, "busybox", "sh", "-c", "exit 5").returncode == 0
    r = dockyardd.docker("update", "--restart", "on-failure:2", name)
    assert r.returncode == 0, r.stderr.decode()
    assert dockyardd.docker("start", name).returncode == 0
    assert until(lambda: _state(dockyardd, name) == ("exited", 5, 2))


def test_force_remove_of_a_restarting_container(dockyardd, names):
    name = _run(dockyardd, names, "--restart", "always", "busybox", "sh", "-c", "sleep 0.05")
    assert until(lambda: _state(dockyardd, name)[2] >= 2)
    r = dockyardd.docker("rm", "-f", name)
    assert r.returncode == 0, r.stderr.decode()
    assert dockyardd.docker("inspect", name).returncode != 0


def _init_pid(handle, cid: str) -> int:
    return int((handle.exec_root / "containers" / cid / "init.pid").read_text())


def test_policies_at_daemon_start(fresh_daemon):
    d = fresh_daemon
    daemon_harness.load_busybox(d)

    def run(*args: str) -> str:
        r = d.docker("run", "-d", *args)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode().strip()

    always_stopped = run("--restart", "always", "busybox", "sleep", "1000")
    unless_stopped = run("--restart", "unless-stopped", "busybox", "sleep", "1000")
    unless_died = run("--restart", "unless-stopped", "busybox", "sleep", "1000")
    failed = run("--restart", "on-failure", "busybox", "sh", "-c", "sleep 1000")
    plain = run("busybox", "sleep", "1000")
    for cid in (always_stopped, unless_stopped):
        assert d.docker("stop", "-t", "0", cid).returncode == 0
    victims = [_init_pid(d, cid) for cid in (unless_died, failed, plain)]
    daemon_harness.stop(d, signal.SIGKILL)
    for pid in victims:  # the containers end while the daemon is down
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    daemon_harness.start(d)

    def status(cid: str) -> str:
        return d.docker("inspect", "-f", "{{.State.Status}}", cid).stdout.decode().strip()

    assert status(always_stopped) == "running"  # always: back with the daemon, even after a stop
    assert status(unless_stopped) == "exited"
    # found exited through their lingering shims: the policy brings them back after its delay
    assert until(lambda: status(unless_died) == "running")
    assert until(lambda: status(failed) == "running")  # exit 137 is a failure
    assert status(plain) == "exited"
    assert Path(d.exec_root / "containers" / unless_died / "init.pid").exists()
