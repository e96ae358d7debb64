"""The floor: what the machine itself costs for the pieces every container start is made of, so the
table shows how far each figure is from the physical limit. Timed the same way as the cases
(wall clock around a subprocess started from this process)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.targets import BUSYBOX_ARCHIVE, DOCKER_CLI, REPO, rand_suffix, remove_tree

PYTHON = str(REPO / ".venv/bin/python")


@dataclass(frozen=True)
class FloorItem:
    name: str
    title: str
    argv: Callable[[], list[str]]  # called per run: runc needs a fresh container id each time


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


def items(bundle: RuncBundle | None) -> list[FloorItem]:
    found = [
        FloorItem("floor_true", "/bin/true (fork + exec from Python)", lambda: ["/bin/true"]),
        FloorItem("floor_unshare", "unshare mount,uts,ipc,net,pid,cgroup + true",
                  lambda: ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--fork", "/bin/true"]),
        FloorItem("floor_python_bare", "interpreter start (python -I -S -c pass)",
                  lambda: [PYTHON, "-I", "-S", "-c", "pass"]),
        FloorItem("floor_python_site", "interpreter start with site (python -c pass)", lambda: [PYTHON, "-c", "pass"]),
        FloorItem("floor_docker_cli", "docker CLI start (docker --version)", lambda: [DOCKER_CLI, "--version"]),
    ]
    if bundle is not None:
        found.insert(2, FloorItem("floor_runc_run", "runc run of the same busybox bundle (true)", bundle.argv))
    return found


def measure(item: FloorItem) -> float:
    return _time(item.argv())
