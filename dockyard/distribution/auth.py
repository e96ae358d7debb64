"""Registry authentication: anonymous, HTTP basic, and bearer tokens (Docker's token spec).

A registry answers 401 with ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."``
(or ``Basic realm=...``). The client then asks the realm for a token for exactly the scopes
it needs (``repository:library/busybox:pull``), with the user's credentials as basic auth
when it has any (or an OAuth refresh token, for identity tokens), and sends
``Authorization: Bearer <token>``. Tokens are cached per (realm, service, scopes) until
shortly before they expire; a host's challenge is remembered so later requests authorize
up front instead of paying a 401 round trip each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass

from dockyard import errdefs
from dockyard.distribution.transport import Transport

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_DEFAULT_TOKEN_LIFETIME = 60  # seconds, the token spec's default when expires_in is absent
_MIN_TOKEN_LIFETIME = 60


@dataclass(frozen=True)
class Credentials:
    """What ``docker login`` stored or X-Registry-Auth carried; all empty = anonymous."""
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (docker login with a token service)
    registry_token: str = ""  # a bearer token given as-is

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """``WWW-Authenticate`` values: ``Bearer realm="x",service="y"``; several schemes may follow."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if match is None:
            break
        scheme = match.group(1).lower()
        rest = rest[match.end():]
        params: dict[str, str] = {}
        while True:
            p = _PARAM.match(rest)
            if p is None:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[p.end():].lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
                # another param, or the next scheme ("Basic realm=..., Bearer realm=...")
                if re.match(r"[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z]", rest) and not _PARAM.match(rest):
                    break
            else:
                break
        out.append(Challenge(scheme, params))
    return out


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Authorizer:
    """Turns challenges into Authorization headers; one per daemon (the token cache is shared)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._tokens: dict[tuple, tuple[str, float]] = {}  # (realm, service, scopes, credentials) -> (token, expiry)
        self._challenges: dict[str, Challenge] = {}  # origin -> its last challenge

    def challenge_of(self, origin: str) -> Challenge | None:
        with self._lock:
            return self._challenges.get(origin)

    def remember(self, origin: str, header: str) -> Challenge | None:
        """Record the host's challenge from a 401; the one we can answer (bearer first)."""
        challenges = parse_challenges(header)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) \
            or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is not None:
            with self._lock:
                self._challenges[origin] = chosen
        return chosen

    def header(self, challenge: Challenge, credentials: Credentials, scopes: tuple[str, ...],
               fresh: bool = False) -> str | None:
        """The Authorization header answering ``challenge``; ``fresh`` skips the token cache."""
        if challenge.scheme == "basic":
            if credentials.username or credentials.password:
                return basic_header(credentials.username, credentials.password)
            return None
        if credentials.registry_token:
            return "Bearer " + credentials.registry_token
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        if not realm:
            raise errdefs.Unauthorized("bearer challenge without a realm: cannot ask for a token")
        # keyed by the whole credentials: a wrong password must not reuse a token the right one got
        key = (realm, service, scopes, hashlib.sha256(repr(credentials).encode()).hexdigest())
        now = time.monotonic()
        if not fresh:
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and cached[1] > now:
                return "Bearer " + cached[0]
        token, lifetime, _ = self._fetch_token(realm, service, scopes, credentials)
        with self._lock:
            # renew a little early, so a token never expires between the check and its use
            self._tokens[key] = (token, now + max(lifetime, _MIN_TOKEN_LIFETIME) * 0.9)
        return "Bearer " + token

    def login(self, challenge: Challenge, credentials: Credentials) -> tuple[str | None, str]:
        """``docker login``: the Authorization header to prove the credentials with, and the
        identity token (an OAuth refresh token) a bearer token server issued for offline use,
        which clients store instead of the password ("" when it gave none)."""
        if challenge.scheme != "bearer" or credentials.registry_token:
            return self.header(challenge, credentials, (), fresh=True), ""
        realm = challenge.params.get("realm", "")
        if not realm:
            raise errdefs.Unauthorized("bearer challenge without a realm: cannot ask for a token")
        token, _, refresh = self._fetch_token(realm, challenge.params.get("service", ""), (), credentials,
                                              offline=True)
        return "Bearer " + token, refresh

    def _fetch_token(self, realm: str, service: str, scopes: tuple[str, ...],
                     credentials: Credentials, offline: bool = False) -> tuple[str, float, str]:
        if credentials.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "client_id": "docker", "service": service, "scope": " ".join(scopes)}
            response = self._transport.request(
                "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                urllib.parse.urlencode(form).encode())
        else:
            query = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            if offline and (credentials.username or credentials.password):
                query += [("offline_token", "true"), ("client_id", "docker")]
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
            headers = {}
            if credentials.username or credentials.password:
                headers["Authorization"] = basic_header(credentials.username, credentials.password)
            response = self._transport.request("GET", url, headers)
        body = response.body(1 << 20)
        if response.status in (401, 403):
            detail = _token_error(body) or "incorrect username or password"
            raise errdefs.Unauthorized(detail if detail.startswith("unauthorized") else f"unauthorized: {detail}")
        if response.status != 200:
            raise errdefs.Unavailable(
                f"token server {realm} answered {response.status} {response.reason}: {_token_error(body)}".rstrip(": "))
        try:
            doc = json.loads(body)
        except ValueError:
            raise errdefs.Unavailable(f"token server {realm} sent invalid JSON") from None
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise errdefs.Unavailable(f"token server {realm} sent no token")
        lifetime = doc.get("expires_in")
        refresh = doc.get("refresh_token") if isinstance(doc.get("refresh_token"), str) else ""
        return token, float(lifetime) if isinstance(lifetime, (int, float)) else _DEFAULT_TOKEN_LIFETIME, refresh


def _token_error(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f"{str(first.get('code', '')).lower().replace('_', ' ')}: {first.get('message', '')}".strip(": ")
        for key in ("details", "error_description", "error", "message"):
            if isinstance(doc.get(key), str):
                return doc[key]
    return ""
