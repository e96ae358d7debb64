"""cgroup v1: one directory per hierarchy (cpu, cpuacct, cpuset, memory, pids,
blkio, devices, freezer, and named ones such as name=systemd).

The container's directory is made in every mounted hierarchy, so the init is
accounted everywhere, as runc does. Controller writes are grouped per
controller below; each raises OSError naming the file, or
errdefs.NotImplementedFeature when this kernel lacks the knob.
"""

from __future__ import annotations

import errno
import functools
import os
import time

from dockyard.errdefs import NotImplementedFeature
from dockyard.oci.runtime_spec import CPU, BlockIO, DeviceCgroup, Memory, Pids, Resources
from dockyard.runtime.cgroups import Stats, files

# v1 reports "no limit" as the largest page-aligned signed 64-bit value
_UNLIMITED_FLOOR = 1 << 62
# super options of a cgroup v1 mount that are not controllers
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}


@functools.cache
def hierarchies() -> dict[str, str]:
    """{controller: mountpoint} for every cgroup v1 mount ("name=systemd" for named ones).

    Cached: the host's cgroup mounts do not move under a running daemon."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = right.split()[:3]
            if fstype != "cgroup":
                continue
            mountpoint = left.split()[4]
            for option in options.split(","):
                if option in _NOT_CONTROLLERS or ("=" in option and not option.startswith("name=")):
                    continue
                out.setdefault(option, mountpoint)
    return out


class V1Manager:
    def __init__(self, path: str) -> None:
        self.path = path
        own = files.own_cgroups()
        self.dirs: dict[str, str] = {}
        for controller, mountpoint in hierarchies().items():
            base = path if path.startswith("/") else os.path.join(own.get(controller, "/"), path)
            self.dirs[controller] = os.path.join(mountpoint, base.lstrip("/"))

    def _dir(self, controller: str) -> str | None:
        return self.dirs.get(controller)

    # lifecycle -----------------------------------------------------------

    def create(self) -> None:
        for controller, directory in self.dirs.items():
            made = _makedirs(directory)
            if controller == "cpuset":
                # a new v1 cpuset has no cpus/mems; tasks cannot join it until they are copied down
                for level in made:
                    parent = os.path.dirname(level)
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not files.read(level, name):
                            files.write(level, name, files.read(parent, name))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def add(self, pid: int) -> None:
        # pid 0, the caller itself (single-threaded: a container's init or exec'd process), goes
        # in through ``tasks``: moving the writing thread alone skips the kernel's global
        # cgroup_threadgroup_rwsem, whose first writer after a quiet spell waits out an RCU grace
        # period (5-30 ms here). Another process goes through cgroup.procs, all its threads.
        name = "tasks" if pid == 0 else "cgroup.procs"
        for directory in self.dirs.values():
            files.write(directory, name, str(pid))

    def pids(self) -> list[int]:
        # freezer, then any hierarchy: all share the same members
        directory = self._dir("freezer") or next(iter(self.dirs.values()), None)
        return files.procs(directory) if directory else []

    def destroy(self, timeout: float = 5.0) -> None:
        for directory in self.dirs.values():
            files.remove(directory, timeout)

    # pause / resume -------------------------------------------------------

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def frozen(self) -> bool:
        directory = self._dir("freezer")
        if directory is None:
            return False
        try:
            return files.read(directory, "freezer.state") == "FROZEN"
        except FileNotFoundError:
            return False

    def _set_freezer(self, state: str) -> None:
        directory = self._dir("freezer")
        if directory is None:
            raise NotImplementedFeature("the freezer cgroup controller is not mounted: cannot pause or resume")
        files.write(directory, "freezer.state", state)
        delay = 0.0005
        while files.read(directory, "freezer.state") != state:
            time.sleep(delay)  # FREEZING: the kernel is still stopping tasks
            files.write(directory, "freezer.state", state)
            delay = min(delay * 2, 0.02)

    # resources ------------------------------------------------------------

    def apply(self, resources: Resources | None) -> None:
        if resources is None:
            return
        if resources.memory:
            self._memory(resources.memory)
        if resources.cpu:
            self._cpu(resources.cpu)
        if resources.pids:
            self._pids(resources.pids)
        if resources.block_io:
            self._blkio(resources.block_io)
        if resources.devices:
            self._devices(resources.devices)

    def _memory(self, memory: Memory) -> None:
        directory = self._require("memory")
        if memory.limit is not None:
            limit = str(memory.limit)
            swap = str(memory.swap) if memory.swap is not None else None
            if swap is not None and not os.path.exists(os.path.join(directory, "memory.memsw.limit_in_bytes")):
                raise NotImplementedFeature(
                    "this kernel does not support swap limit capabilities (no memory.memsw.limit_in_bytes); "
                    "boot with swapaccount=1 or leave --memory-swap unset"
                )
            try:
                files.write(directory, "memory.limit_in_bytes", limit)
                if swap is not None:
                    files.write(directory, "memory.memsw.limit_in_bytes", swap)
            except OSError as err:
                # raising the limit above the current memsw limit: memsw must go first
                if err.errno != errno.EINVAL or swap is None:
                    raise
                files.write(directory, "memory.memsw.limit_in_bytes", swap)
                files.write(directory, "memory.limit_in_bytes", limit)
        elif memory.swap is not None:
            files.write(directory, "memory.memsw.limit_in_bytes", str(memory.swap))
        if memory.reservation is not None:
            files.write(directory, "memory.soft_limit_in_bytes", str(memory.reservation))
        if memory.kernel is not None:
            files.write(directory, "memory.kmem.limit_in_bytes", str(memory.kernel))
        if memory.swappiness is not None and memory.swappiness >= 0:
            files.write(directory, "memory.swappiness", str(memory.swappiness))
        if memory.disable_oom_killer:
            files.write(directory, "memory.oom_control", "1")

    def _cpu(self, cpu: CPU) -> None:
        if cpu.shares or cpu.period or cpu.quota:
            directory = self._require("cpu")
            if cpu.shares:
                files.write(directory, "cpu.shares", str(cpu.shares))
            if cpu.period:
                files.write(directory, "cpu.cfs_period_us", str(cpu.period))
            if cpu.quota:
                files.write(directory, "cpu.cfs_quota_us", str(cpu.quota))
        if cpu.cpus or cpu.mems:
            directory = self._require("cpuset")
            if cpu.cpus:
                files.write(directory, "cpuset.cpus", cpu.cpus)
            if cpu.mems:
                files.write(directory, "cpuset.mems", cpu.mems)

    def _pids(self, pids: Pids) -> None:
        if pids.limit != 0:
            files.write(self._require("pids"), "pids.max", str(pids.limit) if pids.limit > 0 else "max")

    def _blkio(self, blkio: BlockIO) -> None:
        directory = self._require("blkio")
        if blkio.weight or blkio.weight_device:
            if not os.path.exists(os.path.join(directory, "blkio.weight")):
                raise NotImplementedFeature(
                    "this kernel does not support block I/O weight (no blkio.weight: the CFQ/BFQ "
                    "proportional controller is not enabled); use --device-read-bps and friends instead"
                )
            if blkio.weight:
                files.write(directory, "blkio.weight", str(blkio.weight))
            for device in blkio.weight_device or []:
                if device.weight:
                    files.write(directory, "blkio.weight_device", f"{device.major}:{device.minor} {device.weight}")
        throttles = (
            ("blkio.throttle.read_bps_device", blkio.throttle_read_bps_device),
            ("blkio.throttle.write_bps_device", blkio.throttle_write_bps_device),
            ("blkio.throttle.read_iops_device", blkio.throttle_read_iops_device),
            ("blkio.throttle.write_iops_device", blkio.throttle_write_iops_device),
        )
        for name, devices in throttles:
            for device in devices or []:
                files.write(directory, name, f"{device.major}:{device.minor} {device.rate}")

    def _devices(self, rules: list[DeviceCgroup]) -> None:
        directory = self._require("devices")
        for rule in rules:
            files.write(directory, "devices.allow" if rule.allow else "devices.deny", device_rule_line(rule))

    def _require(self, controller: str) -> str:
        directory = self._dir(controller)
        if directory is None:
            raise NotImplementedFeature(f"the {controller} cgroup controller is not mounted on this host")
        return directory

    # stats ----------------------------------------------------------------

    def stats(self) -> Stats:
        memory = self._dir("memory") or ""
        limit = files.read_int(memory, "memory.limit_in_bytes")
        cpuacct = self._dir("cpuacct") or self._dir("cpu") or ""
        return Stats(
            memory_usage=files.read_int(memory, "memory.usage_in_bytes"),
            memory_limit=0 if limit >= _UNLIMITED_FLOOR else limit,
            memory_max_usage=files.read_int(memory, "memory.max_usage_in_bytes"),
            memory_stat=files.read_keyed(memory, "memory.stat"),
            cpu_usage_ns=files.read_int(cpuacct, "cpuacct.usage"),
            pids_current=files.read_int(self._dir("pids") or "", "pids.current"),
            oom_kills=files.read_keyed(memory, "memory.oom_control").get("oom_kill", 0),
        )


def device_rule_line(rule: DeviceCgroup) -> str:
    """``c 1:3 rwm``; a rule for all devices is just ``a`` (v1 syntax)."""
    kind = rule.type or "a"
    if kind == "a" and rule.major is None and rule.minor is None:
        return "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{kind} {major}:{minor} {rule.access or 'rwm'}"


def _makedirs(directory: str) -> list[str]:
    """mkdir -p, returning the levels it created (top first)."""
    made: list[str] = []
    current = directory
    while not os.path.isdir(current):
        made.append(current)
        current = os.path.dirname(current)
    for level in reversed(made):
        try:
            os.mkdir(level)
        except FileExistsError:
            pass
    return list(reversed(made))
