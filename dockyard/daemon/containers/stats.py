"""``docker stats``: one sample of a container's cgroup and network counters, in Docker's shape.

The CLI computes CPU % from two samples (``cpu_stats`` and ``precpu_stats``:
container CPU time against host CPU time, times ``online_cpus``) and memory as
usage minus inactive file cache, so those fields must be exactly Docker's.
Host CPU time is /proc/stat's total in nanoseconds, as moby reads it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from dockyard.runtime.cgroups import manager_for

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class Sample:
    read: str
    cpu: dict
    memory: dict
    pids: dict
    networks: dict | None


def _now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(v) for v in line.split()[1:8]) * 1_000_000_000 // _CLOCK_TICKS
    return 0


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def networks(pid: int) -> dict | None:
    """Interface counters seen from the container's net namespace (None when it has none of its own)."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return None
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in counters.split()]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def sample(cgroups_path: str, pid: int, pids_limit: int | None) -> Sample:
    stats = manager_for(cgroups_path).stats()
    return Sample(
        read=_now(),
        cpu={"cpu_usage": {"total_usage": stats.cpu_usage_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
             "system_cpu_usage": system_cpu_ns(), "online_cpus": os.cpu_count() or 1,
             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        memory={"usage": stats.memory_usage, "max_usage": stats.memory_max_usage, "stats": stats.memory_stat,
                "limit": stats.memory_limit or host_memory(), "failcnt": 0},
        pids={"current": stats.pids_current, **({"limit": pids_limit} if pids_limit else {})},
        networks=networks(pid),
    )


def document(container_id: str, name: str, current: Sample, previous: Sample | None) -> dict:
    """The /containers/{id}/stats body."""
    empty_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                 "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    body = {
        "name": "/" + name, "id": container_id, "read": current.read,
        "preread": previous.read if previous else ZERO_TIME,
        "pids_stats": current.pids,
        "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": current.cpu, "precpu_stats": previous.cpu if previous else empty_cpu,
        "memory_stats": current.memory,
    }
    if current.networks is not None:
        body["networks"] = current.networks
    return body
