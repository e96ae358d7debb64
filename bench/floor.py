"""The floor: what the machine itself costs for the pieces every container start is made of, so the
table shows how far each figure is from the physical limit. Timed the same way as the cases
(wall clock around a subprocess started from this process)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from bench.cases import API_CALLS
from bench.targets import BUSYBOX_ARCHIVE, DOCKER_CLI, REPO, rand_suffix, remove_tree

PYTHON = str(REPO / ".venv/bin/python")


@dataclass(frozen=True)
class FloorItem:
    name: str
    title: str
    measure: Callable[[], float]  # milliseconds of one run


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True)
    elapsed = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    return elapsed


class RuncBundle:
    """An OCI bundle of the same busybox image the cases run, for `runc run` with a private state root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-floor-"))
        rootfs = self.dir / "bundle/rootfs"
        rootfs.mkdir(parents=True)
        with tarfile.open(BUSYBOX_ARCHIVE) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))
            for layer in manifest[0]["Layers"]:
                with tarfile.open(fileobj=archive.extractfile(layer)) as layer_tar:
                    layer_tar.extractall(rootfs, filter="tar")
        subprocess.run(["runc", "spec"], cwd=self.dir / "bundle", check=True)
        config_path = self.dir / "bundle/config.json"
        config = json.loads(config_path.read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["true"]
        config_path.write_text(json.dumps(config))

    def argv(self) -> list[str]:
        # A fresh id per run: runc deletes the container when it exits (no --keep).
        return ["runc", "--root", str(self.dir / "state"), "run", "--bundle", str(self.dir / "bundle"),
                f"bench-{rand_suffix()}"]

    def close(self) -> None:
        remove_tree(self.dir)


def _argv(*argv: str) -> Callable[[], float]:
    return lambda: _time(list(argv))


class PingServer:
    """docker-py's /_ping against a server that does nothing else: the floor of the API cases."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-ping-"))
        sock = self.dir / "ping.sock"
        self.proc = subprocess.Popen([PYTHON, "-m", "bench.pingserver", str(sock)], cwd=REPO)
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.api = docker.APIClient(base_url=f"unix://{sock}", version="1.41", timeout=10)

    def measure(self) -> float:
        self.api.ping()
        samples = []
        for _ in range(API_CALLS):
            t0 = time.perf_counter()
            self.api.ping()
            samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples)

    def close(self) -> None:
        self.api.close()
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def items(bundle: RuncBundle | None, ping: PingServer | None) -> list[FloorItem]:
    found = [
        FloorItem("floor_true", "/bin/true (fork + exec from Python)", _argv("/bin/true")),
        FloorItem("floor_unshare", "unshare mount,uts,ipc,net,pid,cgroup + true",
                  _argv("unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--fork", "/bin/true")),
        FloorItem("floor_python_bare", "interpreter start (python -I -S -c pass)", _argv(PYTHON, "-I", "-S", "-c", "pass")),
        FloorItem("floor_python_site", "interpreter start with site (python -c pass)", _argv(PYTHON, "-c", "pass")),
        FloorItem("floor_docker_cli", "docker CLI start (docker --version)", _argv(DOCKER_CLI, "--version")),
    ]
    if bundle is not None:
        found.insert(2, FloorItem("floor_runc_run", "runc run of the same busybox bundle (true)",
                                  lambda: _time(bundle.argv())))
    if ping is not None:
        found.append(FloorItem("floor_api_ping", f"docker-py /_ping to a bare HTTP server (median of {API_CALLS})",
                               ping.measure))
    return found
