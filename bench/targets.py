"""A target is one daemon the bench drives through the docker CLI and docker-py: Dockyard or a
reference. This module owns the daemons the bench starts itself (by PID, in private directories)
and the Dockyard target; the references' setup lives in references.py."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from bench import procs

REPO = Path(__file__).resolve().parent.parent
DOCKER_CLI = "/usr/local/bin/docker"  # docker CLI 28.2.2; /usr/bin/docker is docker.io's own 20.10 CLI
BUSYBOX_ARCHIVE = Path("/work/shared/fixtures/busybox-docker-save.tar")
IMAGE = "busybox:latest"


class TargetUnavailable(Exception):
    """The target cannot run at all; the message says why and ends up in the table."""


@dataclass
class Target:
    name: str  # short key used in JSON: dockyard, docker.io, podman
    label: str  # what the table shows, with the version
    docker_host: str = ""
    unavailable: str = ""  # why the target cannot run at all
    cannot: dict[str, str] = field(default_factory=dict)  # case name -> why this target cannot run it
    daemon: ManagedDaemon | None = None
    cleanups: list[Callable[[], object]] = field(default_factory=list)  # run at stop, last added first
    quick: bool = False  # --quick: cases shrink their workloads (CI keeps bench/ working, times nothing)
    daemon_pid: int = 0
    core_pids: set[int] = field(default_factory=set)  # daemon-side processes alive when idle
    containers: set[str] = field(default_factory=set)  # ids the bench created and must remove
    _api: docker.APIClient | None = None
    _config_dir: str = ""

    @property
    def env(self) -> dict[str, str]:
        if not self._config_dir:
            # A private client config, so no user context or credential helper changes a figure.
            self._config_dir = tempfile.mkdtemp(prefix="bench-cli-")
        env = dict(os.environ)
        env.update(DOCKER_HOST=self.docker_host, DOCKER_CONFIG=self._config_dir, DOCKER_CLI_HINTS="false")
        env.pop("DOCKER_CONTEXT", None)
        return env

    @property
    def api(self) -> docker.APIClient:
        """docker-py on one kept-open connection (requests keeps the unix socket alive)."""
        if self._api is None:
            self._api = docker.APIClient(base_url=self.docker_host, version="auto", timeout=180)
        return self._api

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([DOCKER_CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()[-400:]}")
        return proc

    def name_version(self, product: str) -> None:
        self.label = f"{product} {self.api.version().get('Version', '')}".strip()

    def find_daemon_processes(self) -> None:
        """Record the daemon's pid (whoever listens on its socket) and the processes below it at idle."""
        if self.docker_host.startswith("unix://"):
            self.daemon_pid = procs.unix_socket_owner(self.docker_host[len("unix://"):])
        if self.daemon_pid:
            self.core_pids = set(procs.descendants(self.daemon_pid))

    def load_busybox(self) -> None:
        self.cli("load", "-i", str(BUSYBOX_ARCHIVE))
        if self.api.images(name=IMAGE):
            return
        # podman names an archive's short tag localhost/busybox; give it the name Docker gives it.
        for image in self.api.images():
            for tag in image.get("RepoTags") or []:
                if tag.endswith("/busybox:latest"):
                    self.api.tag(image["Id"], "docker.io/library/busybox", "latest")
                    return
        raise TargetUnavailable(f"{IMAGE} missing after docker load")

    def remove_containers(self) -> None:
        for cid in list(self.containers):
            try:
                self.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            self.containers.discard(cid)

    def stop(self) -> None:
        if self.docker_host:
            try:
                self.remove_containers()
            except Exception as exc:  # the daemon may be gone already; its data root goes anyway
                print(f"bench: {self.name}: removing containers failed: {exc}")
        if self._api is not None:
            self._api.close()
        if self.daemon is not None:
            self.daemon.stop()
        while self.cleanups:
            self.cleanups.pop()()
        if self._config_dir:
            shutil.rmtree(self._config_dir, ignore_errors=True)


