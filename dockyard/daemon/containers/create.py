"""POST /containers/create: merge the image's config, check every value, build the record.

Checks happen before anything is written, so a bad value leaves nothing behind.
Messages are moby's (``daemon/daemon_unix.go`` verifyPlatformContainerSettings,
``runconfig``, ``oci/caps``), since scripts and tests match on them.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dockyard import errdefs
from dockyard.apitypes.container import (
    ContainerConfig, CreateRequest, EndpointSettings, HealthConfig, HostConfig,
)
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import logdrivers
from dockyard.daemon.containers import spec as specmod
from dockyard.daemon.interfaces import ImageInfo
from dockyard.oci import defaults

MIN_MEMORY = 6 * 1024 * 1024
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
_ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
OUR_RUNTIME = "dockyard"


@dataclass
class Created:
    config: ContainerConfig
    host_config: HostConfig
    runtime: str  # "dockyard" or a binary path
    path: str
    args: list[str]
    warnings: list[str]


def merge_image_config(config: ContainerConfig, image: dict) -> ContainerConfig:
    """Docker's runconfig merge: the user's values win, the image fills the gaps."""
    if not config.user:
        config.user = image.get("User") or ""
    if image.get("ExposedPorts"):
        config.exposed_ports = {**image["ExposedPorts"], **(config.exposed_ports or {})}
    if image.get("Env"):
        env = list(config.env or [])
        keys = {e.split("=", 1)[0] for e in env}
        env.extend(e for e in image["Env"] if e.split("=", 1)[0] not in keys)
        config.env = env
    if image.get("Labels"):
        config.labels = {**image["Labels"], **(config.labels or {})}
    if not config.entrypoint:
        if not config.cmd:
            config.cmd = image.get("Cmd")
        if config.entrypoint is None:
            config.entrypoint = image.get("Entrypoint")
    if not config.working_dir:
        config.working_dir = image.get("WorkingDir") or ""
    if image.get("Volumes"):
        config.volumes = {**image["Volumes"], **(config.volumes or {})}
    if not config.stop_signal and image.get("StopSignal"):
        config.stop_signal = image["StopSignal"]
    if image.get("Healthcheck"):
        # moby merges field by field: the user's --health-* override only what they set
        image_check = HealthConfig(**{k: v for k, v in _snake(image["Healthcheck"]).items()
                                      if k in HealthConfig.__struct_fields__})
        if config.healthcheck is None:
            config.healthcheck = image_check
        else:
            for field in HealthConfig.__struct_fields__:
                if not getattr(config.healthcheck, field):
                    setattr(config.healthcheck, field, getattr(image_check, field))
    if not config.shell and image.get("Shell"):
        config.shell = image["Shell"]
    return config


def _snake(doc: dict) -> dict:
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in doc.items()}


def _cpu_list(spec: str, what: str) -> set[int]:
    out: set[int] = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise errdefs.InvalidParameter(f"Invalid value {spec} for {what}") from None
    return out


def _available(cgroup_file: str, fallback: str) -> str:
    try:
        return Path(cgroup_file).read_text().strip() or fallback
    except OSError:
        return fallback


def validate_resources(hc: HostConfig, warnings: list[str]) -> None:
    if hc.memory != 0 and hc.memory < MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum memory limit allowed is 6MB")
    if hc.memory > 0 and hc.memory_swap > 0 and hc.memory_swap < hc.memory:
        raise errdefs.InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if hc.memory == 0 and hc.memory_swap > 0:
        raise errdefs.InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage")
    if hc.memory_reservation and hc.memory and hc.memory < hc.memory_reservation:
        raise errdefs.InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage")
    if hc.memory_reservation and hc.memory_reservation < MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum memory reservation allowed is 6MB")
    if hc.memory_swappiness == -1:
        hc.memory_swappiness = None  # the CLI's "unset"; dockerd stores null
    if hc.memory_swappiness is not None and not 0 <= hc.memory_swappiness <= 100:
        raise errdefs.InvalidParameter(
            f"Invalid value: {hc.memory_swappiness}, valid memory swappiness range is 0-100")
    if hc.memory > 0 and hc.memory_swap == 0:
        if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
            hc.memory_swap = hc.memory * 2  # Docker's default: as much swap as memory
        else:
            warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not "
                            "mounted. Memory limited without swap.")
            hc.memory_swap = -1
    ncpu = os.cpu_count() or 1
    if hc.nano_cpus and hc.cpu_period:
        raise errdefs.InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.nano_cpus and hc.cpu_quota:
        raise errdefs.InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if hc.nano_cpus < 0 or hc.nano_cpus > ncpu * 1_000_000_000:
        raise errdefs.InvalidParameter(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if hc.cpu_period and not 1000 <= hc.cpu_period <= 1_000_000:
        raise errdefs.InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if hc.cpu_quota > 0 and hc.cpu_quota < 1000:
        raise errdefs.InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.cpu_shares < 0:
        raise errdefs.InvalidParameter(f"Invalid CPU shares value: {hc.cpu_shares}")
    if hc.cpu_shares:
        hc.cpu_shares = min(max(hc.cpu_shares, 2), 262144)  # the kernel's range, as moby clamps
    if hc.cpuset_cpus:
        available = _available("/sys/fs/cgroup/cpuset/cpuset.cpus", f"0-{ncpu - 1}")
        if not _cpu_list(hc.cpuset_cpus, "cpuset cpus") <= _cpu_list(available, "cpuset cpus"):
            raise errdefs.InvalidParameter(
                f"Requested CPUs are not available - requested {hc.cpuset_cpus}, available: {available}")
    if hc.cpuset_mems:
        available = _available("/sys/fs/cgroup/cpuset/cpuset.mems", "0")
        if not _cpu_list(hc.cpuset_mems, "cpuset mems") <= _cpu_list(available, "cpuset mems"):
            raise errdefs.InvalidParameter(
                f"Requested memory nodes are not available - requested {hc.cpuset_mems}, available: {available}")
    if hc.blkio_weight and not 10 <= hc.blkio_weight <= 1000:
        raise errdefs.InvalidParameter("Range of blkio weight is from 10 to 1000")
    if hc.pids_limit is not None and hc.pids_limit <= 0:
        hc.pids_limit = None  # Docker: zero or negative means unlimited
    if not -1000 <= hc.oom_score_adj <= 1000:
        raise errdefs.InvalidParameter(
            f"Invalid value {hc.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    if hc.shm_size < 0:
        raise errdefs.InvalidParameter("SHM size can not be less than 0")
    for u in hc.ulimits or []:
        if u.name not in _ULIMITS:
            raise errdefs.InvalidParameter(f"invalid ulimit type: {u.name}")
        if u.soft > u.hard:
            raise errdefs.InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}")


def validate_healthcheck(check: HealthConfig | None) -> None:
    """moby's limits: durations of at least 1ms (0 means the default), retries not negative."""
    if check is None:
        return
    for name, value in (("Interval", check.interval), ("Timeout", check.timeout),
                        ("StartPeriod", check.start_period), ("StartInterval", check.start_interval)):
        if value and value < 1_000_000:
            raise errdefs.InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    if check.retries is not None and check.retries < 0:
        raise errdefs.InvalidParameter("Retries in Healthcheck cannot be negative")


