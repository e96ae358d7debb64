"""The cases: what is timed or measured on every target, always through the same client.

A case has a setup and teardown run once per target (untimed), and a measure() run for the warm-up
and each run, which returns one or more named figures. Only the client command a user would type
is inside the timed span; preparing containers for it (create before `start`, run before `stop`)
is done through docker-py outside that span. Containers the bench makes are recorded on the target
and removed by id, never by listing the daemon (it may be a user's running dockyardd)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from bench.targets import DOCKER_CLI, IMAGE, Target

MIB = 1024.0


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    unit: str  # "ms" or "MiB"
    floor: str = ""  # the floor item that bounds this figure from below (see floor.py)


@dataclass
class Case:
    name: str
    metrics: list[Metric]
    measure: Callable[[Target, Any], dict[str, float]]
    setup: Callable[[Target], Any] = lambda target: None
    teardown: Callable[[Target, Any], None] = lambda target, state: None
    tags: set[str] = field(default_factory=set)


def timed_cli(target: Target, *args: str) -> tuple[float, str]:
    """Wall-clock milliseconds of one docker CLI invocation, and its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.run([DOCKER_CLI, *args], env=target.env, capture_output=True, text=True, timeout=300)
    elapsed = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()[-300:]}")
    return elapsed, proc.stdout


def _create(target: Target, command: list[str]) -> str:
    api = target.api
    cid = api.create_container(IMAGE, command, host_config=api.create_host_config(network_mode="none"))["Id"]
    target.containers.add(cid)
    return cid


def _remove(target: Target, cid: str) -> None:
    target.api.remove_container(cid, force=True)
    target.containers.discard(cid)


def _pid(target: Target, cid: str) -> int:
    pid = target.api.inspect_container(cid)["State"]["Pid"]
    if not pid:
        raise RuntimeError(f"container {cid[:12]} is not running after start (State.Pid is 0)")
    return pid


def _wait_for_child(pid: int, timeout: float = 10) -> None:
    """Wait until pid has forked: the container's shell has set its trap and started sleep."""
    deadline = time.monotonic() + timeout
    while not procs.children(pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _one(name: str, title: str, fn: Callable[[Target, Any], float], floor: str = "floor_docker_cli", **kw) -> Case:
    """A case timing one CLI command: it can never beat the client's own start."""
    return Case(name, [Metric(name, title, "ms", floor)], lambda t, s: {name: fn(t, s)}, **kw)


# --- run --------------------------------------------------------------------------------------

def _run_true(network: str) -> Callable[[Target, Any], float]:
    def measure(target: Target, state: Any) -> float:
        args = ["run", "--rm"] + (["--network", network] if network else []) + [IMAGE, "true"]
        return timed_cli(target, *args)[0]
    return measure


# --- lifecycle --------------------------------------------------------------------------------

def _create_case(target: Target, state: Any) -> float:
    ms, out = timed_cli(target, "create", "--network", "none", IMAGE, "true")
    cid = out.strip()
    target.containers.add(cid)
    _remove(target, cid)
    return ms


def _start_case(target: Target, state: Any) -> float:
    cid = _create(target, ["true"])
    ms = timed_cli(target, "start", cid)[0]
    _remove(target, cid)
    return ms


# sh as PID 1 ignores SIGTERM unless it traps it; `wait` returns at once when the trap fires, so
# `docker stop` measures the graceful path, not the 10 s timeout.
GRACEFUL = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]


def _stop_case(target: Target, state: Any) -> float:
    cid = _create(target, GRACEFUL)
    target.api.start(cid)
    _wait_for_child(_pid(target, cid))
    ms = timed_cli(target, "stop", cid)[0]
    _remove(target, cid)
    return ms


def _rm_case(target: Target, state: Any) -> float:
    cid = _create(target, ["true"])
    ms = timed_cli(target, "rm", cid)[0]
    target.containers.discard(cid)
    return ms


