"""Debian's docker-registry (the CNCF distribution registry) for tests, started by PID.

Each instance listens on 127.0.0.1:<free port> with its storage in a temp dir and optional
htpasswd basic auth; ``stop`` kills exactly the process it started and removes the dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def available() -> bool:
    return os.path.exists(REGISTRY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start(htpasswd: tuple[str, str] | None = None, tls: dict[str, Path] | None = None,
          client_certs: bool = False) -> Registry:
    root = Path(tempfile.mkdtemp(prefix="dyreg-"))
    port = free_port()
    auth = ""
    if htpasswd is not None:
        user, password = htpasswd
        subprocess.run(["htpasswd", "-Bbc", str(root / "htpasswd"), user, password], check=True,
                       capture_output=True)
        auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {root / 'htpasswd'}\n"
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
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {registry.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return registry
        except OSError:
            time.sleep(0.05)
    stop(registry)
    raise RuntimeError("docker-registry did not start")


def stop(registry: Registry) -> None:
    if registry.proc.poll() is None:
        registry.proc.send_signal(signal.SIGTERM)
        try:
            registry.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            registry.proc.kill()
            registry.proc.wait()
    shutil.rmtree(registry.root, ignore_errors=True)
