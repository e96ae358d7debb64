"""``docker update``: change a container's resources and restart policy, live if it runs.

As moby: only the fields the client set (non-zero) change; the result is
checked like a create; a running container's cgroup gets the new limits
before the record is saved, so a refused write changes nothing.
"""

from __future__ import annotations

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig, UpdateRequest
from dockyard.daemon.containers import create


_FIELDS = ("cpu_shares", "memory", "blkio_weight", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems",
           "memory_reservation", "memory_swap", "nano_cpus")


def merged(current: HostConfig, request: UpdateRequest, auto_remove: bool) -> tuple[HostConfig, list[str]]:
    """The HostConfig after the update, validated; raises InvalidParameter in moby's words."""
    hc = msgspec.structs.replace(current)
    for name in _FIELDS:
        value = getattr(request, name)
        if value:
            setattr(hc, name, value)
    if request.nano_cpus:  # NanoCpus replaces a quota/period pair and the other way round
        hc.cpu_quota, hc.cpu_period = 0, 0
    elif request.cpu_quota or request.cpu_period:
        hc.nano_cpus = 0
    if request.pids_limit is not None:
        hc.pids_limit = request.pids_limit if request.pids_limit > 0 else None
    if request.memory and not request.memory_swap and current.memory_swap > 0:
        if request.memory > current.memory_swap:
            raise errdefs.InvalidParameter(
                "Cannot update container: Memory limit should be smaller than already set memoryswap "
                "limit, update the memoryswap at the same time")
    warnings: list[str] = []
    create.validate_resources(hc, warnings)
    if request.restart_policy is not None:
        if auto_remove and request.restart_policy.name not in ("", "no"):
            raise errdefs.InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled "
                                           "for the container")
        hc.restart_policy = request.restart_policy
        create.validate_restart(hc)
    return hc, warnings
