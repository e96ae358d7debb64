"""Builds through each daemon with the docker CLI's classic builder (DOCKER_BUILDKIT=0, issue #8).

- build_cached: `docker build -t <tag> <ctx>` of a small Dockerfile (ENV, WORKDIR, COPY, RUN,
  CMD on busybox) whose every step is in the cache (one untimed build first).
- build_no_cache: the same with `--no-cache`: every step runs again (one RUN container, one
  COPY, metadata steps).
- build_copy_200mb: `docker build --no-cache` of `COPY big.bin /` with a 200 MB file of random
  bytes (8 MB with --quick): the context upload, the checksum and the layer write.

Every timed build's image is removed (untimed) by the ID it printed, so runs do not pile up
layers; the intermediate images go with it (rmi removes untagged parents)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cases import Case, Metric
from bench.targets import DOCKER_CLI, Target

MB = 1 << 20
DOCKERFILE = (
    "FROM busybox:latest\n"
    "ENV APP_HOME=/app\n"
    "WORKDIR /app\n"
    "COPY a.txt b.txt ./\n"
    "RUN echo built > /app/built.txt && cat a.txt b.txt >> built.txt\n"
    "CMD [\"cat\", \"/app/built.txt\"]\n")
_BUILT = re.compile(r"Successfully built ([0-9a-f]{12})")


@dataclass
class _Context:
    path: Path
    tag: str
    made: list[str] = field(default_factory=list)  # image IDs to remove at teardown


def _timed_build(target: Target, *args: str) -> tuple[float, str]:
    """Wall-clock milliseconds of one classic-builder `docker build`, and the image it made."""
    env = {**target.env, "DOCKER_BUILDKIT": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run([DOCKER_CLI, "build", *args], env=env, capture_output=True, text=True, timeout=600)
    elapsed = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"docker build {' '.join(args)}: {proc.stderr.strip()[-300:]}")
    found = _BUILT.search(proc.stdout)
    if not found:
        raise RuntimeError(f"docker build printed no image ID: {proc.stdout[-300:]}")
    return elapsed, found.group(1)


def _small_context(target: Target) -> _Context:
    path = Path(tempfile.mkdtemp(prefix="bench-build-"))
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "a.txt").write_text("a\n" * 100)
    (path / "b.txt").write_text("b\n" * 100)
    return _Context(path, f"bench-build-{os.getpid()}-{target.name.replace('.', '')}")


def _cached_setup(target: Target) -> _Context:
    ctx = _small_context(target)
    ctx.made.append(_timed_build(target, "-t", ctx.tag, str(ctx.path))[1])  # fills the cache
    return ctx


def _cached(target: Target, ctx: _Context) -> dict[str, float]:
    ms, image = _timed_build(target, "-t", ctx.tag, str(ctx.path))
    if image not in ctx.made:
        raise RuntimeError(f"the cached build made a new image {image}: a step missed the cache")
    return {"build_cached": ms}


def _no_cache(target: Target, ctx: _Context) -> dict[str, float]:
    ms, image = _timed_build(target, "--no-cache", "-t", ctx.tag, str(ctx.path))
    _remove(target, image)
    return {"build_no_cache": ms}


def _big_setup(target: Target) -> _Context:
    path = Path(tempfile.mkdtemp(prefix="bench-build-big-"))
    size = (8 if target.quick else 200) * MB
    with open(path / "big.bin", "wb") as f:
        for _ in range(size // (4 * MB)):
            f.write(os.urandom(4 * MB))
    (path / "Dockerfile").write_text("FROM busybox:latest\nCOPY big.bin /big.bin\n")
    return _Context(path, f"bench-build-big-{os.getpid()}-{target.name.replace('.', '')}")


def _big(target: Target, ctx: _Context) -> dict[str, float]:
    ms, image = _timed_build(target, "--no-cache", "-t", ctx.tag, str(ctx.path))
    _remove(target, image)
    return {"build_copy_200mb": ms}


def _remove(target: Target, image: str) -> None:
    target.cli("rmi", "-f", image, check=False)


def _teardown(target: Target, ctx: _Context | None) -> None:
    if ctx is None:
        return
    target.cli("rmi", "-f", ctx.tag, *ctx.made, check=False)
    shutil.rmtree(ctx.path, ignore_errors=True)


def _case(name: str, title: str, measure: Any, setup: Any) -> Case:
    return Case(name, [Metric(name, title, "ms", "floor_docker_cli")], measure, setup=setup, teardown=_teardown,
                tags={"build"})


CASES: list[Case] = [
    _case("build_cached", "build, every step cached (6-step Dockerfile, classic builder)", _cached, _cached_setup),
    _case("build_no_cache", "build --no-cache (same Dockerfile: one RUN, one COPY)", _no_cache, _small_context),
    _case("build_copy_200mb", "build --no-cache, COPY of a 200 MB file (8 MB in --quick)", _big, _big_setup),
]
