"""``docker top``: the host's ``ps`` output, kept to the container's processes.

As dockerd does it: run ``ps`` with the user's arguments (default ``-ef``),
find the PID column in its header, keep the rows whose PID is in the
container's cgroup. The cgroup (not the process tree) is the truth: it holds
every process of the container, daemonized ones included.
"""

from __future__ import annotations

import subprocess

import msgspec

from dockyard import errdefs
from dockyard.runtime.cgroups import manager_for


class TopResponse(msgspec.Struct, rename="pascal"):
    titles: list[str]
    processes: list[list[str]]


def container_pids(cgroups_path: str) -> set[int]:
    return set(manager_for(cgroups_path).pids())


def top(pids: set[int], ps_args: str = "-ef") -> TopResponse:
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        done = subprocess.run(["ps", *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise errdefs.System(f"Error running ps: {e}") from None
    if done.returncode != 0:
        raise errdefs.System(f"ps: {done.stderr.decode(errors='replace').strip() or done.returncode}")
    return parse_ps(done.stdout.decode(errors="replace"), pids)


def parse_ps(output: str, pids: set[int]) -> TopResponse:
    lines = output.splitlines()
    if not lines:
        raise errdefs.System("Couldn't find PID field in ps output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise errdefs.System("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[pid_index])
        except (IndexError, ValueError):
            raise errdefs.System(f"Unexpected pid '{fields[pid_index] if len(fields) > pid_index else ''}'") from None
        if pid in pids:
            processes.append(fields)
    return TopResponse(titles=titles, processes=processes)
