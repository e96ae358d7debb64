"""The registry servers the registry cases push to and pull from: Debian's `docker-registry`
(the CNCF distribution registry) and our hub (`dockyard-registry serve`).

Each runs privately: 127.0.0.1 on a free port, its storage and config in its own temp directory,
started and stopped by its PID (SIGTERM, then SIGKILL). `restart()` brings a server back on the
same port with empty storage, so every timed push uploads everything (a registry that already
has the blobs would make a push a round of HEAD requests)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.targets import REPO

DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
HUB = REPO / ".venv/bin/dockyard-registry"


class RegistryUnavailable(RuntimeError):
    """The server cannot start; the message says why and ends up in the case's cells."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RegistryServer:
    name: str  # "registry" (docker-registry) or "hub": the suffix of the case's metric names
    title: str  # what the table shows
    argv: Callable[[Path, int], list[str]]  # (private dir, port) -> command line
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-registry-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else 0

    def start(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv(self.workdir, self.port), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryUnavailable(f"{self.title} exited with {self.proc.returncode}: {self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop_process()
        raise RegistryUnavailable(f"{self.title} did not answer GET /v2/ within 30 s: {self.log_tail()}")

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def restart(self) -> None:
        """Stop, empty the storage, start again on the same port."""
        self.stop_process()
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        self.start()

    def rss_kib(self) -> int:
        """The server's resident memory with any processes below it (descendants() lists the
        server itself first)."""
        pid = self.pid
        return sum(procs.rss_kib(p) for p in procs.descendants(pid)) if pid else 0

    def cpu_ms(self) -> float:
        """User + system CPU time the server (with the processes below it) has used so far."""
        total = 0
        for p in procs.descendants(self.pid) if self.pid else []:
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total * 1000 / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = (self.workdir / "server.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip()[-200:] for line in text[-lines:])

    def stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(35)  # the hub lets requests in flight finish (up to 30 s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        self.stop_process()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _docker_registry_argv(workdir: Path, port: int) -> list[str]:
    config = workdir / "config.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {workdir / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    return [str(DOCKER_REGISTRY), "serve", str(config)]


def _hub_argv(workdir: Path, port: int) -> list[str]:
    return [str(HUB), "serve", "--addr", f"127.0.0.1:{port}", "--data", str(workdir / "data")]


def _started(server: RegistryServer) -> RegistryServer:
    """``server`` running; what a failed start left is stopped."""
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def docker_registry() -> RegistryServer:
    if not DOCKER_REGISTRY.exists():
        raise RegistryUnavailable(f"{DOCKER_REGISTRY} is not installed (apt-get install docker-registry)")
    return _started(RegistryServer("registry", "docker-registry", _docker_registry_argv))


def hub() -> RegistryServer:
    if not HUB.exists():
        raise RegistryUnavailable(f"{HUB} is missing (pip install -e . in the venv)")
    return _started(RegistryServer("hub", "Dockyard hub", _hub_argv))


STARTERS: dict[str, Callable[[], RegistryServer]] = {"registry": docker_registry, "hub": hub}
