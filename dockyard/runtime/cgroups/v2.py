"""cgroup v2 (unified hierarchy): one directory, controllers enabled top-down.

OCI resources map onto v2 files as runc maps them: memory.max, memory.swap.max
(OCI's swap is memory+swap, v2's is swap alone, so the difference),
memory.low (reservation), cpu.weight (converted from shares), cpu.max,
cpuset.cpus/mems, pids.max, io.max, io.weight; cgroup.freeze for pause.

Device rules: cgroup v2 has no devices.allow file; access control needs an
eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup, which
this runtime does not build. On v2 the rules are therefore NOT enforced by the
cgroup: a container is limited only by the nodes present in its /dev (the
runtime creates just the spec's devices) and by the default capability set
(mknod of new nodes still works with CAP_MKNOD). ``apply`` says so by
raising NotImplementedFeature only when a rule would grant or deny something
beyond that default, i.e. for explicit --device-cgroup-rule use.
"""

from __future__ import annotations

import os
import time

from dockyard.errdefs import NotImplementedFeature
from dockyard.oci.defaults import default_device_rules
from dockyard.oci.runtime_spec import CPU, BlockIO, DeviceCgroup, Memory, Resources
from dockyard.runtime.cgroups import CGROUP_ROOT, Stats, files

_WANTED = ("cpuset", "cpu", "io", "memory", "pids")


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (runc's linear conversion)."""
    return 1 + ((shares - 2) * 9999) // 262142


class V2Manager:
    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        self.path = path
        self.root = root
        base = path if path.startswith("/") else os.path.join(files.own_cgroups().get("", "/"), path)
        self.directory = os.path.join(root, base.lstrip("/"))

    def create(self) -> None:
        # enable the controllers we use in every ancestor's subtree_control
        relative = os.path.relpath(self.directory, self.root)
        current = self.root
        for part in relative.split(os.sep):
            available = set(files.read(current, "cgroup.controllers").split())
            enable = " ".join("+" + c for c in _WANTED if c in available)
            if enable:
                try:
                    files.write(current, "cgroup.subtree_control", enable)
                except OSError:
                    pass  # e.g. the root of a delegated tree with processes in it; the leaf still works
            current = os.path.join(current, part)
            os.makedirs(current, exist_ok=True)

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    def add(self, pid: int) -> None:
        files.write(self.directory, "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return files.procs(self.directory)

    def destroy(self, timeout: float = 5.0) -> None:
        files.remove(self.directory, timeout)

    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def frozen(self) -> bool:
        try:
            return files.read(self.directory, "cgroup.freeze") == "1"
        except FileNotFoundError:
            return False

    def _freeze(self, value: str) -> None:
        files.write(self.directory, "cgroup.freeze", value)
        want = "frozen 1" if value == "1" else "frozen 0"
        delay = 0.0005
        deadline = time.monotonic() + 5
        while want not in files.read(self.directory, "cgroup.events").splitlines():
            if time.monotonic() > deadline:
                raise OSError(16, f"cgroup {self.directory} did not reach {want!r}")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def apply(self, resources: Resources | None) -> None:
        if resources is None:
            return
        if resources.memory:
            self._memory(resources.memory)
        if resources.cpu:
            self._cpu(resources.cpu)
        if resources.pids and resources.pids.limit != 0:
            limit = resources.pids.limit
            files.write(self.directory, "pids.max", str(limit) if limit > 0 else "max")
        if resources.block_io:
            self._io(resources.block_io)
        if resources.devices:
            _check_devices(resources.devices)

    def _memory(self, memory: Memory) -> None:
        if memory.limit is not None:
            files.write(self.directory, "memory.max", str(memory.limit) if memory.limit > 0 else "max")
        if memory.swap is not None:
            if memory.swap < 0:
                swap = "max"
            elif memory.limit is not None and memory.limit > 0:
                swap = str(max(memory.swap - memory.limit, 0))
            else:
                swap = str(memory.swap)
            files.write(self.directory, "memory.swap.max", swap)
        if memory.reservation is not None:
            files.write(self.directory, "memory.low", str(memory.reservation))
        if memory.kernel is not None:
            raise NotImplementedFeature("kernel memory limits do not exist on cgroup v2")
        if memory.disable_oom_killer:
            raise NotImplementedFeature("cgroup v2 cannot disable the OOM killer (--oom-kill-disable)")

    def _cpu(self, cpu: CPU) -> None:
        if cpu.shares:
            files.write(self.directory, "cpu.weight", str(shares_to_weight(cpu.shares)))
        if cpu.quota or cpu.period:
            quota = str(cpu.quota) if cpu.quota and cpu.quota > 0 else "max"
            files.write(self.directory, "cpu.max", f"{quota} {cpu.period or 100000}")
        if cpu.cpus:
            files.write(self.directory, "cpuset.cpus", cpu.cpus)
        if cpu.mems:
            files.write(self.directory, "cpuset.mems", cpu.mems)

    def _io(self, blkio: BlockIO) -> None:
        if blkio.weight:
            files.write(self.directory, "io.weight", f"default {blkio.weight}")
        for device in blkio.weight_device or []:
            if device.weight:
                files.write(self.directory, "io.weight", f"{device.major}:{device.minor} {device.weight}")
        for key, devices in (
            ("rbps", blkio.throttle_read_bps_device),
            ("wbps", blkio.throttle_write_bps_device),
            ("riops", blkio.throttle_read_iops_device),
            ("wiops", blkio.throttle_write_iops_device),
        ):
            for device in devices or []:
                files.write(self.directory, "io.max", f"{device.major}:{device.minor} {key}={device.rate}")

    def stats(self) -> Stats:
        memory_stat = files.read_keyed(self.directory, "memory.stat")
        return Stats(
            memory_usage=files.read_int(self.directory, "memory.current"),
            memory_limit=files.read_int(self.directory, "memory.max"),
            memory_max_usage=files.read_int(self.directory, "memory.peak"),
            memory_stat=memory_stat,
            cpu_usage_ns=files.read_keyed(self.directory, "cpu.stat").get("usage_usec", 0) * 1000,
            pids_current=files.read_int(self.directory, "pids.current"),
            oom_kills=files.read_keyed(self.directory, "memory.events").get("oom_kill", 0),
        )


def _check_devices(rules: list[DeviceCgroup]) -> None:
    """Accept Docker's default rule set (enforced by /dev contents, see module doc); refuse more."""
    defaults = default_device_rules()
    privileged = default_device_rules(privileged=True)
    extra = [r for r in rules if r not in defaults and r not in privileged]
    if extra:
        raise NotImplementedFeature(
            "device cgroup rules are not supported on cgroup v2 by the dockyard runtime "
            "(they need an eBPF device program); use --runtime runc"
        )