# --- listing ----------------------------------------------------------------------------------

def _create_many(count: int) -> Callable[[Target], list[str]]:
    def setup(target: Target) -> list[str]:
        return [_create(target, ["true"]) for _ in range(count)]
    return setup


def _remove_all(target: Target, cids: list[str] | None) -> None:
    for cid in cids or []:
        _remove(target, cid)


def _cli(*args: str) -> Callable[[Target, Any], float]:
    return lambda target, state: timed_cli(target, *args)[0]


# --- exec -------------------------------------------------------------------------------------

def _running(target: Target) -> str:
    cid = _create(target, ["sleep", "100000"])
    target.api.start(cid)
    return cid


def _exec_case(target: Target, cid: str) -> float:
    return timed_cli(target, "exec", cid, "true")[0]


# --- many containers --------------------------------------------------------------------------

COUNT = 20
RUN_SLEEPING = ["run", "-d", "--network", "none", IMAGE, "sleep", "100000"]


def _start_sequence(target: Target, state: Any) -> float:
    t0 = time.perf_counter()
    cids = []
    try:
        for _ in range(COUNT):
            cids.append(timed_cli(target, *RUN_SLEEPING)[1].strip())
        return (time.perf_counter() - t0) * 1000
    finally:
        target.containers.update(cids)
        _remove_all(target, cids)


