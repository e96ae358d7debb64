"""The token endpoint ``/token``: the Docker token spec's GET and its OAuth2 POST.

GET (distribution spec/auth/token): Basic credentials or none, ``service``, ``scope`` (repeated);
``offline_token=true`` with credentials also returns a ``refresh_token``, which is what
dockerd and dockyardd ask for at ``docker login`` and hand back to docker as its identity token.

POST (spec/auth/oauth, RFC 6749): a form with ``grant_type=password`` (``username``,
``password``) or ``grant_type=refresh_token`` (``refresh_token``), plus ``service``,
``client_id``, ``scope`` (space-separated) and ``access_type=offline`` to get a refresh token.
Errors are RFC 6749 section 5.2 bodies: 400 ``{"error": "invalid_request" | "invalid_grant" |
"unsupported_grant_type", "error_description": ...}``.

Both answer ``access_token`` (GET also ``token``, POST also ``token_type``), ``expires_in``,
``issued_at``, ``scope`` (what was granted, as scope strings) and ``refresh_token`` when one
was asked for.

``POST /token/revoke`` (RFC 7009): a form with ``token=<refresh token>`` ends that refresh
token; 200 whether or not it was known, as the RFC says.
"""

from __future__ import annotations

import asyncio
import base64
import time

from aiohttp import web

from dockyard.registry import auth, errors
from dockyard.registry.keys import CONFIG, ISSUER, POLICY, REFRESH, STORE
from dockyard.registry.store import check_name

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _blocking(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def basic_user(request: web.Request) -> tuple[str, bool]:
    """(user, ok) from a Basic Authorization header; ("", True) when there is none."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return "", True
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return "", False
    policy = request.app[POLICY]
    policy.reload()
    return user, policy.check_password(user, password)


def _grant(request: web.Request, user: str, scopes: list[str]) -> list[auth.Access]:
    policy, store = request.app[POLICY], request.app[STORE]
    granted = []
    for scope in scopes:
        for part in scope.split(" "):
            access = auth.parse_scope(part)
            if access is None:
                continue
            private = False
            if access.type == "repository":
                try:
                    check_name(access.name)
                except errors.RegistryError:
                    continue
                private = store.meta(access.name).private
            granted.append(auth.Access(access.type, access.name, policy.granted(user, access, private)))
    return granted


def _answer(request: web.Request, user: str, granted: list[auth.Access], refresh: str,
            legacy: bool) -> web.Response:
    value, ttl, issued = request.app[ISSUER].issue(user, granted)
    body: dict = {"access_token": value, "expires_in": ttl,
                  "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued)),
                  "scope": " ".join(f"{a.type}:{a.name}:{','.join(a.actions)}" for a in granted if a.actions)}
    if legacy:
        body["token"] = value
    else:
        body["token_type"] = "Bearer"  # RFC 6749 section 5.1 requires it
    if refresh:
        body["refresh_token"] = refresh
    return web.json_response(body, headers=_NO_STORE)


async def get_token(request: web.Request) -> web.Response:
    user, ok = await _blocking(basic_user, request)
    if not ok:
        return web.json_response({"details": "incorrect username or password"}, status=401)
    granted = await _blocking(_grant, request, user, request.query.getall("scope", []))
    refresh = ""
    if user and request.query.get("offline_token") == "true":
        refresh = await _blocking(request.app[REFRESH].issue, request.app[POLICY], user,
                                  request.query.get("client_id", ""))
    return _answer(request, user, granted, refresh, legacy=True)


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400, headers=_NO_STORE)


async def post_token(request: web.Request) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error("invalid_request", "the body must be application/x-www-form-urlencoded")
    form = await request.post()

    def param(key: str) -> str:
        value = form.get(key, "")
        return value if isinstance(value, str) else ""

    grant_type, service, client_id = param("grant_type"), param("service"), param("client_id")
    for key, value in (("grant_type", grant_type), ("service", service), ("client_id", client_id)):
        if not value:
            return _oauth_error("invalid_request", f"missing {key}")
    if service != request.app[CONFIG].service:
        return _oauth_error("invalid_request", f"unknown service {service!r}")
    policy, refresh_tokens = request.app[POLICY], request.app[REFRESH]
    refresh = ""
    if grant_type == "password":
        user, password = param("username"), param("password")
        if not user or not password:
            return _oauth_error("invalid_request", "grant_type=password needs username and password")

        def check() -> bool:
            policy.reload()
            return policy.check_password(user, password)
        if not await _blocking(check):
            return _oauth_error("invalid_grant", "incorrect username or password")
        if param("access_type") == "offline":
            refresh = await _blocking(refresh_tokens.issue, policy, user, client_id)
    elif grant_type == "refresh_token":
        refresh = param("refresh_token")
        if not refresh:
            return _oauth_error("invalid_request", "grant_type=refresh_token needs refresh_token")

        def redeem() -> str | None:
            policy.reload()
            return refresh_tokens.redeem(policy, refresh)
        found = await _blocking(redeem)
        if found is None:
            return _oauth_error("invalid_grant", "refresh token is invalid, expired or revoked")
        user = found
        if param("access_type") != "offline":
            refresh = ""  # the client keeps the one it has; it is only echoed when asked for
    else:
        return _oauth_error("unsupported_grant_type", f"unsupported grant_type {grant_type!r}")
    granted = await _blocking(_grant, request, user, [param("scope")] if param("scope") else [])
    return _answer(request, user, granted, refresh, legacy=False)


async def revoke_token(request: web.Request) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error("invalid_request", "the body must be application/x-www-form-urlencoded")
    token = (await request.post()).get("token", "")
    if not isinstance(token, str) or not token:
        return _oauth_error("invalid_request", "missing token")
    await _blocking(request.app[REFRESH].revoke, token)
    return web.json_response({}, headers=_NO_STORE)
