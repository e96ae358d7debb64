"""Cgroup managers: one container's cgroup across the host's hierarchies.

``manager_for(path)`` picks cgroup v2 when /sys/fs/cgroup is the unified
hierarchy, else v1 (one hierarchy per controller). Both implement ``Manager``:
``create`` makes the directories, ``apply`` writes the OCI resources, ``add``
moves a process in (pid 0 = the writer itself: the container init joins its own
cgroup before it unshares the cgroup namespace), ``freeze``/``thaw`` back
pause/resume, ``destroy`` waits for the cgroup to empty and removes it, and
``stats`` feeds ``docker stats``.

A path is taken as Docker and runc do: absolute ("/docker/<id>") means
relative to each hierarchy's root; a relative path is under the caller's own
cgroup in that hierarchy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from dockyard.oci.runtime_spec import Resources

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Stats:
    memory_usage: int  # bytes, page cache included (as docker stats shows it before subtracting cache)
    memory_limit: int  # bytes; 0 = unlimited
    memory_max_usage: int
    memory_stat: dict[str, int]  # the controller's memory.stat counters
    cpu_usage_ns: int  # total CPU time of the cgroup
    pids_current: int
    oom_kills: int


class Manager(Protocol):
    path: str

    def create(self) -> None: ...

    def apply(self, resources: Resources | None) -> None: ...

    def add(self, pid: int) -> None: ...

    def pids(self) -> list[int]: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def frozen(self) -> bool: ...

    def destroy(self, timeout: float = 5.0) -> None: ...

    def exists(self) -> bool: ...

    def stats(self) -> Stats: ...


def is_unified(root: str = CGROUP_ROOT) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def manager_for(path: str) -> Manager:
    if is_unified():
        from dockyard.runtime.cgroups.v2 import V2Manager

        return V2Manager(path)
    from dockyard.runtime.cgroups.v1 import V1Manager

    return V1Manager(path)
