"""Push and pull through each daemon to a registry, with the docker CLI (issues #5 and #9).

Every case pushes to and pulls from two servers started by the bench (bench/registries.py):
Debian's docker-registry and our hub, each with its own metrics, so a row compares the daemons
and the rows of one case compare the servers. The images are made locally (a docker-archive of
random and text-like bytes, `docker load`), never fetched.

One run: both servers restart with empty storage (untimed), `docker push` to each (timed), then
for each server the local image is removed (`docker rmi -f <id>`, untimed) and `docker pull`
(timed) brings it back; which server goes first alternates from run to run. Every timed
command starts after an untimed `sync`, so none pays for writing back what the one before it
left dirty. Each server's peak RSS over the run is its memory while serving; its CPU time
over the run (start-up left out) is the work it did, a figure the machine's noise moves much
less than the wall-clock ones.
podman is not measured: its Docker-compatible API does not push to a plain-HTTP registry
unless the client asks for tlsVerify=false, which the docker CLI never sends."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.cases import MIB, Case, Metric, timed_cli
from bench.registries import STARTERS, RegistryServer
from bench.targets import Target

MB = 1 << 20
SERVERS = {"registry": "docker-registry", "hub": "Dockyard hub"}
PODMAN = "podman's compat API pushes to a plain-HTTP registry only with tlsVerify=false, which the docker CLI never sends"


@dataclass(frozen=True)
class Content:
    name: str
    random: int  # bytes of os.urandom (incompressible)
    text: int  # bytes of log-like lines (gzip shrinks them about 4x)


@dataclass(frozen=True)
class Workload:
    layers: list[list[Content]]


def _text(n: int) -> bytes:
    """Log-like lines: unique (a counter and random hex) yet compressible, made fast."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"".join(b"line %08d: lorem ipsum dolor sit amet %s\n" % (i + k, os.urandom(6).hex().encode())
                        for k in range(1024))
        i += 1024
    return bytes(out[:n])


def _write_layer(path: Path, contents: list[Content]) -> str:
    """A layer tar on disk; returns its diff id."""
    with tarfile.open(path, "w") as tar:
        for c in contents:
            data = os.urandom(c.random) + _text(c.text)
            info = tarfile.TarInfo(c.name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MB), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_archive(workdir: Path, workload: Workload, tag: str) -> Path:
    """A `docker save` archive of a new image (linux/amd64, no command) with these layers."""
    layer_dir = workdir / "layers"
    layer_dir.mkdir()
    paths, diff_ids = [], []
    for i, contents in enumerate(workload.layers):
        paths.append(layer_dir / f"{i}.tar")
        diff_ids.append(_write_layer(paths[-1], contents))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "created": "2024-01-01T00:00:00Z",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"bench layer {i}"} for i in range(len(paths))]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    archive = workdir / "image.tar"
    with tarfile.open(archive, "w") as out:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for i, path in enumerate(paths):
            out.add(str(path), arcname=f"{i}/layer.tar")
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag],
                                          "Layers": [f"{i}/layer.tar" for i in range(len(paths))]}]).encode())
    shutil.rmtree(layer_dir)
    return archive


@dataclass
class State:
    workdir: Path
    image_id: str
    servers: list[RegistryServer]
    repo: str
    runs: int = 0  # measure() calls so far, the warm-up included

    def ref(self, server: RegistryServer) -> str:
        return f"{server.host}/{self.repo}:v1"


