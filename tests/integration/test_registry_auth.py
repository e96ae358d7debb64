"""The hub's auth over HTTP: Bearer challenges, the token endpoint, scopes per repository,
public and private repositories, organisations; and TLS with a config file."""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from tests.integration import registry_hub as rh
from tests.integration.distribution_registry import make_certs


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def hub():
    import bcrypt

    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}"
             for u, p in (("alice", "a-pw"), ("bob", "b-pw"), ("carol", "c-pw"))]
    # htpasswd -B writes $2y$; accept it as distribution does
    lines[2] = lines[2].replace("$2b$", "$2y$", 1)
    (root / "htpasswd").write_text("\n".join(lines) + "\n")
    h = rh.start(root=root, config={"htpasswd": str(root / "htpasswd"), "organisations": {"team": ["bob"]},
                                    "private": ["secret"], "admins": ["carol"]})
    try:
        yield h
    finally:
        rh.stop(h)


def token(hub, scope: str = "", auth: dict | None = None) -> str:
    query = urllib.parse.urlencode({"service": "dockyard-hub", **({"scope": scope} if scope else {})})
    reply = hub.request("GET", f"/token?{query}", headers=auth or {})
    assert reply.status == 200, reply.body
    return reply.json()["token"]


def claims(value: str) -> dict:
    body = value.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def push_blob(hub, repo: str, data: bytes, auth: dict[str, str]) -> int:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return hub.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data, auth).status


def test_challenge_and_token(hub):
    reply = hub.request("GET", "/v2/")
    assert reply.status == 401 and reply.code == "UNAUTHORIZED"
    assert reply.headers["www-authenticate"] == \
        f'Bearer realm="http://{hub.host}/token",service="dockyard-hub"'
    scoped = hub.request("POST", "/v2/alice/app/blobs/uploads/")
    assert scoped.headers["www-authenticate"].endswith(',scope="repository:alice/app:pull,push"')
    assert hub.request("GET", "/token?service=dockyard-hub", headers=basic("alice", "nope")).status == 401
    assert hub.request("GET", "/token?service=dockyard-hub", headers=basic("nobody", "x")).status == 401
    value = token(hub, "repository:alice/app:pull,push", basic("alice", "a-pw"))
    assert claims(value)["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    assert hub.request("GET", "/v2/", headers=bearer(value)).status == 200
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    assert hub.request("GET", "/v2/", headers=bearer(forged)).status == 401


def test_scopes_namespaces_and_organisations(hub):
    alice = bearer(token(hub, "repository:alice/app:pull,push", basic("alice", "a-pw")))
    assert push_blob(hub, "alice/app", b"mine", alice) == 201
    # a token for one repository does not open another
    assert push_blob(hub, "alice/other", b"x", alice) == 403
    # alice asking for bob's namespace gets pull only, and push is denied with the challenge
    into_bob = token(hub, "repository:bob/app:pull,push", basic("alice", "a-pw"))
    assert claims(into_bob)["access"][0]["actions"] == ["pull"]
    denied = hub.request("POST", "/v2/bob/app/blobs/uploads/", headers=bearer(into_bob))
    assert (denied.status, denied.code) == (403, "DENIED")
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    # bob is a member of the organisation "team"
    team = bearer(token(hub, "repository:team/tool:pull,push,delete", basic("bob", "b-pw")))
    assert push_blob(hub, "team/tool", b"org", team) == 201
    # carol is an admin: anything, the catalog included
    admin = token(hub, "registry:catalog:*", basic("carol", "c-pw"))
    assert hub.request("GET", "/v2/_catalog", headers=bearer(admin)).status == 200
    assert hub.request("GET", "/v2/_catalog", headers=alice).status == 403


def test_anonymous_pull_public_not_private(hub):
    alice = bearer(token(hub, "repository:alice/pub:pull,push", basic("alice", "a-pw")))
    assert push_blob(hub, "alice/pub", b"public bytes", alice) == 201
    digest = "sha256:" + hashlib.sha256(b"public bytes").hexdigest()
    anonymous = token(hub, "repository:alice/pub:pull,push")
    assert claims(anonymous)["access"][0]["actions"] == ["pull"]
    assert hub.request("GET", f"/v2/alice/pub/blobs/{digest}", headers=bearer(anonymous)).body == b"public bytes"
    assert push_blob(hub, "alice/pub", b"anon", bearer(anonymous)) == 403
    # a namespace listed as private: no anonymous pull
    assert claims(token(hub, "repository:secret/x:pull"))["access"][0]["actions"] == []
    # marked private by its owner
    hub.request("PATCH", "/api/repositories/alice/pub", json.dumps({"private": True}).encode(),
                {"Content-Type": "application/json", **basic("alice", "a-pw")})
    assert claims(token(hub, "repository:alice/pub:pull"))["access"][0]["actions"] == []
    assert hub.request("PATCH", "/api/repositories/alice/pub", b'{"private": false}',
                       {"Content-Type": "application/json", **basic("bob", "b-pw")}).status == 403


def test_tls_and_config_file():
    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    certs = make_certs(root / "certs")
    h = rh.start("--tls-cert", str(certs["server.crt"]), "--tls-key", str(certs["server.key"]), root=root,
                 config={"service": "tls-hub", "max_manifest": 1000})
    try:
        assert h.request("GET", "/v2/").status == 200
        big = b'{"schemaVersion": 2, "x": "' + b"y" * 2000 + b'"}'
        assert h.request("PUT", "/v2/a/manifests/t", big).status == 413
    finally:
        rh.stop(h)


def test_bad_config_refused():
    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    with pytest.raises(RuntimeError, match="unknown keys"):
        rh.start(root=root, config={"adr": "typo"})