class ManagedDaemon:
    """A daemon process the bench started, with its private directory; stopped by its own PID."""

    def __init__(self, name: str, argv: list[str], workdir: Path, socket_path: Path, env: dict | None = None):
        self.name, self.workdir, self.socket_path = name, workdir, socket_path
        self.log_path = workdir / "daemon.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetUnavailable(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.socket_path.exists() and procs.unix_socket_owner(str(self.socket_path)):
                try:
                    with docker.APIClient(base_url=f"unix://{self.socket_path}", version="1.41", timeout=5) as c:
                        c.ping()
                    return
                except Exception:
                    pass
            time.sleep(0.1)
        raise TargetUnavailable(f"{self.name} did not answer /_ping within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip()[-200:] for line in text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Per-container supervisors detach from the daemon (containerd shims, podman's conmon that
        # lingers 300 s after an exec) and outlive it. They are ours if their command line names
        # our private directory.
        for pid in procs.naming(str(self.workdir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        remove_tree(self.workdir)


def remove_tree(path: Path) -> None:
    """Unmount whatever is left mounted below path (deepest first), then remove it."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def free_subnet() -> str:
    """A random 10.2xx.y.0/24 that no route on the host uses yet."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
        if f"{prefix}." not in routes:
            return prefix
    raise TargetUnavailable("no free 10.2xx.y.0/24 subnet for a private bridge")


def rand_suffix() -> str:
    return f"{random.randrange(16**6):06x}"


def dockyard_local() -> Target:
    """Start a private dockyardd (its own data root, exec root, socket and bridge) and load busybox."""
    target = Target("dockyard", "Dockyard")
    binary = REPO / ".venv/bin/dockyardd"
    workdir = Path(tempfile.mkdtemp(prefix="bench-dockyard-"))
    sock, bridge = workdir / "dockyard.sock", f"dyb{rand_suffix()}"
    argv = [str(binary), "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
            "-H", f"unix://{sock}", "--bridge", bridge, "--bip", f"{free_subnet()}.1/24",
            "--pidfile", str(workdir / "dockyardd.pid"), "--cgroup-parent", f"/bench-dockyard-{bridge}",
            # The same host-side restraint as the references: no firewall rules, no forwarding sysctl.
            "--iptables=false", "--ip-forward=false"]
    target.docker_host = f"unix://{sock}"
    # Like dockerd's docker0, the bridge may outlive the daemon; it is ours, so it goes too.
    target.cleanups.append(lambda: subprocess.run(["ip", "link", "del", bridge], capture_output=True))
    target.cleanups.append(lambda: remove_cgroups(f"bench-dockyard-{bridge}"))
    try:
        target.daemon = ManagedDaemon("dockyardd", argv, workdir, sock)
        target.daemon.wait_ready()
        target.name_version("Dockyard")
        target.load_busybox()
        target.find_daemon_processes()
    except (TargetUnavailable, RuntimeError, docker.errors.DockerException, OSError) as exc:
        target.unavailable = str(exc)
    return target


def dockyard_remote(docker_host: str) -> Target:
    """An already running dockyardd: the bench only adds busybox and removes its own containers."""
    target = Target("dockyard", "Dockyard", docker_host=docker_host)
    try:
        target.name_version("Dockyard")
        if not target.api.images(name=IMAGE):
            target.load_busybox()
        target.find_daemon_processes()
    except (TargetUnavailable, RuntimeError, docker.errors.DockerException, OSError) as exc:
        target.unavailable = f"{docker_host}: {exc}"
    if not target.daemon_pid:
        for case in ("memory",):
            target.cannot[case] = "the daemon's pid is unknown (not a local unix socket)"
    return target


def remove_cgroups(name: str) -> None:
    """Remove the cgroup ``name`` (and what is left below it) in every v1 controller: a daemon's
    cgroup parent outlives it."""
    root = Path("/sys/fs/cgroup")
    for ctrl in root.iterdir():
        path = ctrl / name
        if path.is_dir():
            for sub in sorted(path.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                if sub.is_dir():
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
            try:
                path.rmdir()
            except OSError:
                pass
