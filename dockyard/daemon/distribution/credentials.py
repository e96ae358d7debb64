"""Client credentials (``X-Registry-Auth`` and ``POST /auth`` bodies, decoded by the router) as the
registry client takes them, and which registry a server address names
(``https://index.docker.io/v1/`` is docker.io)."""

from __future__ import annotations

import base64
import binascii

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from dockyard.distribution.auth import Credentials
from dockyard.distribution.endpoints import DOCKER_IO

_HUB_ADDRESSES = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/",
                  "https://index.docker.io/v1", "index.docker.io/v1", "https://registry-1.docker.io")


def credentials(config: AuthConfig) -> Credentials:
    username, password = config.username, config.password
    if config.auth and not username:
        try:
            username, _, password = base64.b64decode(config.auth).decode().partition(":")
        except (binascii.Error, ValueError):
            raise errdefs.InvalidParameter("invalid auth configuration: auth is not base64") from None
    return Credentials(username=username, password=password, identity_token=config.identitytoken,
                       registry_token=config.registrytoken)


def registry_domain(server_address: str) -> str:
    """``https://index.docker.io/v1/`` -> docker.io; ``http://localhost:5000/`` -> localhost:5000."""
    address = server_address.strip() or DOCKER_IO
    if address in _HUB_ADDRESSES:
        return DOCKER_IO
    address = address.removeprefix("https://").removeprefix("http://")
    return address.split("/", 1)[0]