def _start_parallel(target: Target, state: Any) -> float:
    t0 = time.perf_counter()
    children = [subprocess.Popen([DOCKER_CLI, *RUN_SLEEPING], env=target.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(COUNT)]
    results = [c.communicate(timeout=300) for c in children]
    elapsed = (time.perf_counter() - t0) * 1000
    cids = [out.strip() for out, _ in results if out.strip()]
    target.containers.update(cids)
    _remove_all(target, cids)
    failed = [err.strip() for c, (_, err) in zip(children, results) if c.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {COUNT} parallel runs failed: {failed[0][-300:]}")
    return elapsed


# --- memory -----------------------------------------------------------------------------------

def _memory(target: Target, state: Any) -> dict[str, float]:
    """Daemon RSS idle and with COUNT running, and what each container costs outside itself.

    The daemon side is the daemon and the processes below it when idle (dockerd counts containerd,
    Dockyard its helpers). Per container: PSS of the processes between each container's first
    process and the daemon or init (shim, conmon, ...), plus the daemon's own growth, over COUNT."""
    if not target.daemon_pid:
        raise RuntimeError("daemon pid unknown")
    # The daemon side is taken again at each idle moment: helpers started lazily by the first
    # container (a zygote, say) belong to the daemon, not to the containers measured next.
    target.core_pids = set(procs.descendants(target.daemon_pid))
    core = sorted(target.core_pids)
    _settle(core)
    idle_rss = sum(procs.rss_kib(p) for p in core)
    idle_pss = sum(procs.pss_kib(p) for p in core)
    ahead_pss = sum(procs.pss_kib(p) for p in procs.forks_outside(target.core_pids))
    daemon_rss = procs.rss_kib(target.daemon_pid)
    cids = []
    try:
        for _ in range(COUNT):
            cids.append(_running(target))
        pids = [_pid(target, cid) for cid in cids]
        time.sleep(0.5)  # let lazily started helpers settle before reading
        busy_rss = sum(procs.rss_kib(p) for p in core)
        busy_pss = sum(procs.pss_kib(p) for p in core)
        supervisors = {s for pid in pids for s in procs.supervisors_of(pid, target.core_pids)}
        shim_pss = sum(procs.pss_kib(p) for p in supervisors)
    finally:
        _remove_all(target, cids)
    return {
        "mem_daemon_process_idle": daemon_rss / MIB,
        "mem_daemon_idle": idle_rss / MIB,
        "mem_daemon_idle_pss": idle_pss / MIB,
        "mem_made_ahead_pss": ahead_pss / MIB,
        "mem_daemon_20": busy_rss / MIB,
        "mem_per_container": (shim_pss + max(busy_pss - idle_pss, 0)) / COUNT / MIB,
        "mem_shim_per_container": shim_pss / COUNT / MIB,
    }


SETTLE_FOR = 6.0  # seconds at most


def _settle(pids: list[int]) -> None:
    """Wait until the processes' RSS stops falling (half-second readings within 1%, at most
    SETTLE_FOR): both daemons give memory freed by the previous case (an image load, a build)
    back lazily, dockerd's Go runtime by its scavenger, Dockyard by a trim once it goes quiet."""
    deadline = time.monotonic() + SETTLE_FOR
    last = sum(procs.rss_kib(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(procs.rss_kib(p) for p in pids)
        if now >= last * 0.99:
            return
        last = now


# --- API round trips --------------------------------------------------------------------------

API_CALLS = 30
ENDPOINTS: dict[str, tuple[str, Callable]] = {
    "api_ping": ("GET /_ping", lambda api: api.ping()),
    "api_containers_json": ("GET /containers/json", lambda api: api.containers(all=True)),
    "api_images_json": ("GET /images/json", lambda api: api.images()),
    "api_info": ("GET /info", lambda api: api.info()),
}


def _round_trip(call: Callable) -> Callable[[Target, Any], float]:
    """Median of API_CALLS calls on docker-py's kept-open connection."""
    def measure(target: Target, state: Any) -> float:
        call(target.api)  # the connection is open and warm before the first timed call
        samples = []
        for _ in range(API_CALLS):
            t0 = time.perf_counter()
            call(target.api)
            samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples)
    return measure


CASES: list[Case] = [
    _one("run_none", "run --rm busybox true (--network none)", _run_true("none"), floor="floor_runc_run"),
    _one("run_host", "run --rm busybox true (--network host)", _run_true("host"), floor="floor_runc_run"),
    _one("run_bridge", "run --rm busybox true (default bridge)", _run_true(""), floor="floor_runc_run"),
    _one("create", "create", _create_case),
    _one("start", "start", _start_case),
    _one("stop", "stop (process exits on SIGTERM)", _stop_case),
    _one("rm", "rm (created container)", _rm_case),
    _one("ps_a_0", "ps -a, 0 containers", _cli("ps", "-a")),
    _one("ps_a_100", "ps -a, 100 containers", _cli("ps", "-a"), setup=_create_many(100), teardown=_remove_all),
    _one("images", "images", _cli("images")),
    _one("exec_true", "exec true", _exec_case, setup=_running, teardown=lambda t, cid: _remove(t, cid)),
    _one("start_20_sequence", f"{COUNT} × run -d, in sequence", _start_sequence, floor=""),
    _one("start_20_parallel", f"{COUNT} × run -d, in parallel", _start_parallel, floor=""),
    Case("memory", [Metric("mem_daemon_process_idle", "daemon process RSS, idle (dockerd; dockyardd)", "MiB"),
                    Metric("mem_daemon_idle", "daemon RSS, idle (with containerd; with the zygote)", "MiB"),
                    Metric("mem_daemon_idle_pss", "daemon PSS, idle (same processes)", "MiB"),
                    Metric("mem_made_ahead_pss", "PSS of what is forked ahead for the next container, idle "
                                                 "(Dockyard's spare shim, its create helper, the prepared init)", "MiB"),
                    Metric("mem_daemon_20", f"daemon RSS, {COUNT} running", "MiB"),
                    Metric("mem_per_container", "per-container overhead (PSS: shim + daemon growth)", "MiB"),
                    Metric("mem_shim_per_container", "per-container shim PSS", "MiB")], _memory),
    *(_one(name, f"API round trip {title}", _round_trip(call), floor="floor_api_ping")
      for name, (title, call) in ENDPOINTS.items()),
]

