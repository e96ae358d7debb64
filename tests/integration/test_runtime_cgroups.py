"""cgroup managers against the host's real hierarchies (v1 controllers, and the cgroup2
mount at /sys/fs/cgroup/unified for the v2 manager's core files). Unique names, removed after."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

import pytest

from dockyard import errdefs
from dockyard.oci import defaults
from dockyard.oci import runtime_spec as rs
from dockyard.runtime.cgroups import MigrationWarmer, files, hurry_migration, is_unified
from dockyard.runtime.cgroups.v1 import V1Manager, device_rule_line, hierarchies
from dockyard.runtime.cgroups.v2 import V2Manager, shares_to_weight

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
v1_only = pytest.mark.skipif(is_unified() or "memory" not in hierarchies(), reason="needs cgroup v1")
UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def v1():
    parent = f"/dytest-{secrets.token_hex(4)}"
    manager = V1Manager(f"{parent}/c")
    manager.create()
    procs: list[subprocess.Popen] = []
    try:
        yield manager, procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for directory in manager.dirs.values():
            for path in (directory, os.path.dirname(directory)):
                if os.path.isdir(path):
                    files.remove(path, 5)


def _sleeper(procs) -> int:
    proc = subprocess.Popen(["sleep", "30"])
    procs.append(proc)
    return proc.pid


@v1_only
def test_memory_with_swap_and_stats(v1):
    manager, procs = v1
    manager.apply(rs.Resources(memory=rs.Memory(limit=32 << 20, swap=64 << 20, reservation=16 << 20, swappiness=10)))
    memory = manager.dirs["memory"]
    assert files.read(memory, "memory.limit_in_bytes") == str(32 << 20)
    assert files.read(memory, "memory.memsw.limit_in_bytes") == str(64 << 20)
    assert files.read(memory, "memory.soft_limit_in_bytes") == str(16 << 20)
    # raising both above the current memsw needs memsw first: the manager reorders
    manager.apply(rs.Resources(memory=rs.Memory(limit=128 << 20, swap=256 << 20)))
    assert files.read(memory, "memory.limit_in_bytes") == str(128 << 20)
    pid = _sleeper(procs)
    manager.add(pid)
    assert manager.pids() == [pid]
    stats = manager.stats()
    assert stats.memory_limit == 128 << 20 and stats.pids_current == 1 and stats.memory_usage >= 0


@v1_only
def test_cpu_cpuset_pids(v1):
    manager, _ = v1
    cpus = files.read(os.path.dirname(manager.dirs["cpuset"]), "cpuset.cpus")
    manager.apply(rs.Resources(cpu=rs.CPU(shares=512, quota=50000, period=100000, cpus=cpus.split(",")[0].split("-")[0], mems="0"), pids=rs.Pids(limit=7)))
    assert files.read(manager.dirs["cpu"], "cpu.shares") == "512"
    assert files.read(manager.dirs["cpu"], "cpu.cfs_quota_us") == "50000"
    assert files.read(manager.dirs["cpu"], "cpu.cfs_period_us") == "100000"
    assert files.read(manager.dirs["cpuset"], "cpuset.mems") == "0"
    assert files.read(manager.dirs["pids"], "pids.max") == "7"
    manager.apply(rs.Resources(pids=rs.Pids(limit=-1)))
    assert files.read(manager.dirs["pids"], "pids.max") == "max"


@v1_only
def test_blkio_throttle_and_weight_unsupported(v1):
    manager, _ = v1
    # throttling needs a whole disk, not a partition
    disks = [d for d in sorted(os.listdir("/sys/block")) if d.startswith(("vd", "sd", "nvme"))]
    if not disks:
        pytest.skip("no disk to throttle")
    with open(f"/sys/block/{disks[0]}/dev") as f:
        disk = tuple(map(int, f.read().split(":")))
    manager.apply(rs.Resources(block_io=rs.BlockIO(throttle_read_bps_device=[rs.ThrottleDevice(major=disk[0], minor=disk[1], rate=1048576)])))
    assert f"{disk[0]}:{disk[1]} 1048576" in files.read(manager.dirs["blkio"], "blkio.throttle.read_bps_device")
    if not os.path.exists(os.path.join(manager.dirs["blkio"], "blkio.weight")):
        with pytest.raises(errdefs.NotImplementedFeature, match="blkio.weight"):
            manager.apply(rs.Resources(block_io=rs.BlockIO(weight=300)))


@v1_only
def test_devices_rules(v1):
    manager, _ = v1
    manager.apply(rs.Resources(devices=defaults.default_device_rules()))
    listed = files.read(manager.dirs["devices"], "devices.list").splitlines()
    assert "c 1:3 rwm" in listed and "c 136:* rwm" in listed and "a *:* rwm" not in listed
    assert device_rule_line(rs.DeviceCgroup(allow=False, access="rwm")) == "a"


@v1_only
def test_freezer_pause_resume_and_destroy_waits(v1):
    manager, procs = v1
    pid = _sleeper(procs)
    manager.add(pid)
    manager.freeze()
    assert manager.frozen()
    manager.thaw()
    assert not manager.frozen()
    os.kill(pid, signal.SIGKILL)
    procs[0].wait()
    procs.clear()
    manager.destroy()
    assert not manager.exists()


@v1_only
def test_a_process_joins_by_itself_through_tasks(v1):
    """add(0) from a single-threaded child (a container's init, an exec'd process) moves it into
    every hierarchy, through `tasks`: the path without the global lock a move by pid waits on."""
    manager, _ = v1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            manager.add(0)
            os.write(write_end, b"in")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 2) == b"in"
        assert manager.pids() == [pid]
        with open(f"/proc/{pid}/cgroup") as f:
            paths = {line.split(":")[1]: line.strip().split(":", 2)[2] for line in f}
        assert paths["memory"] == paths["pids"] == manager.path
    finally:
        os.close(read_end)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_v2_core_files_on_the_unified_mount():
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")) and not is_unified():
        pytest.skip("no cgroup2 mount")
    root = "/sys/fs/cgroup" if is_unified() else UNIFIED
    manager = V2Manager(f"/dytest-{secrets.token_hex(4)}/c", root=root)
    proc = None
    try:
        manager.create()
        proc = subprocess.Popen(["sleep", "30"])
        manager.add(proc.pid)
        assert manager.pids() == [proc.pid]
        manager.freeze()
        assert manager.frozen()
        manager.thaw()
        assert not manager.frozen()
        with pytest.raises(errdefs.NotImplementedFeature, match="eBPF"):
            manager.apply(rs.Resources(devices=[rs.DeviceCgroup(allow=True, type="b", major=8, minor=0, access="rw")]))
        manager.apply(rs.Resources(devices=defaults.default_device_rules()))  # the default set is accepted
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if manager.exists():
            manager.destroy()
        os.rmdir(os.path.dirname(manager.directory))
    assert shares_to_weight(1024) == 39 and shares_to_weight(2) == 1


def test_hurry_migration_leaves_us_where_we_are_and_runs_one_at_a_time():
    with open("/proc/self/cgroup") as f:
        before = f.read()
    hurry_migration()
    warmer = MigrationWarmer()
    warmer.KEEP_OPEN_FOR = 0.3
    runc = "/usr/sbin/runc"  # moves its init by pid; ours joins by itself on v1 (nothing to warm)
    warmer.poke("dockyard")
    assert (warmer._thread is None) == (not is_unified())
    warmer.poke(runc)
    first = warmer._thread
    assert first is not None
    time.sleep(0.2)
    warmer.poke(runc)  # while the window is kept open: the same thread, kept going
    assert warmer._thread is first
    time.sleep(0.2)
    assert first.is_alive()  # 0.4 s after the first poke: the second one extended it
    first.join(5)
    assert not first.is_alive() and warmer._thread is None
    warmer.poke(runc)  # a poke after the thread ended starts another
    second = warmer._thread
    assert second is not None and second is not first
    second.join(5)
    with open("/proc/self/cgroup") as f:
        assert f.read() == before
