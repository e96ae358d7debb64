"""Registry credentials the way the docker CLI keeps them: ``$DOCKER_CONFIG/config.json``
(default ``~/.docker``), ``auths.<server>.auth`` = base64("user:password"), and the
``X-Registry-Auth`` header (base64url JSON) sent with pull, push and search. The file is shared
with the docker CLI, so a login made with either works for both. Credential helpers are honoured
as docker does: ``credHelpers.<server>`` or else ``credsStore`` names a ``docker-credential-<name>``
program that keeps the secret (``get``/``store``/``erase``, JSON on stdin/stdout); the file then
only lists the server."""

from __future__ import annotations

import base64
import json
import os
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"


def config_path() -> str:
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")


def load_config() -> dict[str, Any]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ValueError(f"loading config file: {config_path()}: {e}") from None


def save_config(config: dict[str, Any]) -> None:
    """Atomically, with the file's mode kept private (it holds credentials)."""
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent="\t")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def registry_of(name: str) -> str:
    """The config key for the registry an image name lives in (Docker Hub's is the v1 index URL)."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") and first != "docker.io":
        return first
    return INDEX_SERVER


def _helper(config: dict[str, Any], server: str) -> str:
    return (config.get("credHelpers") or {}).get(server) or config.get("credsStore") or ""


def _run_helper(helper: str, action: str, payload: str) -> str:
    """One call of ``docker-credential-<helper>``; "" when it has no credentials for the server."""
    import subprocess

    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run([program, action], input=payload.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise ValueError(f'error getting credentials - err: exec: "{program}": executable file not found in '
                         "$PATH, out: ``") from None
    out = result.stdout.decode().strip()
    if result.returncode != 0:
        if "credentials not found" in out.lower():
            return ""
        raise ValueError(f"error {action} credentials - err: exit status {result.returncode}, out: `{out}`")
    return out


def credentials(server: str) -> dict[str, str]:
    config = load_config()
    helper = _helper(config, server)
    if helper:
        out = _run_helper(helper, "get", server)
        if not out:
            return {}
        doc = json.loads(out)
        if doc.get("Username") == "<token>":
            return {"identitytoken": doc.get("Secret", ""), "serveraddress": server}
        return {"username": doc.get("Username", ""), "password": doc.get("Secret", ""), "serveraddress": server}
    entry = (config.get("auths") or {}).get(server) or {}
    out: dict[str, str] = {}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        out = {"username": user, "password": password}
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    if out:
        out["serveraddress"] = server
    return out


def header(server: str) -> dict[str, str]:
    """``X-Registry-Auth`` for ``server``: the stored credentials, or ``{}`` when there are none."""
    creds = credentials(server)
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(creds, separators=(",", ":")).encode()).decode()}


def store(server: str, username: str, password: str, identity_token: str = "") -> bool:
    """Save a login; True when the secret went into the file itself (docker then warns)."""
    config = load_config()
    helper = _helper(config, server)
    if helper:
        user, secret = ("<token>", identity_token) if identity_token else (username, password)
        _run_helper(helper, "store", json.dumps({"ServerURL": server, "Username": user, "Secret": secret}))
        config.setdefault("auths", {})[server] = {}
        save_config(config)
        return False
    entry: dict[str, str] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    if identity_token:
        entry = {"auth": base64.b64encode(f"{username}:".encode()).decode(), "identitytoken": identity_token}
    config.setdefault("auths", {})[server] = entry
    save_config(config)
    return True


def forget(server: str) -> None:
    config = load_config()
    helper = _helper(config, server)
    if helper and _run_helper(helper, "get", server):
        _run_helper(helper, "erase", server)
    auths = config.setdefault("auths", {})
    if server in auths:
        del auths[server]
        save_config(config)
