"""Docker's image reference grammar and normalization (distribution/reference).

``busybox`` -> ``docker.io/library/busybox:latest`` for storage; the familiar form
(``busybox:latest``, ``localhost:5000/a/b:t``) for display. Errors use Docker's words.

Grammar::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]      (first component, if it has "." or ":" or is "localhost")
    component  := [a-z0-9]+ (([._]|__|-+) [a-z0-9]+)*
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex{32,}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard import errdefs

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"

_REFERENCE = re.compile(rf"^((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?$")
# Same shape, but components may hold capitals: only to tell "must be lowercase" apart.
_ANY_CASE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH.replace('a-z0-9', 'a-zA-Z0-9')})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")


@dataclass(frozen=True)
class Reference:
    """A normalized reference: ``domain/path`` plus an optional tag and/or digest."""
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, normalized."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        """The fully normalized form stored in ``refs``: ``docker.io/library/busybox:latest``."""
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def familiar_name(self) -> str:
        """``busybox``, ``user/app``, ``localhost:5000/a/b``: what Docker shows."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_PREFIX):]
            return self.path
        return self.name

    def familiar(self) -> str:
        """``busybox:latest``, ``busybox@sha256:...``."""
        out = self.familiar_name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str) -> Reference:
    """Parse and normalize like ``reference.ParseNormalizedNamed``; no default tag added."""
    if _HEX64.match(text):
        raise errdefs.InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    match = _REFERENCE.match(text)
    if match is None:
        loose = _ANY_CASE.match(text)
        if loose is not None:
            _, path = _split_domain(loose.group(1))
            raise errdefs.InvalidParameter(
                f"invalid reference format: repository name ({path}) must be lowercase")
        raise errdefs.InvalidParameter("invalid reference format")
    name, tag, digest = match.groups()
    if len(name) > NAME_TOTAL_MAX:
        raise errdefs.InvalidParameter(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_MAX} characters")
    domain, path = _split_domain(name)
    if any(c.isupper() for c in path):
        raise errdefs.InvalidParameter(
            f"invalid reference format: repository name ({path}) must be lowercase")
    return Reference(domain, path, tag, digest)


def parse_tagged(text: str) -> Reference:
    """Parse and add ``:latest`` when neither tag nor digest is given (``TagNameOnly``)."""
    ref = parse(text)
    if ref.tag is None and ref.digest is None:
        ref = ref.with_tag(DEFAULT_TAG)
    return ref


def parse_repo_tag(repo: str, tag: str) -> Reference:
    """``POST /images/{name}/tag?repo=&tag=`` and import's repo/tag: a name plus a separate tag."""
    ref = parse(repo)
    if ref.digest is not None:
        raise errdefs.InvalidParameter("refusing to create a tag with a digest reference")
    if tag:
        if ref.tag is not None:
            raise errdefs.InvalidParameter("invalid reference format")
        if not _TAG_ONLY.match(tag):
            raise errdefs.InvalidParameter(f"invalid tag format: {tag}")
        ref = ref.with_tag(tag)
    elif ref.tag is None:
        ref = ref.with_tag(DEFAULT_TAG)
    return ref


def familiar(stored: str) -> str:
    """A stored normalized name back to the form Docker shows."""
    return parse(stored).familiar()
