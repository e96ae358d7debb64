"""Read-only projections of a record: inspect, the ``docker ps`` summary, its filters.

Status strings and durations follow docker/go-units HumanDuration, since users
and scripts read them ("Up 2 seconds", "Exited (0) 3 seconds ago").
"""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime, timezone

import msgspec

from dockyard import errdefs
from dockyard.apitypes.units import human_duration
from dockyard.apitypes.container import (
    ContainerInspect, ContainerSummary, GraphDriver, NetworkSettings, Port, StateWithHealth,
    SummaryHostConfig, SummaryNetworkSettings,
)
from dockyard.daemon.containers import logdrivers
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.record import ContainerRecord

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch (fraction kept to microseconds)."""
    if not text or text.startswith("0001-"):
        return 0.0
    main, _, rest = text.rstrip("Z").partition(".")
    frac = "".join(ch for ch in rest if ch.isdigit())[:6]
    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return dt.timestamp() + (int(frac.ljust(6, "0")) / 1e6 if frac else 0.0)


def status_text(rec: ContainerRecord, now: float | None = None) -> str:
    now = time.time() if now is None else now
    s = rec.state
    if s.status == st.RUNNING or s.status == st.PAUSED:
        text = f"Up {human_duration(now - parse_rfc3339(s.started_at))}"
        if s.status == st.PAUSED:
            return text + " (Paused)"
        if rec.health is not None:
            health = rec.health.status
            return f"{text} ({'health: starting' if health == 'starting' else health})"
        return text
    if s.status == st.RESTARTING:
        return f"Restarting ({s.exit_code}) {human_duration(now - parse_rfc3339(s.finished_at))} ago"
    if s.status == st.REMOVING:
        return "Removal In Progress"
    if s.status == st.DEAD:
        return "Dead"
    if s.status == st.EXITED:
        if parse_rfc3339(s.finished_at) == 0:
            return ""
        return f"Exited ({s.exit_code}) {human_duration(now - parse_rfc3339(s.finished_at))} ago"
    return "Created"


def network_settings(rec: ContainerRecord) -> NetworkSettings:
    ns = NetworkSettings(sandbox_key=rec.sandbox_key, networks=dict(rec.networks))
    ns.sandbox_id = rec.id if rec.sandbox_key else ""
    bridge = rec.networks.get("bridge")
    if bridge is not None:  # the deprecated top-level fields mirror the default bridge
        ns.endpoint_id = bridge.endpoint_id
        ns.gateway = bridge.gateway
        ns.ip_address = bridge.ip_address
        ns.ip_prefix_len = bridge.ip_prefix_len
        ns.mac_address = bridge.mac_address
    ns.ports = dict(rec.ports) if rec.ports else {port: None for port in (rec.config.exposed_ports or {})}
    return ns


def inspect(rec: ContainerRecord, size_rw: int | None = None, size_root_fs: int | None = None) -> ContainerInspect:
    state = rec.state
    if state.status == st.RESTARTING:  # Docker shows a restarting container as running too
        state = msgspec.structs.replace(state, running=True)
    if rec.health is not None:
        state = StateWithHealth(**msgspec.structs.asdict(state), health=rec.health)
    return ContainerInspect(
        id=rec.id, created=rec.created, path=rec.path, args=rec.args, state=state,
        image=rec.image_id, resolv_conf_path=rec.resolv_conf_path, hostname_path=rec.hostname_path,
        hosts_path=rec.hosts_path, name="/" + rec.name,
        log_path=logdrivers.inspect_log_path(rec.host_config.log_config.type, rec.log_path),
        restart_count=rec.restart_count, driver="overlay2", platform="linux", mount_label="",
        process_label="", app_armor_profile="", exec_ids=None, host_config=rec.host_config,
        graph_driver=GraphDriver(name="overlay2", data=_graph_data(rec)), mounts=rec.mounts,
        config=rec.config, network_settings=network_settings(rec), size_rw=size_rw,
        size_root_fs=size_root_fs,
    )


def _graph_data(rec: ContainerRecord) -> dict[str, str] | None:
    for m in rec.rootfs_mounts:
        if m.type == "overlay":
            data = {}
            for opt in m.options:
                key, _, value = opt.partition("=")
                if key in ("lowerdir", "upperdir", "workdir"):
                    data[{"lowerdir": "LowerDir", "upperdir": "UpperDir", "workdir": "WorkDir"}[key]] = value
            if "UpperDir" in data:
                data["MergedDir"] = data["UpperDir"].rsplit("/", 1)[0] + "/merged"
            return data
    return None


def _ports(rec: ContainerRecord) -> list[Port]:
    out = []
    for spec in sorted(set(rec.config.exposed_ports or {}) | set(rec.ports)):
        number, _, proto = spec.partition("/")
        if not number.isdigit():
            continue
        bindings = rec.ports.get(spec) or []
        out += [Port(private_port=int(number), type=proto or "tcp", ip=b.host_ip, public_port=int(b.host_port))
                for b in bindings] or [Port(private_port=int(number), type=proto or "tcp")]
    return out


def summary(rec: ContainerRecord, image_label: str, size_rw: int | None = None) -> ContainerSummary:
    command = shlex.join([rec.path, *rec.args]) if rec.path else ""
    if rec.host_config.init:
        command = "/sbin/docker-init -- " + command
    return ContainerSummary(
        id=rec.id, names=["/" + rec.name], image=image_label, image_id=rec.image_id,
        command=command, created=int(parse_rfc3339(rec.created)), ports=_ports(rec),
        labels=rec.config.labels or {}, state=rec.state.status, status=status_text(rec),
        host_config=SummaryHostConfig(network_mode=rec.host_config.network_mode),
        network_settings=SummaryNetworkSettings(networks=dict(rec.networks)),
        mounts=rec.mounts, size_rw=size_rw,
    )


# ---- filters -------------------------------------------------------------------

_FILTERS = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "network",
            "volume", "health", "is-task", "publish", "expose"}
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
_HEALTH = {"starting", "healthy", "unhealthy", "none"}


def check_filters(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in _FILTERS:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        if key == "status":
            for v in values:
                if v not in _STATUSES:
                    raise errdefs.InvalidParameter(
                        f"invalid filter 'status={v}'")
        if key == "health":
            for v in values:
                if v not in _HEALTH:
                    raise errdefs.InvalidParameter(f"Unrecognised filter value for health: {v}")
        if key == "exited":
            for v in values:
                if not v.lstrip("-").isdigit():
                    raise errdefs.InvalidParameter(f"invalid filter 'exited={v}'")


def label_match(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def matches(rec: ContainerRecord, filters: dict[str, list[str]], ancestors: set[str]) -> bool:
    """``ancestors``: image IDs the ``ancestor`` filter values resolve to (computed by the caller)."""
    if "id" in filters and not any(rec.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not any(_name_match(rec.name, v) for v in filters["name"]):
        return False
    if "label" in filters and not all(label_match(rec.config.labels or {}, v) for v in filters["label"]):
        return False
    if "status" in filters and rec.state.status not in filters["status"]:
        return False
    if "exited" in filters and not (rec.state.status == st.EXITED
                                    and str(rec.state.exit_code) in filters["exited"]):
        return False
    if "health" in filters and (rec.health.status if rec.health else "none") not in filters["health"]:
        return False
    if "ancestor" in filters and rec.image_id not in ancestors:
        return False
    if "network" in filters and not any(n in rec.networks or n == rec.host_config.network_mode
                                        or any(e.network_id.startswith(n) for e in rec.networks.values())
                                        for n in filters["network"]):
        return False
    if "volume" in filters and not any(m.source == v or m.destination == v or m.name == v
                                       for m in rec.mounts for v in filters["volume"]):
        return False
    if "expose" in filters and not any(_port_key(v) in (rec.config.exposed_ports or {}) for v in filters["expose"]):
        return False
    return True


def _port_key(value: str) -> str:
    return value if "/" in value else value + "/tcp"


def _name_match(name: str, pattern: str) -> bool:
    try:
        return re.search(pattern.lstrip("/"), name) is not None
    except re.error:
        return pattern.lstrip("/") in name
