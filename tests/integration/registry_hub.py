"""The hub (``dockyard registry serve``) for tests, started by PID on 127.0.0.1:<free port>.

Each instance has its own temp data dir; ``stop`` sends SIGTERM to exactly the process it
started (then SIGKILL if it hangs) and removes the dir. ``request`` is a tiny HTTP client that
never raises on a status, so tests can check the spec's errors."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.ports import free_port, wait_listening


@dataclass
class Hub:
    root: Path
    port: int
    proc: subprocess.Popen
    tls: bool = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def log(self) -> str:
        try:
            return (self.root / "hub.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> "Reply":
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.root / "certs" / "ca.crt"))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def code(self) -> str:
        """The first spec error code of the body ("" when there is none)."""
        try:
            return self.json()["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ""


def start(*flags: str, config: dict | None = None, root: Path | None = None) -> Hub:
    root = root or Path(tempfile.mkdtemp(prefix="dyhub-"))
    port = free_port()
    args = [sys.executable, "-m", "dockyard.cmd.registry", "serve", "--addr", f"127.0.0.1:{port}",
            "--data", str(root / "data"), *flags]
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
        args += ["--config", str(root / "config.json")]
    log = open(root / "hub.log", "ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    hub = Hub(root, port, proc, tls="--tls-cert" in flags)
    if wait_listening(proc, port, 20):
        return hub
    out = hub.log()
    stop(hub)
    raise RuntimeError(f"the hub did not start (exit status {proc.returncode}): {out}")


@contextmanager
def running(*flags: str, config: dict | None = None, root: Path | None = None, keep: bool = False) -> Iterator[Hub]:
    """``start(...)``, stopped by PID when the block ends (its dir removed unless ``keep``)."""
    hub = start(*flags, config=config, root=root)
    try:
        yield hub
    finally:
        stop(hub, keep=keep)


def stop(hub: Hub, keep: bool = False) -> int | None:
    """SIGTERM, wait, and (unless ``keep``) remove the data. Returns the exit status."""
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait()
    if not keep:
        shutil.rmtree(hub.root, ignore_errors=True)
    return hub.proc.returncode
