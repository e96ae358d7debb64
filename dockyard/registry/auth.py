"""Accounts, access policy and the Docker token protocol.

Accounts come from an htpasswd file (bcrypt entries, as ``htpasswd -B`` writes them). With no
accounts the hub is open, as the CNCF registry is without auth. With accounts every /v2/
request carries a Bearer token that the token endpoint issued (the Docker token spec): a JWT
signed with HS256 by a key only this hub holds (it is both issuer and verifier), naming the
actions granted per repository. Policy:

- a repository's namespace is its first path component: a user owns the namespace named after
  them and the organisations that list them as members (config ``organisations``);
- owners (and ``admins``) may pull, push and delete; anyone, anonymous included, may pull a
  public repository; a repository is private when its namespace is listed in ``private`` or
  its owner marked it private.

Refresh tokens (OAuth2 ``access_type=offline``, docker's "identity token") are opaque random
strings; the hub keeps only their SHA-256, with the user and a fingerprint of the user's
password hash, under ``auth/refresh/``. A refresh token stops working when its user leaves the
htpasswd file or changes password (the file is read again when it changes), after
``REFRESH_TTL``, or when revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.storage.fsutil import write_atomic

TOKEN_TTL = 300
REFRESH_TTL = 90 * 24 * 3600
ACTIONS = ("pull", "push", "delete")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_htpasswd(path: Path) -> dict[str, bytes]:
    return parse_htpasswd(path.read_text(), path)


def parse_htpasswd(text: str, path: Path) -> dict[str, bytes]:
    """user -> bcrypt hash. Lines that are not bcrypt ($2y$/$2a$/$2b$) are refused loudly,
    as distribution does: a weaker hash must not silently grant access."""
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
            raise ValueError(f"{path}:{number}: only bcrypt entries are supported (htpasswd -B)")
        users[user] = hashed.encode()
    return users


@dataclass(frozen=True)
class Access:
    type: str
    name: str
    actions: tuple[str, ...]


def parse_scope(scope: str) -> Access | None:
    """``repository:<name>:<actions>`` (the name may contain ``:`` for a port only in type)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return Access(kind, name, tuple(a for a in actions.split(",") if a))


@dataclass
class Policy:
    users: dict[str, bytes] = field(default_factory=dict)
    organisations: dict[str, list[str]] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    htpasswd: Path | None = None  # read again when it changes (passwords changed, users removed)
    _htpasswd_digest: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the htpasswd file again if it changed since the last read (by content: a file
        rewritten within one mtime tick at the same size is still seen). A broken edit keeps
        the accounts as they were (refusing everyone would lock the owners out of their hub)."""
        if self.htpasswd is None:
            return
        try:
            content = self.htpasswd.read_bytes()
        except OSError:
            if not self._htpasswd_digest:
                raise
            return  # moved away mid-edit: keep what was read
        digest = hashlib.sha256(content).hexdigest()
        if digest != self._htpasswd_digest:
            try:
                self.users = parse_htpasswd(content.decode(errors="replace"), self.htpasswd)
            except ValueError:
                if not self._htpasswd_digest:
                    raise
                return
            self._htpasswd_digest = digest

    @property
    def open(self) -> bool:
        return not self.users

    def fingerprint(self, user: str) -> str:
        """Changes when the user's password does; "" for no such user."""
        hashed = self.users.get(user)
        return hashlib.sha256(hashed).hexdigest() if hashed is not None else ""

    def check_password(self, user: str, password: str) -> bool:
        import bcrypt  # only hubs with accounts pay for it

        hashed = self.users.get(user)
        if hashed is None:
            return False
        hashed = b"$2b$" + hashed[4:] if hashed.startswith(b"$2y$") else hashed
        try:
            return bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False

    def owns(self, user: str, name: str) -> bool:
        if not user:
            return False
        namespace = name.split("/")[0]
        return user in self.admins or namespace == user or user in self.organisations.get(namespace, [])

    def is_private(self, name: str, marked_private: bool) -> bool:
        return marked_private or name.split("/")[0] in self.private

    def granted(self, user: str, access: Access, marked_private: bool) -> tuple[str, ...]:
        if self.open:
            return access.actions
        if access.type == "registry":
            return access.actions if access.name == "catalog" and user in self.admins else ()
        if access.type != "repository":
            return ()
        if self.owns(user, access.name):
            return tuple(a for a in access.actions if a in ACTIONS or a == "*")
        if "pull" in access.actions and not self.is_private(access.name, marked_private):
            return ("pull",)
        return ()


