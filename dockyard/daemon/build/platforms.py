"""Platforms in a build: ``docker build --platform``, ``FROM --platform=``, and Docker's
automatic platform ARGs (``BUILDPLATFORM``, ``TARGETARCH``, ...).

The build platform is the host's; the target platform is ``--platform`` or the host's. A FROM
image must be of its stage's platform (a local image of another platform makes the builder
pull that platform's variant, as moby's GetImageAndReleasableLayer does); ``FROM scratch``
takes the stage's platform into the image config.
"""

from __future__ import annotations

from dockyard.daemon.build.images import BaseImage
from dockyard.daemon.distribution import manifests
from dockyard.oci import image_spec as spec

Platform = manifests.PlatformSpec


def parse(text: str) -> Platform:
    return manifests.parse_platform(text)


def host() -> Platform:
    return manifests.host_platform()


def of(config: spec.ImageConfig) -> Platform:
    return parse("/".join(p for p in (config.os or "linux", config.architecture or host().architecture,
                                      config.variant or "") if p))


def matches(config: spec.ImageConfig, wanted: Platform) -> bool:
    """OS and architecture equal; a variant only counts when both name one (containerd's
    matcher as the classic builder uses it)."""
    actual = of(config)
    return (actual.os, actual.architecture) == (wanted.os, wanted.architecture) and \
        (not actual.variant or not wanted.variant or actual.variant == wanted.variant)


def args(prefix: str, platform: Platform) -> dict[str, str | None]:
    """``<prefix>PLATFORM``, ``<prefix>OS``, ``<prefix>ARCH``, ``<prefix>VARIANT``."""
    return {f"{prefix}PLATFORM": str(platform), f"{prefix}OS": platform.os,
            f"{prefix}ARCH": platform.architecture, f"{prefix}VARIANT": platform.variant}


def scratch(platform: Platform) -> BaseImage:
    """``FROM scratch``: no image, a config of the stage's platform."""
    return BaseImage(id="", config=spec.ImageConfig(architecture=platform.architecture, os=platform.os,
                                                    variant=platform.variant or None), top_chain_id=None)