def validate_restart(hc: HostConfig) -> None:
    policy = hc.restart_policy
    if policy.name not in RESTART_POLICIES:
        raise errdefs.InvalidParameter(
            f"invalid restart policy: unknown policy '{policy.name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'")
    if policy.maximum_retry_count < 0:
        raise errdefs.InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if policy.maximum_retry_count and policy.name != "on-failure":
        raise errdefs.InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if hc.auto_remove and policy.name not in ("", "no"):
        raise errdefs.InvalidParameter("can't create 'AutoRemove' container with restart policy")
    if not policy.name:
        policy.name = "no"


def validate_capabilities(hc: HostConfig) -> None:
    for field, names in (("CapAdd", hc.cap_add), ("CapDrop", hc.cap_drop)):
        for name in names or []:
            try:
                defaults.normalize_capability(name)
            except errdefs.InvalidParameter as e:
                raise errdefs.InvalidParameter(f"invalid {field}: {e}") from None


def validate_logging(hc: HostConfig, config: DaemonConfig) -> None:
    """moby's mergeAndVerifyLogConfig: no driver means the daemon's (daemon.json log-driver);
    for the daemon's driver, its log-opts fill the options the container does not set."""
    log = hc.log_config
    log.type = log.type or config.log_driver
    log.config = dict(log.config or {})
    if log.type == config.log_driver:
        for key, value in config.log_opts.items():
            log.config.setdefault(key, value)
    logdrivers.validate(log)


def resolve_runtime(name: str, config: DaemonConfig) -> tuple[str, str]:
    """(the name HostConfig.Runtime shows, what the shim runs: "dockyard" or a binary path)."""
    name = name or config.default_runtime
    if name == OUR_RUNTIME:
        return name, OUR_RUNTIME
    if name in config.runtimes:
        return name, config.runtimes[name]
    if name in ("runc", "crun"):
        binary = shutil.which(name)
        if binary:
            return name, binary
    raise errdefs.InvalidParameter(f"unknown or invalid runtime name: {name}")


def endpoints_config(request: CreateRequest, network_mode: str) -> dict[str, EndpointSettings]:
    """NetworkingConfig.EndpointsConfig as the record keeps it ("default" is the bridge)."""
    given = (request.networking_config.endpoints_config or {}) if request.networking_config else {}
    return {("bridge" if name == "default" else name): config or EndpointSettings()
            for name, config in given.items()}


def prepare(request: CreateRequest, image: ImageInfo, container_id: str, config: DaemonConfig) -> Created:
    """Check and complete a create request; raises before anything is made."""
    warnings: list[str] = []
    hc = request.host_config or HostConfig()
    cfg = ContainerConfig(**{f: getattr(request, f) for f in ContainerConfig.__struct_fields__})
    cfg = merge_image_config(cfg, image.config or {})
    command = [*(cfg.entrypoint or []), *(cfg.cmd or [])]
    if not command:
        raise errdefs.InvalidParameter("No command specified")
    validate_resources(hc, warnings)
    validate_restart(hc)
    validate_healthcheck(cfg.healthcheck)
    validate_capabilities(hc)
    validate_logging(hc, config)
    specmod.parse_security_opts(hc.security_opt)
    hc.runtime, runtime = resolve_runtime(hc.runtime, config)
    if hc.cgroupns_mode not in ("", "private", "host"):
        raise errdefs.InvalidParameter(f"invalid cgroup namespace mode: {hc.cgroupns_mode}")
    hc.cgroupns_mode = hc.cgroupns_mode or "private"  # what our spec gives (its own cgroup namespace)
    if hc.network_mode in ("", "default"):
        hc.network_mode = "bridge"
    if not cfg.hostname:
        cfg.hostname = os.uname().nodename if hc.network_mode == "host" else container_id[:12]
    cfg.image = request.image
    return Created(config=cfg, host_config=hc, runtime=runtime, path=command[0], args=command[1:],
                   warnings=warnings)
