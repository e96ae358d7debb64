"""The hub's OAuth2 token endpoint (distribution spec/auth/oauth) with ``requests``: password and
refresh-token grants, offline access, RFC 6749 errors, and refresh tokens that stop working when
the password changes, the account goes or the holder revokes it (RFC 7009); then docker login through dockyardd, whose identity
token (a refresh token) docker keeps in config.json and dockyardd redeems with the POST grant."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.integration import registry_hub as rh


def htpasswd_line(user: str, password: str) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}"


@pytest.fixture
def hub():
    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    (root / "htpasswd").write_text(htpasswd_line("alice", "a-pw") + "\n" + htpasswd_line("bob", "b-pw") + "\n")
    with rh.running("--htpasswd", str(root / "htpasswd"), root=root) as h:
        yield h


def post(hub, **form) -> requests.Response:
    return requests.post(f"http://{hub.host}/token", data=form, timeout=30)


def claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def rewrite_htpasswd(hub, *lines: str) -> None:
    """Change the accounts file as an admin would (the hub reads it again when it changed)."""
    (hub.root / "htpasswd").write_text("".join(f"{line}\n" for line in lines))


def test_password_grant_and_refresh_grant(hub):
    base = {"service": "dockyard-hub", "client_id": "tests"}
    got = post(hub, grant_type="password", username="alice", password="a-pw", access_type="offline",
               scope="repository:alice/app:pull,push repository:bob/app:push", **base)
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    body = got.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "issued_at", "scope", "refresh_token"}
    assert body["scope"] == "repository:alice/app:pull,push"  # nothing on bob's repository
    assert claims(body["access_token"])["sub"] == "alice"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert requests.get(f"http://{hub.host}/v2/", headers=auth, timeout=30).status_code == 200
    # no refresh token unless offline access is asked for
    assert "refresh_token" not in post(hub, grant_type="password", username="alice", password="a-pw", **base).json()

    refreshed = post(hub, grant_type="refresh_token", refresh_token=body["refresh_token"],
                     scope="repository:alice/other:pull", **base)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "repository:alice/other:pull"
    assert "refresh_token" not in refreshed.json()
    again = post(hub, grant_type="refresh_token", refresh_token=body["refresh_token"], access_type="offline", **base)
    assert again.json()["refresh_token"] == body["refresh_token"]
    # kept hashed: the token itself is nowhere on the hub's disk
    stored = list((hub.data / "auth" / "refresh").iterdir())
    assert len(stored) == 1 and body["refresh_token"] not in stored[0].read_text()
    assert body["refresh_token"] not in stored[0].name


@pytest.mark.parametrize("form, error", [
    ({"grant_type": "password", "username": "alice", "password": "wrong"}, "invalid_grant"),
    ({"grant_type": "password", "username": "nobody", "password": "x"}, "invalid_grant"),
    ({"grant_type": "password", "username": "alice"}, "invalid_request"),
    ({"grant_type": "refresh_token", "refresh_token": "made-up"}, "invalid_grant"),
    ({"grant_type": "refresh_token"}, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
    ({"username": "alice", "password": "a-pw"}, "invalid_request"),
])
def test_errors_as_rfc6749(hub, form, error):
    reply = post(hub, service="dockyard-hub", client_id="tests", **form)
    assert reply.status_code == 400 and reply.json()["error"] == error, reply.text
    assert reply.json()["error_description"]


def test_missing_client_id_service_and_wrong_body(hub):
    good = {"grant_type": "password", "username": "alice", "password": "a-pw"}
    assert post(hub, service="dockyard-hub", **good).json()["error"] == "invalid_request"
    assert post(hub, client_id="x", **good).json()["error"] == "invalid_request"
    assert post(hub, client_id="x", service="another-hub", **good).json()["error"] == "invalid_request"
    as_json = requests.post(f"http://{hub.host}/token", json={"service": "dockyard-hub", "client_id": "x", **good},
                            timeout=30)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_refresh_tokens_revoked_by_password_change_and_account_removal(hub):
    base = {"service": "dockyard-hub", "client_id": "tests", "access_type": "offline"}
    alice = post(hub, grant_type="password", username="alice", password="a-pw", **base).json()["refresh_token"]
    bob = post(hub, grant_type="password", username="bob", password="b-pw", **base).json()["refresh_token"]
    # GET with offline_token=true (what dockerd and dockyardd send at docker login) also issues one
    got = requests.get(f"http://{hub.host}/token", params={"service": "dockyard-hub", "offline_token": "true",
                                                            "client_id": "docker"}, auth=("bob", "b-pw"), timeout=30)
    bob_get = got.json()["refresh_token"]
    assert got.json()["token"] == got.json()["access_token"]
    anonymous = requests.get(f"http://{hub.host}/token", params={"service": "dockyard-hub", "offline_token": "true"},
                             timeout=30)
    assert "refresh_token" not in anonymous.json()
    for token in (alice, bob, bob_get):
        assert post(hub, grant_type="refresh_token", refresh_token=token, **base).status_code == 200

    bob_line = (hub.root / "htpasswd").read_text().splitlines()[1]  # bob's entry stays as it was
    rewrite_htpasswd(hub, htpasswd_line("alice", "new-pw"), bob_line)
    assert post(hub, grant_type="refresh_token", refresh_token=alice, **base).json()["error"] == "invalid_grant"
    assert post(hub, grant_type="password", username="alice", password="new-pw", **base).status_code == 200
    assert post(hub, grant_type="refresh_token", refresh_token=bob, **base).status_code == 200

    # revoked by its holder (RFC 7009)
    revoked = requests.post(f"http://{hub.host}/token/revoke", data={"token": bob_get}, timeout=30)
    assert revoked.status_code == 200
    assert post(hub, grant_type="refresh_token", refresh_token=bob_get, **base).json()["error"] == "invalid_grant"
    assert post(hub, grant_type="refresh_token", refresh_token=bob, **base).status_code == 200

    rewrite_htpasswd(hub, htpasswd_line("alice", "new-pw"))
    assert post(hub, grant_type="refresh_token", refresh_token=bob, **base).json()["error"] == "invalid_grant"


def test_docker_login_keeps_an_identity_token(dockyardd, hub):
    """docker 28's login goes through the daemon (POST /auth); dockyardd asks the hub's token
    endpoint for offline access and answers IdentityToken, which docker stores in config.json
    as ``identitytoken`` instead of the password; a push then sends it back and dockyardd trades
    it for access tokens with the OAuth2 refresh_token grant."""
    d = dockyardd
    name, other = f"{hub.host}/alice/busybox:1", f"{hub.host}/alice/other:1"
    login = d.docker("login", "-u", "alice", "--password-stdin", hub.host, input=b"a-pw")
    try:
        assert login.returncode == 0, login.stderr.decode() + hub.log()
        config = json.loads((Path(d.env["DOCKER_CONFIG"]) / "config.json").read_text())
        entry = config["auths"][hub.host]
        assert entry["identitytoken"] and "a-pw" not in json.dumps(config)
        assert base64.b64decode(entry["auth"]).decode() == "alice:"
        d.docker("tag", "busybox", name, check=True)
        push = d.docker("push", name, timeout=120)
        assert push.returncode == 0, push.stderr.decode() + hub.log()
        assert '"method": "POST", "path": "/token"' in hub.log()
        # the password changes: the stored identity token no longer buys tokens (an access token
        # already issued lives out its 5 minutes, so push where none was issued yet)
        rewrite_htpasswd(hub, htpasswd_line("alice", "changed"))
        d.docker("tag", "busybox", other, check=True)
        refused = d.docker("push", other, timeout=120)
        assert refused.returncode != 0 and "refresh token is invalid" in refused.stderr.decode(), \
            refused.stderr.decode()
    finally:
        d.docker("logout", hub.host)
        d.docker("rmi", name, other)
