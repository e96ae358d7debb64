"""kill -9 of dockyardd in the middle of create/start/rm loops: after a restart every container
is in a sane state, and once they are all removed nothing of theirs is left behind (mounts,
network namespaces, cgroups, directories, database rows)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from tests import daemon_harness
from tests.compat.helpers import until

SANE = {"created", "running", "exited", "dead"}


def _churn(d, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            action = rng.choice(("run", "run", "create-start", "rm"))
            if action == "run":
                d.docker("run", "-d", "busybox", "sleep", rng.choice(("0", "1000")), timeout=10)
            elif action == "create-start":
                cid = d.docker("create", "busybox", "true", timeout=10).stdout.decode().strip()
                if cid:
                    d.docker("start", cid, timeout=10)
            else:
                ids = d.docker("ps", "-aq", timeout=10).stdout.decode().split()
                if ids:
                    d.docker("rm", "-f", rng.choice(ids), timeout=10)
        except subprocess.TimeoutExpired:
            pass
        except OSError:
            pass


def _running_pid_alive_or_exited(d, cid: str) -> bool:
    inspect = d.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", cid)
    assert inspect.returncode == 0, inspect.stderr.decode()
    running, pid = inspect.stdout.decode().split()
    return running == "false" or Path(f"/proc/{pid}").exists()


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def _cgroups_left(parent: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{parent.lstrip('/')}/*") if p.is_dir()]


def test_kill_9_during_churn_leaves_sane_state(fresh_daemon):
    d = fresh_daemon
    daemon_harness.load_busybox(d)
    rng = random.Random()
    for round_ in range(3):
        stop = threading.Event()
        workers = [threading.Thread(target=_churn, args=(d, stop, rng.random())) for _ in range(3)]
        for w in workers:
            w.start()
        time.sleep(rng.uniform(0.5, 1.5))
        daemon_harness.stop(d, signal.SIGKILL)
        stop.set()
        for w in workers:
            w.join()
        daemon_harness.start(d)

        ps = d.docker("ps", "-a", "--format", "{{.ID}} {{.State}}")
        assert ps.returncode == 0, ps.stderr.decode()
        for line in ps.stdout.decode().splitlines():
            cid, state = line.split()
            assert state in SANE, (round_, line, d.log())
            if state == "running":  # its process is there, or its exit is recorded soon (sleep 0)
                assert until(lambda: _running_pid_alive_or_exited(d, cid), timeout=5.0), (cid, d.log())

    ids = d.docker("ps", "-aq").stdout.decode().split()
    if ids:
        r = d.docker("rm", "-f", *ids, timeout=120)
        assert r.returncode == 0, r.stderr.decode() + d.log()
    assert d.docker("ps", "-aq").stdout.decode().split() == []

    netns_dir = str(d.exec_root / "netns")  # the directory itself is a mount point, as iproute2 makes it
    mounts = [m for m in _mounts_under(d.root) if m != netns_dir]
    spares = [m for m in mounts if Path(m).name.startswith(".spare-")]  # the live daemon's pool
    assert len(spares) <= 2, spares  # a killed daemon's spares are not left behind
    assert [m for m in mounts if m not in spares] == [], d.log()
    assert _cgroups_left(d.cgroup_parent) == []
    assert [p.name for p in (d.exec_root / "containers").iterdir()] == []
    assert [p.name for p in (d.data_root / "containers").iterdir()] == []
    assert [p.name for p in (d.data_root / "overlay").iterdir() if not p.name.startswith(".")] == []
    netns = d.exec_root / "netns"
    assert not netns.exists() or [p.name for p in netns.iterdir() if not p.name.startswith(".spare-")] == []
    with sqlite3.connect(d.data_root / "dockyard.db") as db:
        assert db.execute("SELECT COUNT(*) FROM containers").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM ip_allocs").fetchone()[0] == 0
