"""Networking (issue #6): container start on a user-defined bridge, with and without a published
port; throughput between two containers of one bridge; answer latency of the embedded DNS.

Every case makes its own user-defined network (`docker network create`, untimed, the daemon's
own choice of subnet) and removes it in its teardown. The references run as bench/README.md
says (no iptables, no userland proxy for docker.io): nothing here needs NAT. A published port
is only reserved and announced on such a daemon, which is what `run -p` costs. The traffic and
DNS figures are read inside the client container (busybox `time`, 10 ms resolution: the
workloads are sized so that this is a few per cent), so `docker exec`'s own cost is not in them.
podman runs without bridge networks in the bench (see references.py), so it cannot run these."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from bench.cases import Case, Metric, timed_cli
from bench.targets import IMAGE, Target

PODMAN = "the bench runs podman without bridge networks (they add host firewall rules)"
PORT = 5001
THROUGHPUT_MIB, THROUGHPUT_MIB_QUICK = 1024, 16
LOOKUPS, LOOKUPS_QUICK = 200, 10


def _network(target: Target) -> str:
    if target.name == "podman":
        raise RuntimeError(PODMAN)
    name = f"bench-net-{secrets.token_hex(4)}"
    target.cli("network", "create", name)
    return name


def _remove_network(target: Target, name: str) -> None:
    target.remove_containers()  # the network is busy while they exist
    target.cli("network", "rm", name, check=False)


def _detached(target: Target, network: str, *command: str, name: str = "") -> str:
    args = ["run", "-d", "--network", network] + (["--name", name] if name else []) + [IMAGE, *command]
    cid = target.cli(*args).stdout.strip()
    target.containers.add(cid)
    return cid


def _in_container_ms(target: Target, cid: str, script: str) -> float:
    """Wall time of a shell script inside a container, by busybox `time` (stderr: real 0m 0.52s)."""
    proc = target.cli("exec", cid, "sh", "-c", f"time sh -c '{script}'", check=False)
    found = re.search(r"real\s+(\d+)m\s+([\d.]+)s", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"in-container timing failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return (int(found.group(1)) * 60 + float(found.group(2))) * 1000


# --- run on a user-defined network --------------------------------------------------------------

def _run_on_network(*extra: str):
    def measure(target: Target, network: str) -> dict[str, float]:
        name = "run_net_publish" if extra else "run_net_user"
        return {name: timed_cli(target, "run", "--rm", "--network", network, *extra, IMAGE, "true")[0]}
    return measure


# --- throughput ----------------------------------------------------------------------------------

def _throughput_setup(target: Target) -> tuple[str, str, str]:
    network = _network(target)
    # -ll -e: a fresh `dd` per connection (1 MiB reads), until the client closes
    server = _detached(target, network, "nc", "-ll", "-p", str(PORT), "-e", "dd", "of=/dev/null", "bs=1048576")
    client = _detached(target, network, "sleep", "100000")
    address = target.cli("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}",
                         server).stdout.strip()
    deadline = time.monotonic() + 30
    while target.cli("exec", client, "nc", address, str(PORT), check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the nc server at {address}:{PORT} did not listen within 30 s")
        time.sleep(0.1)
    return network, client, address


def _throughput(target: Target, state: tuple[str, str, str]) -> dict[str, float]:
    _network_name, client, address = state
    mib = THROUGHPUT_MIB_QUICK if target.quick else THROUGHPUT_MIB
    # nc -e: dd writes 1 MiB blocks straight into the socket (busybox nc's own copy loop moves 1 KiB
    # at a time, which would be what is measured); it ends when the last block is in the socket's
    # buffer (a few MiB at most, under 1 % of the full workload)
    ms = _in_container_ms(target, client, f"nc {address} {PORT} -e dd if=/dev/zero bs=1048576 count={mib}")
    return {"net_throughput": ms * THROUGHPUT_MIB / mib}  # quick mode: scaled, so the unit stays


# --- embedded DNS --------------------------------------------------------------------------------

def _dns_setup(target: Target) -> tuple[str, str, str]:
    network = _network(target)
    peer = f"bench-dns-{secrets.token_hex(4)}"
    _detached(target, network, "sleep", "100000", name=peer)
    client = _detached(target, network, "sleep", "100000")
    return network, client, peer


def _dns(target: Target, state: tuple[str, str, str]) -> dict[str, float]:
    _network_name, client, peer = state
    n = LOOKUPS_QUICK if target.quick else LOOKUPS
    script = f"i=0; while [ $i -lt {n} ]; do nslookup {peer} >/dev/null || exit 1; i=$((i+1)); done"
    return {"dns_lookup": _in_container_ms(target, client, script) / n}


def _teardown(target: Target, state: Any) -> None:
    _remove_network(target, state if isinstance(state, str) else state[0])


CASES: list[Case] = [
    Case("run_net_user", [Metric("run_net_user", "run --rm --network <user bridge> busybox true", "ms",
                                 "floor_runc_run")],
         _run_on_network(), setup=_network, teardown=_teardown),
    Case("run_net_publish", [Metric("run_net_publish", "run --rm --network <user bridge> -p 80 busybox true",
                                    "ms", "floor_runc_run")],
         _run_on_network("-p", "80"), setup=_network, teardown=_teardown),
    Case("net_throughput", [Metric("net_throughput", f"move {THROUGHPUT_MIB} MiB between two containers of one "
                                   f"bridge (busybox nc -e dd, in-container time)", "ms")],
         _throughput, setup=_throughput_setup, teardown=_teardown),
    Case("dns_lookup", [Metric("dns_lookup", "embedded DNS: one nslookup of a container name, from a "
                               "container (process start included)", "ms")],
         _dns, setup=_dns_setup, teardown=_teardown),
]
