"""Capability sets: OCI names -> kernel masks, and applying them to this process.

Order matters and mirrors runc: the bounding set is dropped first (needs
CAP_SETPCAP, so before the uid switch), then permitted/effective/inheritable are set
with capset, then ambient capabilities are raised (they must already be
permitted and inheritable). Names beyond this kernel's last capability are
ignored, as runc does with a warning.
"""

from __future__ import annotations

import functools

from dockyard.errdefs import InvalidParameter
from dockyard.oci.defaults import CAPABILITY_NUMBERS
from dockyard.oci.runtime_spec import Capabilities
from dockyard.runtime import syscalls


@functools.cache
def last_cap() -> int:
    """The kernel's highest capability number (read once: the zygote's warm-up does it for every
    process it forks)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def bounding_set() -> int:
    """This process's capability bounding set (CapBnd of /proc/self/status)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapBnd:"):
                return int(line.split()[1], 16)
    raise OSError(0, "no CapBnd in /proc/self/status")


def mask(names: list[str], highest: int) -> int:
    bits = 0
    for name in names:
        number = CAPABILITY_NUMBERS.get(name)
        if number is None:
            raise InvalidParameter(f'unknown capability "{name}"')
        if number <= highest:
            bits |= 1 << number
    return bits


def drop_bounding(caps: Capabilities, highest: int) -> None:
    """Drop what the bounding set excludes and this process still has (a prepared init dropped
    most ahead); needs CAP_SETPCAP, so call it before the uid switch."""
    drop = bounding_set() & ~mask(caps.bounding, highest)
    for number in range(highest + 1):
        if drop & (1 << number):
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)


def set_sets(caps: Capabilities, highest: int) -> None:
    """Effective/permitted/inheritable, then ambient; call after the uid switch.

    Capabilities the runtime itself lacks (e.g. CAP_SYS_RESOURCE on a restricted host) cannot
    be granted by anyone; they are left out rather than failing --privileged, whose meaning
    is "everything available"."""
    _, available, _ = syscalls.capget()
    syscalls.capset(
        mask(caps.effective, highest) & available,
        mask(caps.permitted, highest) & available,
        mask(caps.inheritable, highest) & available,
    )
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    for number in (CAPABILITY_NUMBERS[name] for name in caps.ambient):
        if number <= highest:
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, number)
