"""The distribution spec's grammar for repository names, tags and digests.

Everything a client sends as a name or reference is checked here before it is used to build
a path, so a name can never climb out of the data directory (``..``, absolute paths, NULs
and backslashes all fail the grammar)."""

from __future__ import annotations

import re

# OCI distribution spec: <name> = [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# a digest with another (or unknown) algorithm is well-formed but unsupported
ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
MAX_NAME = 255


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def valid_digest(digest: str) -> bool:
    return DIGEST_RE.fullmatch(digest) is not None


def is_digest(reference: str) -> bool:
    """A reference that looks like a digest (of any algorithm) rather than a tag."""
    return ":" in reference
