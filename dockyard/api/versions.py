"""API version negotiation, as dockerd does it."""

from __future__ import annotations

from dockyard import errdefs

MIN_VERSION = "1.24"
MAX_VERSION = "1.50"  # what the docker CLI 28 asks for
VERSIONED_PATH = r"^/v(\d+\.\d+)(/.*)$"  # /vX.Y/<path>: the version, the path it prefixes


def parse(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")
        return int(major), int(minor)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid API version: {version!r}") from None


def check(version: str) -> None:
    """Raise Docker's error for a version outside what we serve."""
    v = parse(version)
    if v > parse(MAX_VERSION):
        raise errdefs.InvalidParameter(
            f"client version {version} is too new. Maximum supported API version is {MAX_VERSION}")
    if v < parse(MIN_VERSION):
        raise errdefs.InvalidParameter(
            f"client version {version} is too old. Minimum supported API version is {MIN_VERSION}, "
            "please upgrade your client to a newer version")


def at_least(version: str, other: str) -> bool:
    return parse(version) >= parse(other)
