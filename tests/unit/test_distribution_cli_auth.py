"""The CLI's credential store honours docker credential helpers (credsStore / credHelpers)."""

from __future__ import annotations

import json
import os

from dockyard.cli import auth

_HELPER = """#!/bin/sh
action="$1"; input=$(cat)
store="{store}"
[ -f "$store" ] || echo '{{}}' > "$store"
case "$action" in
  store) {py} -c 'import json,sys; s=json.load(open(sys.argv[1])); d=json.loads(sys.argv[2]); s[d["ServerURL"]]=d; json.dump(s,open(sys.argv[1],"w"))' "$store" "$input" ;;
  get) {py} -c 'import json,sys
s=json.load(open(sys.argv[1]))
if sys.argv[2] not in s: print("credentials not found in native keychain"); sys.exit(1)
print(json.dumps(s[sys.argv[2]]))' "$store" "$input" ;;
  erase) {py} -c 'import json,sys; s=json.load(open(sys.argv[1])); s.pop(sys.argv[2],None); json.dump(s,open(sys.argv[1],"w"))' "$store" "$input" ;;
esac
"""


def test_credential_helper_keeps_the_secret(tmp_path, monkeypatch):
    import sys
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(_HELPER.format(store=tmp_path / "secrets.json", py=sys.executable))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    assert auth.store("reg.example.com", "alice", "s3cret") is False  # no plaintext: no warning
    assert json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"] == {"reg.example.com": {}}
    assert auth.credentials("reg.example.com") == {"username": "alice", "password": "s3cret",
                                                   "serveraddress": "reg.example.com"}
    auth.store("tok.example.com", "bob", "", identity_token="refresh-1")
    assert auth.credentials("tok.example.com")["identitytoken"] == "refresh-1"
    auth.forget("reg.example.com")
    assert auth.credentials("reg.example.com") == {}
    # a per-registry helper wins over credsStore; without one, the file holds the secret
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"credHelpers": {"other.io": "fake"}}))
    assert auth.store("plain.io", "carol", "pw") is True
    assert auth.credentials("plain.io")["password"] == "pw"
