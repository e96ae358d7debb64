"""Debian's docker-registry (the CNCF distribution registry) for tests, started by PID.

Each instance listens on 127.0.0.1:<free port> with its storage in a temp dir and optional
htpasswd basic auth; ``stop`` kills exactly the process it started and removes the dir.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.integration.ports import free_port, wait_listening

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def available() -> bool:
    return os.path.exists(REGISTRY)


@dataclass
class Registry:
    root: Path
    port: int
    proc: subprocess.Popen

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return (self.root / "registry.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, by openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=dockyard-test-ca")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {name: directory / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class TokenServer:
    """A Docker token service (the token spec) in a thread: basic-auth checked against ``users``,
    JWTs (RS256, ``x5c`` header) signed by openssl with a self-signed key the registry trusts.
    Anonymous clients get pull access to ``public/`` repositories only."""

    def __init__(self, users: dict[str, str], root: Path) -> None:
        self.users = users
        self.requests: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = root / "token.key", root / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append(self.path)
                user = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(user) != password:
                        body = b'{"details":"incorrect username or password"}'
                        self.send_response(401)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    allowed = actions.split(",") if user else (["pull"] if name.startswith("public/") else [])
                    access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",")
                                                                           if a in allowed]})
                body = json.dumps({"token": server.sign(user, query.get("service", [""])[0], access),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def sign(self, subject: str, service: str, access: list[dict]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")
        now = int(time.time())
        header = b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}).encode())
        claims = b64(json.dumps({"iss": "dockyard-test", "sub": subject, "aud": service, "exp": now + 300,
                                 "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                                 "access": access}).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=f"{header}.{claims}".encode(), check=True, capture_output=True).stdout
        return f"{header}.{claims}.{b64(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start(htpasswd: tuple[str, str] | None = None, tls: dict[str, Path] | None = None,
          client_certs: bool = False, token: TokenServer | None = None) -> Registry:
    root = Path(tempfile.mkdtemp(prefix="dyreg-"))
    port = free_port()
    auth = ""
    if htpasswd is not None:
        user, password = htpasswd
        subprocess.run(["htpasswd", "-Bbc", str(root / "htpasswd"), user, password], check=True,
                       capture_output=True)
        auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {root / 'htpasswd'}\n"
    if token is not None:
        auth = (f"auth:\n  token:\n    realm: {token.realm}\n    service: dockyard-test-registry\n"
                f"    issuer: dockyard-test\n    rootcertbundle: {token.cert}\n")
    tls_config = ""
    if tls is not None:
        tls_config = f"  tls:\n    certificate: {tls['server.crt']}\n    key: {tls['server.key']}\n"
        if client_certs:
            tls_config += f"    clientcas:\n      - {tls['ca.crt']}\n"
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{tls_config}{auth}")
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    registry = Registry(root, port, proc)
    if wait_listening(proc, port, 15):
        return registry
    out = registry.log()
    stop(registry)
    raise RuntimeError(f"docker-registry did not start (exit status {proc.returncode}): {out}")


@contextmanager
def running(**options) -> Iterator[Registry]:
    """``start(**options)``, stopped (by PID) and its dir removed when the block ends."""
    registry = start(**options)
    try:
        yield registry
    finally:
        stop(registry)


def stop(registry: Registry) -> None:
    if registry.proc.poll() is None:
        registry.proc.send_signal(signal.SIGTERM)
        try:
            registry.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            registry.proc.kill()
            registry.proc.wait()
    shutil.rmtree(registry.root, ignore_errors=True)
