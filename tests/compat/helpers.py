"""Small helpers the compat tests share: waiting for a condition with a deadline, unique names
for what a test makes (the ``names`` fixture in conftest.py removes them), a build run in the
background."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tests.daemon_harness import DOCKER

T = TypeVar("T")


def ok(d, *args: str, timeout: float = 60) -> str:
    """``docker *args`` against the daemon ``d``; its stdout, or a failed assert with its stderr
    and the daemon's log."""
    r = d.docker(*args, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def until(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``predicate`` every 50 ms until it returns a true value or ``timeout`` seconds pass;
    returns its last value (so ``assert until(...)`` fails with what was last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def new_name(names: list[str], prefix: str) -> str:
    """A name with a random suffix (parallel runs do not collide), recorded in ``names``."""
    name = f"{prefix}-{random.randrange(16**6):06x}"
    names.append(name)
    return name


@contextmanager
def building(d, dockerfile: bytes) -> Iterator[subprocess.Popen]:
    """``docker build -`` (classic builder) of ``dockerfile`` running for the block; the client
    is killed and reaped by PID afterwards, whatever happened (tests of a build cut short)."""
    proc = subprocess.Popen([DOCKER, "build", "-"], env={**d.env, "DOCKER_BUILDKIT": "0"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(dockerfile)
        proc.stdin.close()
        yield proc
    finally:
        proc.kill()
        proc.wait()


def read_until(proc: subprocess.Popen, marker: bytes, timeout: float = 30.0) -> bytes:
    """What ``proc`` printed until ``marker`` showed up (or its output ended, or time ran out)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        piece = proc.stdout.read1(4096)
        if not piece:
            break
        seen += piece
    return seen
