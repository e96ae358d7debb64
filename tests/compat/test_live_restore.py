"""Live-restore and crash safety: containers outlive dockyardd, which finds them again through
their shims; a dead shim's container is exited with a reason; --live-restore=false stops them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import daemon_harness
from tests.compat.helpers import until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pid_file(d, cid: str, name: str) -> int:
    return int((d.exec_root / "containers" / cid / name).read_text())


def _run(d, *args: str) -> str:
    r = d.docker("run", "-d", *args)
    assert r.returncode == 0, r.stderr.decode() + d.log()
    return r.stdout.decode().strip()


def _state(d, cid: str, fmt: str = "{{.State.Status}} {{.State.ExitCode}}") -> str:
    return d.docker("inspect", "-f", fmt, cid).stdout.decode().strip()


@pytest.fixture
def daemon(fresh_daemon):
    daemon_harness.load_busybox(fresh_daemon)
    return fresh_daemon


def test_kill_9_of_the_daemon_leaves_containers_running(daemon):
    d = daemon
    runner = _run(d, "busybox", "sh", "-c", "echo before; sleep 1000")
    ender = _run(d, "busybox", "sh", "-c", "echo bye; exit 7")
    waited = _run(d, "busybox", "sh", "-c", "sleep 1000")
    talker = _run(d, "-i", "busybox", "sh", "-c", "read line; echo got $line")
    ticker = _run(d, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    assert until(lambda: _state(d, ender) == "exited 7")
    assert d.docker("start", ender).returncode == 0  # it ends again while the daemon is down
    init = _pid_file(d, runner, "init.pid")

    daemon_harness.stop(d, signal.SIGKILL)
    assert _alive(init)
    waited_init = _pid_file(d, waited, "init.pid")
    time.sleep(0.3)
    daemon_harness.start(d)

    assert _alive(init)
    ps = d.docker("ps", "--format", "{{.ID}} {{.Status}}").stdout.decode()
    assert runner[:12] in ps and "Up " in ps
    assert _state(d, runner) == "running 0"
    assert _state(d, ender) == "exited 7"
    assert d.docker("logs", runner).stdout == b"before\n"
    assert d.docker("logs", ender).stdout == b"bye\nbye\n"

    wait = subprocess.Popen([daemon_harness.DOCKER, "wait", waited], env=d.env, stdout=subprocess.PIPE)
    time.sleep(0.3)
    os.kill(waited_init, signal.SIGKILL)
    out, _ = wait.communicate(timeout=10)
    assert out.strip() == b"137"

    attach = subprocess.Popen([daemon_harness.DOCKER, "attach", "--no-stdin", ticker], env=d.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([attach.stdout], [], [], 10)
        assert ready and attach.stdout.readline() == b"tick\n"  # output through the reattached shim
    finally:
        attach.kill()
        attach.wait()
    r = d.docker("attach", talker, input=b"hello\n", timeout=15)
    assert r.returncode == 0, r.stderr.decode()
    assert until(lambda: _state(d, talker) == "exited 0")
    assert d.docker("logs", talker).stdout == b"got hello\n"  # stdin reached it through the shim

    assert d.docker("stop", "-t", "1", runner).returncode == 0
    assert not _alive(init)


def test_graceful_daemon_stop_keeps_containers_too(daemon):
    d = daemon
    cid = _run(d, "busybox", "sleep", "1000")
    init = _pid_file(d, cid, "init.pid")
    daemon_harness.stop(d, signal.SIGTERM)
    assert _alive(init)
    daemon_harness.start(d)
    assert _state(d, cid) == "running 0"
    assert d.docker("info", "-f", "{{.LiveRestoreEnabled}}").stdout.strip() == b"true"


def _cgroup_dirs(d, cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{d.cgroup_parent.lstrip('/')}/{cid}") if p.exists()]


def _mounted(path: Path) -> bool:
    return os.path.ismount(path)


def test_a_killed_shim_exits_the_container_with_a_reason(daemon):
    d = daemon
    cid = _run(d, "busybox", "sleep", "1000")
    shim, init = _pid_file(d, cid, "shim.pid"), _pid_file(d, cid, "init.pid")
    os.kill(shim, signal.SIGKILL)
    assert until(lambda: _state(d, cid, "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}")
                  == "exited 255 shim died")
    assert until(lambda: not _alive(init))  # killed, as containerd kills a dead shim's container
    assert not _mounted(d.exec_root / "containers" / cid / "rootfs")
    assert not _cgroup_dirs(d, cid)
    assert d.docker("start", cid).returncode == 0  # and it can run again
    assert _state(d, cid) == "running 0"


def test_a_shim_killed_while_the_daemon_is_down(daemon):
    d = daemon
    cid = _run(d, "busybox", "sleep", "1000")
    shim, init = _pid_file(d, cid, "shim.pid"), _pid_file(d, cid, "init.pid")
    daemon_harness.stop(d, signal.SIGKILL)
    os.kill(shim, signal.SIGKILL)
    daemon_harness.start(d)
    assert _state(d, cid, "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}") == "exited 255 shim died"
    assert until(lambda: not _alive(init))
    assert not _mounted(d.exec_root / "containers" / cid / "rootfs")
    assert d.docker("rm", cid).returncode == 0


def test_live_restore_false_stops_containers_at_shutdown(fresh_daemon):
    d = fresh_daemon
    daemon_harness.stop(d)
    daemon_harness.start(d, ["--live-restore=false"])
    daemon_harness.load_busybox(d)
    plain = _run(d, "--stop-timeout", "1", "busybox", "sleep", "1000")
    kept = _run(d, "--stop-timeout", "1", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    inits = [_pid_file(d, cid, "init.pid") for cid in (plain, kept)]
    t0 = time.monotonic()
    daemon_harness.stop(d, signal.SIGTERM)
    assert time.monotonic() - t0 < 5
    assert not any(_alive(pid) for pid in inits)
    daemon_harness.start(d, ["--live-restore=false"])
    assert _state(d, plain) == "exited 137"  # sleep ignores SIGTERM as PID 1: killed after its 1 s
    assert _state(d, kept) == "running 0"  # stopped by the daemon, not by a user


def test_health_and_restart_policy_across_a_daemon_kill(daemon):
    d = daemon
    healthy = _run(d, "--health-cmd", "true", "--health-interval", "100ms", "busybox", "sleep", "1000")
    flapping = _run(d, "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 1")
    assert until(lambda: _state(d, healthy, "{{.State.Health.Status}}") == "healthy")
    assert until(lambda: int(_state(d, flapping, "{{.RestartCount}}")) >= 2)
    daemon_harness.stop(d, signal.SIGKILL)  # the flapping one may be waiting out its back-off
    time.sleep(0.3)
    daemon_harness.start(d)
    assert until(lambda: _state(d, healthy, "{{.State.Health.Status}}") == "healthy")
    count = int(_state(d, flapping, "{{.RestartCount}}"))
    assert until(lambda: int(_state(d, flapping, "{{.RestartCount}}")) > count)
    assert _state(d, flapping, "{{.State.Status}}") in ("running", "restarting")
