"""Volume names: Docker's validation for local names, generated names for anonymous volumes."""

from __future__ import annotations

import re
import secrets

from dockyard import errdefs

_LOCAL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def validate_local(name: str) -> None:
    """A local volume's name is a directory under the volumes root: no slash, no "..", no leading dot."""
    if not _LOCAL_NAME.match(name):
        raise errdefs.InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def generate() -> str:
    """64 hex digits, as Docker names anonymous volumes."""
    return secrets.token_hex(32)
