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
import threading
import time
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


def hurry_migration() -> None:
    """Make the next move of a process into a cgroup (``Manager.add``) cheap, by paying its wait
    now: blocks for one RCU grace period. Every write to a ``cgroup.procs`` takes the kernel's
    global cgroup_threadgroup_rwsem for writing, and the first writer after a quiet spell waits a
    full grace period (5-30 ms here) to switch its readers (fork, exit) to the slow path; writers
    within about one grace period after the last one pass at once. So a no-op move (this process
    into the cgroup it is in) opens that window. Errors are ignored: it is only a hint."""
    try:
        with open("/proc/self/cgroup") as f:  # read afresh: moving us back to an old cgroup would not be a no-op
            own = {controllers: path for _, controllers, path in
                   (line.rstrip("\n").split(":", 2) for line in f)}
        if is_unified():
            directory = os.path.join(CGROUP_ROOT, own.get("", "/").lstrip("/"))
        else:
            from dockyard.runtime.cgroups.v1 import hierarchies

            controller, mountpoint = next(iter(hierarchies().items()))
            path = next(p for names, p in own.items() if controller in names.split(","))
            directory = os.path.join(mountpoint, path.lstrip("/"))
        fd = os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except (OSError, StopIteration, ValueError):
        pass


class MigrationWarmer:
    """Calls ``hurry_migration`` on a thread of its own, one at a time: a caller that knows a
    container start is coming (a create, a start request) pokes it, so the grace period elapses
    while the start does its other work instead of in the middle of it. Only for runtimes that
    move the init by pid (runc), or on cgroup v2: our own runtime's init joins its v1 cgroups
    itself, without that lock (``Manager.add(0)``).

    While starts keep coming it keeps the window open: the no-op move is repeated every
    ``KEEP_OPEN_EVERY`` until ``KEEP_OPEN_FOR`` has passed since the last poke. The writer that
    waits out a grace period holds the kernel's cgroup_mutex meanwhile, so a start that makes its
    cgroup (mkdir) just then would wait for it too: in a burst of starts (a script's loop of
    ``docker run``, a compose up) only the first pays. Each repeat is a ~50 us no-op while the
    window is open (the window closes ~20-30 ms after the last move here)."""

    KEEP_OPEN_EVERY = 0.010
    KEEP_OPEN_FOR = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._until = 0.0  # monotonic time after which the thread stops repeating

    def poke(self, runtime: str) -> None:
        """``runtime``: what will start the container ("dockyard", ours, or a runc binary)."""
        if runtime == "dockyard" and not is_unified():
            return
        with self._lock:
            self._until = time.monotonic() + self.KEEP_OPEN_FOR
            if self._thread is not None:
                return  # the grace period under way (or the open window) serves this start too
            self._thread = threading.Thread(target=self._keep_open, name="cgroup-warm", daemon=True)
            self._thread.start()

    def _keep_open(self) -> None:
        while True:
            hurry_migration()
            with self._lock:
                if time.monotonic() >= self._until:
                    self._thread = None
                    return
            time.sleep(self.KEEP_OPEN_EVERY)
