"""Docker Engine API shapes of the registry routes: the JSON progress stream of pull and
push (``jsonmessage.JSONMessage``), ``POST /auth``, ``GET /images/search`` and
``GET /distribution/{name}/json``.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ProgressDetail(msgspec.Struct, omit_defaults=True):
    current: int | None = None
    total: int | None = None
    start: int | None = None  # unix seconds, for the client's time-left estimate


class JSONMessage(msgspec.Struct, omit_defaults=True):
    """One line of a pull/push stream. Layer lines carry ``id`` and ``progressDetail`` (``{}`` when
    there is no byte count: the docker CLI keys its per-layer bars on those)."""
    status: str | None = None
    progressDetail: ProgressDetail | None = None
    progress: str | None = None
    id: str | None = None
    aux: dict[str, Any] | None = None
    errorDetail: dict[str, Any] | None = None
    error: str | None = None


class AuthConfig(msgspec.Struct, omit_defaults=True):
    """``X-Registry-Auth`` (base64url JSON) and the body of ``POST /auth``."""
    username: str = ""
    password: str = ""
    auth: str = ""  # base64("user:password"), as config.json stores it
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


class AuthResponse(msgspec.Struct, rename="pascal", omit_defaults=True):
    status: str
    identity_token: str = ""


class SearchResult(msgspec.Struct):
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


class DistributionDescriptor(msgspec.Struct, rename="camel", omit_defaults=True):
    media_type: str
    digest: str
    size: int


class DistributionPlatform(msgspec.Struct, omit_defaults=True):
    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")
    os_features: list[str] | None = msgspec.field(default=None, name="os.features")


class DistributionInspect(msgspec.Struct, rename="pascal"):
    descriptor: DistributionDescriptor
    platforms: list[DistributionPlatform]