class PeakRSS:
    """Samples each server's RSS every 50 ms in a thread; the peak is memory while serving."""

    def __init__(self, servers: list[RegistryServer]) -> None:
        self.servers = servers
        self.peak = {s.name: 0 for s in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for s in self.servers:
                self.peak[s.name] = max(self.peak[s.name], s.rss_kib())
            if self._stop.wait(0.05):
                return

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peak


def _remove_image(target: Target, image_id: str) -> None:
    target.cli("rmi", "-f", image_id, check=False)


def _size(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= 10 * MB else f"{n / MB:.2g} MB"


def _metrics(name: str, what: str, workload: Workload) -> list[Metric]:
    """The case's rows, titled after the workload it runs (quick mode's is smaller): ``what``
    may name ``{layers}`` (how many) and ``{size}`` (their uncompressed bytes)."""
    size = sum(c.random + c.text for layer in workload.layers for c in layer)
    what = what.format(layers=len(workload.layers), size=_size(size))
    metrics = []
    for server, title in SERVERS.items():
        metrics.append(Metric(f"{name}_push_{server}", f"push {what} → {title}", "ms"))
        metrics.append(Metric(f"{name}_pull_{server}", f"pull {what} ← {title}", "ms"))
    for server, title in SERVERS.items():
        metrics.append(Metric(f"{name}_rss_{server}", f"{title} peak RSS while serving ({what})", "MiB"))
    for server, title in SERVERS.items():
        metrics.append(Metric(f"{name}_cpu_{server}", f"{title} CPU time serving ({what})", "ms"))
    return metrics


def _registry_case(name: str, what: str, full: Workload, quick: Workload) -> Case:
    metrics = _metrics(name, what, full)

    def setup(target: Target) -> State:
        if target.name == "podman":
            raise RuntimeError(PODMAN)
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        servers: list[RegistryServer] = []
        try:
            tag = f"bench-{name.replace('_', '-')}:latest"
            workload = quick if target.quick else full
            metrics[:] = _metrics(name, what, workload)  # the same rows, titled after this workload
            archive = make_archive(workdir, workload, tag)
            target.cli("load", "-i", str(archive), timeout=600)
            archive.unlink()
            image_id = target.api.inspect_image(tag)["Id"]
            servers = [STARTERS[server]() for server in SERVERS]
            state = State(workdir, image_id, servers, f"bench/{name.replace('_', '-')}")
            for server in servers:
                target.cli("tag", image_id, state.ref(server))
            target.cli("rmi", tag)
            return state
        except BaseException:
            for server in servers:
                server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def measure(target: Target, state: State) -> dict[str, float]:
        # Going second costs ~10 % here even after a sync (measured: 200 MB pull through
        # dockyardd 1.39 s second vs 1.17 s first, either server), so the servers take turns.
        # The first call (the warm-up) puts the hub first: with one warm-up and an odd --runs,
        # the hub goes second in more of the timed runs, never fewer.
        state.runs += 1
        order = state.servers if state.runs % 2 == 0 else state.servers[::-1]
        for server in state.servers:
            server.restart()
        cpu = {server.name: server.cpu_ms() for server in state.servers}  # less its start-up
        sampler = PeakRSS(state.servers)
        out = {}
        try:
            # os.sync() first (untimed): else the second server's push or pull would also pay
            # for writing back the hundreds of MB the first one left dirty
            for server in order:
                os.sync()
                out[f"{name}_push_{server.name}"] = timed_cli(target, "push", state.ref(server))[0]
            for server in order:
                _remove_image(target, state.image_id)
                os.sync()
                out[f"{name}_pull_{server.name}"] = timed_cli(target, "pull", state.ref(server))[0]
        finally:
            peak = sampler.stop()
            for server in state.servers:
                cpu[server.name] = server.cpu_ms() - cpu[server.name]
            # the next run pushes the same image to every server again
            for server in state.servers:
                target.cli("tag", state.image_id, state.ref(server), check=False)
        for server in state.servers:
            out[f"{name}_rss_{server.name}"] = peak[server.name] / MIB
            out[f"{name}_cpu_{server.name}"] = cpu[server.name]
        return out

    def teardown(target: Target, state: State) -> None:
        try:
            _remove_image(target, state.image_id)
        finally:
            for server in state.servers:
                server.stop()
            shutil.rmtree(state.workdir, ignore_errors=True)

    return Case(name, metrics, measure, setup=setup, teardown=teardown, tags={"registry"})


def _layer(i: int, random: int, text: int) -> list[Content]:
    return [Content(f"l{i}/random.bin", random, 0), Content(f"l{i}/text.txt", 0, text)]


CASES: list[Case] = [
    # #5's and #9's big layer: 100 MB random + 100 MB text in one layer (210 MB as a tar)
    _registry_case("registry_200mb", "{size} image, 1 layer",
                   Workload([_layer(0, 100 * MB, 100 * MB)]), Workload([_layer(0, 2 * MB, 2 * MB)])),
    # #5's many layers: 20 × (2 MB random + 3 MB text)
    _registry_case("registry_20_layers", "{layers}-layer image, {size}",
                   Workload([_layer(i, 2 * MB, 3 * MB) for i in range(20)]),
                   Workload([_layer(i, 32 << 10, 32 << 10) for i in range(20)])),
    # #9's small blobs: 100 layers of one 1 KiB random file (each blob about 1.2 KB gzipped)
    _registry_case("registry_100_blobs", "{layers} small layers",
                   Workload([[Content(f"f{i}", 1024, 0)] for i in range(100)]),
                   Workload([[Content(f"f{i}", 1024, 0)] for i in range(10)])),
]