class TokenIssuer:
    def __init__(self, key_path: Path, service: str) -> None:
        self.service = service
        key_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._key = key_path.read_bytes()
        except FileNotFoundError:
            self._key = secrets.token_bytes(32)
            write_atomic(key_path, self._key)
            os.chmod(key_path, 0o600)

    def issue(self, user: str, access: list[Access]) -> tuple[str, int, float]:
        now = int(time.time())
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = _b64(json.dumps({
            "iss": self.service, "sub": user, "aud": self.service, "iat": now, "nbf": now - 5,
            "exp": now + TOKEN_TTL, "jti": secrets.token_hex(8),
            "access": [{"type": a.type, "name": a.name, "actions": list(a.actions)} for a in access],
        }).encode())
        signature = hmac.new(self._key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
        return f"{header}.{claims}.{_b64(signature)}", TOKEN_TTL, now

    def verify(self, token: str) -> dict | None:
        """The claims of a token this hub signed and that is current; None otherwise."""
        try:
            header, claims, signature = token.split(".")
            expected = hmac.new(self._key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            if json.loads(_unb64(header)).get("alg") != "HS256":
                return None
            body = json.loads(_unb64(claims))
        except (ValueError, TypeError):
            return None
        now = time.time()
        if body.get("aud") != self.service or not body.get("nbf", 0) <= now < body.get("exp", 0):
            return None
        return body


@dataclass
class RefreshRecord:
    user: str
    client_id: str
    fingerprint: str
    issued: int


class RefreshTokens:
    """Refresh tokens kept as ``<dir>/<sha256 of the token>`` (JSON RefreshRecord)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, token: str) -> Path:
        return self.directory / hashlib.sha256(token.encode()).hexdigest()

    def issue(self, policy: Policy, user: str, client_id: str) -> str:
        token = secrets.token_urlsafe(32)
        record = RefreshRecord(user, client_id, policy.fingerprint(user), int(time.time()))
        write_atomic(self._path(token), json.dumps(record.__dict__).encode())
        os.chmod(self._path(token), 0o600)
        return token

    def redeem(self, policy: Policy, token: str) -> str | None:
        """The user a current refresh token stands for; None (and the record removed when it
        can never work again) otherwise."""
        if not token or len(token) > 512:
            return None
        path = self._path(token)
        try:
            record = RefreshRecord(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        if not self._valid(policy, record):
            path.unlink(missing_ok=True)
            return None
        return record.user

    @staticmethod
    def _valid(policy: Policy, record: RefreshRecord) -> bool:
        return bool(record.fingerprint) and record.fingerprint == policy.fingerprint(record.user) and \
            time.time() - record.issued < REFRESH_TTL

    def revoke(self, token: str) -> None:
        self._path(token).unlink(missing_ok=True)

    def purge(self, policy: Policy, user: str | None = None) -> int:
        """Remove every record that can no longer work (or, with ``user``, all of that user's);
        returns how many went."""
        removed = 0
        for entry in os.scandir(self.directory):
            try:
                record = RefreshRecord(**json.loads(Path(entry.path).read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if record.user == user or not self._valid(policy, record):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed


def allows(claims: dict, kind: str, name: str, action: str) -> bool:
    for entry in claims.get("access", []):
        if entry.get("type") == kind and entry.get("name") == name and \
                (action in entry.get("actions", []) or "*" in entry.get("actions", [])):
            return True
    return False
