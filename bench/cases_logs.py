"""Container logs (issue #4): how fast a container's stdout goes into its log, and comes back out.

- logs_write_lines / logs_write_lines_local: a container writes LINES_MIB of 100-byte lines
  (`yes <99 chars> | head -c`) to stdout; timed from `docker run -d` to the end of `docker wait`,
  so the figure is the log driver's pace (the container blocks on a full pipe while the driver
  lags). json-file with `max-size=200m,max-file=2` on every target (nothing rotates away), then
  the local driver with its defaults (20 MB x 5, rotated files compressed).
- logs_write_raw: RAW_MIB of output without newlines (`dd if=/dev/zero` made printable by `tr`), which
  every driver cuts into 16 KB partial entries: the per-byte cost without the per-line one.
- logs_read / logs_read_local: `docker logs <c>` of the lines container, all of its output read
  through the CLI (counted, then dropped); the json-file one checks every byte came back.

--quick shrinks the output to a few MiB. Figures are ms (lower is better, like every bench
figure); MB/s is the size in the title over the figure."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench.cases import Case, Metric
from bench.targets import DOCKER_CLI, IMAGE, Target

MIB = 1 << 20
LINES_MIB, LINES_MIB_QUICK = 128, 2
RAW_MIB, RAW_MIB_QUICK = 256, 4
LINE = "0123456789" * 9 + "012345678"  # 99 characters: yes adds the newline
JSON_FILE = ["--log-driver", "json-file", "--log-opt", "max-size=200m", "--log-opt", "max-file=2"]
LOCAL = ["--log-driver", "local"]


def _lines_size(target: Target) -> int:
    """Whole lines only: a last line without its newline gets one from dockerd's drivers."""
    return (LINES_MIB_QUICK if target.quick else LINES_MIB) * MIB // (len(LINE) + 1) * (len(LINE) + 1)


def _write_lines(target: Target, log_args: list[str]) -> tuple[float, str]:
    """ms from `run -d` to the end of `wait` of a container writing the lines; its id."""
    return _run_to_exit(target, *log_args, IMAGE, "sh", "-c", f"yes {LINE} | head -c {_lines_size(target)}")


def _run_to_exit(target: Target, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    cid = target.cli("run", "-d", "--network", "none", *args).stdout.strip()
    target.containers.add(cid)
    code = target.cli("wait", cid, timeout=600).stdout.strip()
    ms = (time.perf_counter() - t0) * 1000
    if code != "0":
        raise RuntimeError(f"the writing container exited with {code}")
    return ms, cid


def _remove(target: Target, cid: str) -> None:
    target.api.remove_container(cid, force=True)
    target.containers.discard(cid)


def _write_case(name: str, log_args: list[str]):
    def measure(target: Target, state: Any) -> dict[str, float]:
        ms, cid = _write_lines(target, log_args)
        _remove(target, cid)
        return {name: ms}
    return measure


def _write_raw(target: Target, state: Any) -> dict[str, float]:
    mib = RAW_MIB_QUICK if target.quick else RAW_MIB
    # printable bytes: NULs would measure JSON's \u0000 escaping (6 bytes each), not the log path
    ms, cid = _run_to_exit(target, *JSON_FILE, IMAGE, "sh", "-c",
                           f"dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | tr '\\0' x")
    _remove(target, cid)
    return {"logs_write_raw": ms}


def _logs_of(target: Target, cid: str) -> tuple[float, int]:
    """ms of `docker logs <cid>` and the bytes it printed on stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([DOCKER_CLI, "logs", cid], env=target.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    size = 0
    while chunk := proc.stdout.read(MIB):
        size += len(chunk)
    err = proc.stderr.read()
    code = proc.wait(timeout=600)
    ms = (time.perf_counter() - t0) * 1000
    if code != 0:
        raise RuntimeError(f"docker logs: {err.decode(errors='replace').strip()[-300:]}")
    return ms, size


def _read_case(name: str, log_args: list[str], complete: bool):
    def setup(target: Target) -> str:
        return _write_lines(target, log_args)[1]

    def measure(target: Target, cid: str) -> dict[str, float]:
        ms, size = _logs_of(target, cid)
        expected = _lines_size(target)
        if size == 0 or size > expected or (complete and size != expected):
            raise RuntimeError(f"docker logs printed {size} bytes of the {expected} written")
        return {name: ms}

    def teardown(target: Target, cid: str | None) -> None:
        if cid:
            _remove(target, cid)
    return measure, setup, teardown


def _read(name: str, title: str, log_args: list[str], complete: bool) -> Case:
    measure, setup, teardown = _read_case(name, log_args, complete)
    return Case(name, [Metric(name, title, "ms")], measure, setup=setup, teardown=teardown)


CASES: list[Case] = [
    Case("logs_write_lines", [Metric("logs_write_lines", f"a container writes {LINES_MIB} MiB of 100-byte "
                                     "lines to stdout, json-file log (run -d .. wait)", "ms")],
         _write_case("logs_write_lines", JSON_FILE)),
    Case("logs_write_lines_local", [Metric("logs_write_lines_local", f"the same {LINES_MIB} MiB of lines, "
                                           "--log-driver local (compressed rotation)", "ms")],
         _write_case("logs_write_lines_local", LOCAL)),
    Case("logs_write_raw", [Metric("logs_write_raw", f"a container writes {RAW_MIB} MiB without newlines "
                                   "(dd | tr), json-file log", "ms")],
         _write_raw),
    _read("logs_read", f"docker logs of the {LINES_MIB} MiB of lines (json-file)", JSON_FILE, True),
    _read("logs_read_local", f"docker logs of the {LINES_MIB} MiB of lines (local; what its 5 x 20 MB "
          "keep)", LOCAL, False),
]
