"""The hub's accounts, policy, tokens and config, without a server."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import bcrypt
import pytest

from dockyard.registry import auth, config


@pytest.fixture
def tmp():
    d = Path(tempfile.mkdtemp(prefix="dyhub-auth-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_htpasswd_bcrypt_only(tmp):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp / "ok").write_text(f"# comment\nalice:{hashed}\nbob:{hashed.replace('$2b$', '$2y$', 1)}\n")
    policy = auth.Policy(users=auth.read_htpasswd(tmp / "ok"))
    assert policy.check_password("alice", "pw") and policy.check_password("bob", "pw")
    assert not policy.check_password("alice", "no") and not policy.check_password("eve", "pw")
    (tmp / "md5").write_text("alice:$apr1$abc$def\n")
    with pytest.raises(ValueError, match="only bcrypt"):
        auth.read_htpasswd(tmp / "md5")


def test_policy():
    policy = auth.Policy(users={"alice": b"x", "bob": b"x"}, organisations={"team": ["bob"]}, private=["secret"])
    def granted(user, name, actions, private=False):
        return policy.granted(user, auth.Access("repository", name, actions), private)
    assert granted("alice", "alice/app", ("pull", "push", "delete")) == ("pull", "push", "delete")
    assert granted("alice", "team/app", ("pull", "push")) == ("pull",)
    assert granted("bob", "team/app", ("pull", "push")) == ("pull", "push")
    assert granted("", "alice/app", ("pull", "push")) == ("pull",)
    assert granted("", "alice/app", ("pull",), private=True) == ()
    assert granted("bob", "secret/x", ("pull",)) == ()
    assert policy.granted("alice", auth.Access("registry", "catalog", ("*",)), False) == ()
    assert auth.Policy().granted("", auth.Access("repository", "a", ("push",)), False) == ("push",)  # open hub


def test_scope_parsing():
    assert auth.parse_scope("repository:a/b:pull,push") == auth.Access("repository", "a/b", ("pull", "push"))
    assert auth.parse_scope("registry:catalog:*") == auth.Access("registry", "catalog", ("*",))
    assert auth.parse_scope("nonsense") is None


def test_tokens(tmp):
    issuer = auth.TokenIssuer(tmp / "key", "svc")
    value, ttl, _ = issuer.issue("alice", [auth.Access("repository", "a", ("pull",))])
    claims = issuer.verify(value)
    assert claims["sub"] == "alice" and auth.allows(claims, "repository", "a", "pull")
    assert not auth.allows(claims, "repository", "a", "push")
    assert not auth.allows(claims, "repository", "b", "pull")
    assert auth.TokenIssuer(tmp / "key", "svc").verify(value) is not None  # the key survives a restart
    assert auth.TokenIssuer(tmp / "other", "svc").verify(value) is None
    assert auth.TokenIssuer(tmp / "key", "another-service").verify(value) is None
    header, body, sig = value.split(".")
    assert issuer.verify(f"{header}.{body}x.{sig}") is None
    assert issuer.verify("garbage") is None
    auth_ttl = auth.TOKEN_TTL
    try:
        auth.TOKEN_TTL = -10
        expired, _, _ = issuer.issue("alice", [])
    finally:
        auth.TOKEN_TTL = auth_ttl
    assert issuer.verify(expired) is None


def test_config_flags_over_file(tmp):
    (tmp / "c.json").write_text(json.dumps({"addr": "127.0.0.1:1", "service": "from-file", "private": ["p"]}))
    opts = argparse.Namespace(config=str(tmp / "c.json"), addr="127.0.0.1:2", data=None, tls_cert=None,
                              tls_key=None, htpasswd=None, service=None)
    loaded = config.load(opts)
    assert (loaded.addr, loaded.service, loaded.private) == ("127.0.0.1:2", "from-file", ["p"])
    assert loaded.host_port == ("127.0.0.1", 2)
    opts.tls_cert = "c.pem"
    with pytest.raises(ValueError, match="go together"):
        config.load(opts)


def test_refresh_tokens_stored_hashed_and_revocable(tmp, monkeypatch):
    def line(user: str, password: str) -> str:
        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"

    (tmp / "htpasswd").write_text(line("alice", "pw") + line("bob", "pw"))
    policy = auth.Policy(htpasswd=tmp / "htpasswd")
    tokens = auth.RefreshTokens(tmp / "refresh")
    alice, bob = tokens.issue(policy, "alice", "docker"), tokens.issue(policy, "bob", "docker")
    assert tokens.redeem(policy, alice) == "alice" and tokens.redeem(policy, bob) == "bob"
    assert all(alice not in p.read_text() and alice not in p.name for p in (tmp / "refresh").iterdir())
    assert tokens.redeem(policy, "not-issued") is None and tokens.redeem(policy, "") is None
    tokens.revoke(bob)
    assert tokens.redeem(policy, bob) is None
    # a broken edit of the accounts file keeps the accounts as they were
    (tmp / "htpasswd").write_text("alice:$apr1$md5$hash\n")
    policy.reload()
    assert tokens.redeem(policy, alice) == "alice"
    # alice's password changes: her token is dead, and purge removes its record
    (tmp / "htpasswd").write_text(line("alice", "new") + line("bob", "pw"))
    policy.reload()
    carol = tokens.issue(policy, "bob", "docker")
    assert tokens.purge(policy) == 1 and len(list((tmp / "refresh").iterdir())) == 1
    assert tokens.redeem(policy, alice) is None and tokens.redeem(policy, carol) == "bob"
    assert tokens.purge(policy, user="bob") == 1 and tokens.redeem(policy, carol) is None
    # and a token past REFRESH_TTL no longer works
    old = tokens.issue(policy, "bob", "docker")
    now = auth.time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.REFRESH_TTL + 1)
    assert tokens.redeem(policy, old) is None
