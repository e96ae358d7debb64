"""The references: Debian's docker.io (dockerd 20.10 + containerd + runc) and podman 4.3.

Both are installed with apt by the full run and started privately: their own data root, exec root,
socket and pidfile under a temp directory, with everything that would change the host's firewall or
forwarding turned off. A system dockerd that apt may have started is not ours and is left alone.
If a reference cannot start, its Target carries the reason and the table shows it."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker

from bench.targets import ManagedDaemon, Target, TargetUnavailable, free_subnet, rand_suffix, remove_cgroups

APT_PACKAGES = ["docker.io", "podman"]
PODMAN_NPROC = 32768  # podman 4.3's own RLIMIT_NPROC, which conmon and the runtime inherit
PODMAN_NO_BRIDGE = "podman's bridge network would add host firewall rules; it runs with --network none/host only"


def install() -> str:
    """apt-get install the references if missing; returns an error text or ''."""
    if shutil.which("dockerd") and shutil.which("podman"):
        return ""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", *APT_PACKAGES],
                          env=env, capture_output=True, text=True)
    return "" if proc.returncode == 0 else f"apt-get install failed: {proc.stderr.strip()[-300:]}"


def _version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.split()[2].rstrip(",")
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def _ready(target: Target, argv: list[str], workdir: Path, sock: Path, env: dict | None = None) -> Target:
    target.docker_host = f"unix://{sock}"
    try:
        target.daemon = ManagedDaemon(target.name, argv, workdir, sock, env=env)
        target.daemon.wait_ready()
        target.load_busybox()
        target.find_daemon_processes()
    except (TargetUnavailable, RuntimeError, docker.errors.DockerException, OSError) as exc:
        target.unavailable = str(exc)
    return target


def docker_io() -> Target:
    """dockerd 20.10 with its own containerd, on a private bridge, touching no iptables or sysctl."""
    target = Target("docker.io", f"docker.io {_version(['dockerd', '--version'])}")
    if not shutil.which("dockerd"):
        target.unavailable = "dockerd not installed (apt-get install docker.io)"
        return target
    if Path("/run/containerd/containerd.sock").exists():
        # dockerd 20.10 would use a system containerd it finds there instead of starting its own.
        target.unavailable = "a system containerd listens on /run/containerd/containerd.sock; dockerd would share it"
        return target
    workdir = Path(tempfile.mkdtemp(prefix="bench-dockerd-"))
    # dockerd only creates docker0 itself; a bridge of another name must exist before it starts.
    bridge, subnet = f"dybr{rand_suffix()}", free_subnet()
    try:
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        target.unavailable = f"cannot create bridge {bridge}: {exc.stderr.decode().strip()}"
        return target
    target.cleanups.append(lambda: subprocess.run(["ip", "link", "del", bridge], capture_output=True))
    subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    sock = workdir / "docker.sock"
    argv = ["dockerd", "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
            "-H", f"unix://{sock}", "--pidfile", str(workdir / "dockerd.pid"), "--bridge", bridge,
            "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--ip6tables=false",
            "--cgroup-parent", f"bench-dockerd-{bridge}", "--log-level", "warn",
            "--userland-proxy=false", "--storage-driver", "overlay2"]
    target.cleanups.append(lambda: remove_cgroups(f"bench-dockerd-{bridge}"))
    return _ready(target, argv, workdir, sock)


def podman() -> Target:
    """podman's Docker-compatible service, private storage, cgroupfs, no bridge networking."""
    target = Target("podman", f"podman {_version(['podman', '--version'])}")
    target.cannot.update({"run_bridge": PODMAN_NO_BRIDGE})
    if not shutil.which("podman"):
        target.unavailable = "podman not installed (apt-get install podman)"
        return target
    workdir = Path(tempfile.mkdtemp(prefix="bench-podman-"))
    # podman gives containers nofile and nproc of 1048576, above this host's hard limits, which the
    # runtime cannot set; and it lowers its own (so conmon's) nproc to 32768. Use what is settable.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_NPROC)
    ulimits = f'"nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"'
    conf = workdir / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = [{ulimits}]\n'
                    f'[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n'
                    f'tmp_dir = "{workdir / "tmp"}"\nvolume_path = "{workdir / "volumes"}"\n')
    sock = workdir / "podman.sock"
    argv = ["podman", "--root", str(workdir / "root"), "--runroot", str(workdir / "run"),
            "--storage-driver", "overlay", "--tmpdir", str(workdir / "tmp"), "--log-level", "warn",
            "system", "service", "--time=0", f"unix://{sock}"]
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    # With cgroupfs, podman puts containers under libpod_parent and leaves it behind; only empty
    # directories are removed, so another podman's containers are never disturbed.
    target.cleanups.append(lambda: remove_cgroups("libpod_parent"))
    return _ready(target, argv, workdir, sock, env=env)
