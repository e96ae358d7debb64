"""Start a private dockyardd for tests and clean up everything it made, by PID and path.

Each daemon gets its own data root, exec root, socket, bridge name, subnet and
cgroup parent, so several test runs (and a user's daemon) can share the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


@dataclass
class DaemonHandle:
    root: Path
    data_root: Path
    exec_root: Path
    socket: Path
    bridge: str
    subnet: str
    cgroup_parent: str
    proc: subprocess.Popen | None = None
    log_path: Path = field(default=Path("/dev/null"))

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")
        return env

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess:
        """Run the real docker CLI against this daemon."""
        return subprocess.run([DOCKER, *args], env=self.env, input=input, capture_output=True,
                              timeout=timeout, check=check)

    def dockyard(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run our own CLI against this daemon."""
        return subprocess.run([str(VENV_BIN / "dockyard"), *args], env=self.env, input=input,
                              capture_output=True, timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""


def new_daemon(extra_args: list[str] | None = None) -> DaemonHandle:
    root = Path(tempfile.mkdtemp(prefix="dyt-"))
    tag = "%05x" % random.randrange(16**5)
    subnet_octet = random.randrange(16, 250)
    handle = DaemonHandle(
        root=root,
        data_root=root / "data",
        exec_root=root / "exec",
        socket=root / "dockyard.sock",
        bridge=f"dyt{tag}",
        subnet=f"10.{random.randrange(200, 250)}.{subnet_octet}.0/24",
        cgroup_parent=f"/dockyard-test-{tag}",
        log_path=root / "dockyardd.log",
    )
    (root / "docker-config").mkdir()
    start(handle, extra_args)
    return handle


def start(handle: DaemonHandle, extra_args: list[str] | None = None) -> None:
    gateway = handle.subnet.rsplit(".", 1)[0] + ".1/24"
    args = [str(VENV_BIN / "dockyardd"), "--data-root", str(handle.data_root),
            "--exec-root", str(handle.exec_root), "-H", handle.host,
            "--pidfile", str(handle.root / "dockyardd.pid"), "--bridge", handle.bridge,
            "--bip", gateway, "--cgroup-parent", handle.cgroup_parent,
            "--config-file", str(handle.root / "daemon.json"), *(extra_args or [])]
    log = open(handle.log_path, "ab")
    handle.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(f"dockyardd exited with {handle.proc.returncode}:\n{handle.log()}")
        if handle.socket.exists() and handle.docker("version", timeout=10).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"dockyardd did not answer within 20 s:\n{handle.log()}")


def stop(handle: DaemonHandle, sig: int = signal.SIGTERM) -> None:
    proc = handle.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def destroy(handle: DaemonHandle) -> None:
    """Stop the daemon and remove everything it and its containers made."""
    stop(handle)
    _kill_pids_under(handle.exec_root)
    _unmount_under(handle.root)
    remove_cgroups(handle.cgroup_parent)
    subprocess.run(["ip", "link", "del", handle.bridge], capture_output=True)
    _remove_network_leftovers(handle)
    shutil.rmtree(handle.root, ignore_errors=True)


def _remove_network_leftovers(handle: DaemonHandle) -> None:
    """Bridges of user-defined networks a test left, and the daemon's iptables chains when it
    could not remove them itself (killed)."""
    import json
    import sqlite3

    from dockyard.network import iptables

    db = handle.data_root / "dockyard.db"
    if db.exists():
        try:
            with sqlite3.connect(db) as conn:
                docs = [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM networks")]
        except sqlite3.Error:
            docs = []
        for doc in docs:
            if doc.get("bridge_created") and doc.get("bridge"):
                subprocess.run(["ip", "link", "del", doc["bridge"]], capture_output=True)
    try:
        iptables.teardown(iptables.Chains.for_instance(str(handle.exec_root)))
    except Exception:
        pass


def load_busybox(handle: DaemonHandle) -> None:
    """busybox:latest made offline by our own image maker, loaded through the API."""
    out = handle.root / "busybox.tar"
    subprocess.run([str(VENV_BIN / "dockyard-mkimage"), "busybox", "-o", str(out)], check=True,
                   capture_output=True, timeout=120)
    r = handle.docker("load", "-i", str(out), timeout=120)
    assert r.returncode == 0, r.stderr.decode() + handle.log()


def _kill_pids_under(exec_root: Path) -> None:
    """Shims and container inits this daemon started, found by the pid files it wrote, and
    its zygote and shims by their command line (which names this daemon's exec root)."""
    pids: set[int] = set()
    marker = str(exec_root).encode() + b"/"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                pass
    for name in ("shim.pid", "init.pid"):
        for f in exec_root.rglob(name):
            try:
                pids.add(int(f.read_text().strip()))
            except (OSError, ValueError):
                pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _unmount_under(root: Path) -> None:
    prefix = str(root)
    for _ in range(3):
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
        mine = sorted((t for t in targets if t == prefix or t.startswith(prefix + "/")),
                      key=len, reverse=True)
        if not mine:
            return
        for t in mine:
            subprocess.run(["umount", "-l", t], capture_output=True)


def remove_cgroups(parent: str) -> None:
    """``parent`` and everything below it, in every hierarchy (v1 controllers and the hybrid
    host's cgroup2 mount, where runc makes its cgroups too)."""
    bases = [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    for base in bases:
        top = base / parent.lstrip("/")
        if not top.exists():
            continue
        # children first; a directory may vanish meanwhile (its runtime removes it)
        found = [Path(dirpath) for dirpath, _, _ in os.walk(top, onerror=lambda e: None)]
        for d in sorted(found, key=lambda p: len(str(p)), reverse=True):
            _rmdir_cgroup(d)
        _rmdir_cgroup(top)


def _rmdir_cgroup(d: Path) -> None:
    for procs in ("cgroup.procs",):
        try:
            for pid in (d / procs).read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
