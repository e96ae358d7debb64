"""The host's platform in OCI/Go words (``amd64``, ``arm64``), for configs and manifest lists."""

from __future__ import annotations

import platform

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)
