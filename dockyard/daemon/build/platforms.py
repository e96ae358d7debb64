"""Platforms in a build: ``docker build --platform``, ``FROM --platform=``, and Docker's
automatic platform ARGs (``BUILDPLATFORM``, ``TARGETARCH``, ...).

The build platform is the host's; the target platform is ``--platform`` or the host's. A FROM
image must be of its stage's platform (a local image of another platform makes the builder
pull that platform's variant, as moby's GetImageAndReleasableLayer does); ``FROM scratch``
takes the stage's platform into the image config.
"""

from __future__ import annotations

from dockyard.daemon.build.images import BaseImage
from dockyard.oci import image_spec as spec
from dockyard.oci.platform import PlatformSpec as Platform
from dockyard.oci.platform import host_platform as host
from dockyard.oci.platform import matches, of_config
from dockyard.oci.platform import parse_platform as parse

__all__ = ["Platform", "args", "host", "matches", "of_config", "parse", "scratch"]


def args(prefix: str, platform: Platform) -> dict[str, str | None]:
    """``<prefix>PLATFORM``, ``<prefix>OS``, ``<prefix>ARCH``, ``<prefix>VARIANT``."""
    return {f"{prefix}PLATFORM": str(platform), f"{prefix}OS": platform.os,
            f"{prefix}ARCH": platform.architecture, f"{prefix}VARIANT": platform.variant}


def scratch(platform: Platform) -> BaseImage:
    """``FROM scratch``: no image, a config of the stage's platform."""
    return BaseImage(id="", config=spec.ImageConfig(architecture=platform.architecture, os=platform.os,
                                                    variant=platform.variant or None), top_chain_id=None)
