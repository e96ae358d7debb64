"""Platforms in OCI/Go words (``linux/amd64``, ``linux/arm/v7``): the host's, and parsing what
users write (``--platform``, ``FROM --platform``), shared by pull, build, load and import."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from dockyard import errdefs
from dockyard.oci import image_spec as spec

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


@dataclass(frozen=True)
class PlatformSpec:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386"}


def parse_platform(text: str) -> PlatformSpec:
    """``linux/arm64/v8``, ``linux/amd64``, ``arm64``; empty: the host's platform."""
    if not text:
        return host_platform()
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise errdefs.InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            return PlatformSpec(parts[0], host_arch())
        return normalize(PlatformSpec("linux", parts[0]))
    return normalize(PlatformSpec(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def normalize(p: PlatformSpec) -> PlatformSpec:
    arch = _ARCH_ALIASES.get(p.architecture, p.architecture)
    variant = p.variant
    if arch == "arm64" and variant in ("v8", "8"):
        variant = ""
    if arch == "arm" and variant == "" and p.architecture == "arm":
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = ""
    return PlatformSpec(p.os, arch, variant)


def host_platform() -> PlatformSpec:
    arch = host_arch()
    return PlatformSpec("linux", arch, "v7" if arch == "arm" else "")


def of_config(config: spec.ImageConfig) -> PlatformSpec:
    """The platform an image config names (an image without one is the host's architecture)."""
    return parse_platform("/".join(p for p in (config.os or "linux", config.architecture or host_arch(),
                                               config.variant or "") if p))


def matches(config: spec.ImageConfig, wanted: PlatformSpec) -> bool:
    """OS and architecture equal; a variant only counts when both name one (containerd's matcher
    as moby uses it for a single-platform image)."""
    actual = of_config(config)
    return (actual.os, actual.architecture) == (wanted.os, wanted.architecture) and \
        (not actual.variant or not wanted.variant or actual.variant == wanted.variant)
