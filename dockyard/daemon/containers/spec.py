"""Config + HostConfig + the resolved user and sandbox -> the OCI runtime Spec.

``dockyard.oci.defaults.base_spec`` gives Docker's defaults; this module layers
the container's own settings on top, one helper per concern. Pure apart from
``stat`` of device paths (major/minor numbers for throttling and --device).
"""

from __future__ import annotations

import json
import os
import stat

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.user import ExecUser
from dockyard.daemon.interfaces import SandboxInfo
from dockyard.oci import defaults
from dockyard.oci import runtime_spec as oci

INIT_BINARY = "/usr/bin/tini-static"
INIT_PATH = "/sbin/docker-init"
# Docker's default rbind propagation for the network files.
_DEFAULT_PROPAGATION = "rprivate"


def parse_security_opts(opts: list[str] | None) -> tuple[bool, str | None]:
    """(no_new_privileges, seccomp: None for the default | "unconfined" | a profile's JSON).

    Docker's CLI sends ``seccomp=<file contents>``; ``label=`` and ``apparmor=``
    are accepted and have no effect on this host (no SELinux/AppArmor here).
    """
    no_new_privileges = False
    seccomp: str | None = None
    for index, opt in enumerate(opts or [], start=1):
        if opt == "no-new-privileges":
            no_new_privileges = True
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep:
            raise errdefs.InvalidParameter(f'invalid --security-opt {index}: "{opt}"')
        if key == "no-new-privileges":
            if value not in ("true", "false"):
                raise errdefs.InvalidParameter(f'invalid --security-opt {index}: "{opt}"')
            no_new_privileges = value == "true"
        elif key == "seccomp":
            seccomp = value
        elif key in ("label", "apparmor", "systempaths", "writable-cgroups"):
            continue
        else:
            raise errdefs.InvalidParameter(f'invalid --security-opt {index}: "{opt}"')
    return no_new_privileges, seccomp


_ARCH_ALIASES = {"amd64": "SCMP_ARCH_X86_64", "x86_64": "SCMP_ARCH_X86_64", "386": "SCMP_ARCH_X86",
                 "x32": "SCMP_ARCH_X32"}


def seccomp_from_profile(profile_json: str, capabilities: list[str]) -> oci.Seccomp:
    """A Docker seccomp profile (the JSON ``--security-opt seccomp=`` sends) as OCI data."""
    try:
        profile = json.loads(profile_json)
        if not isinstance(profile, dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise errdefs.InvalidParameter(f"decoding seccomp profile failed: {e}") from None
    architectures: list[str] = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == "SCMP_ARCH_X86_64":
            architectures = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    caps = set(capabilities)
    syscalls: list[oci.SeccompSyscall] = []
    for entry in profile.get("syscalls") or []:
        includes = entry.get("includes") or {}
        excludes = entry.get("excludes") or {}
        if includes.get("caps") and not set(includes["caps"]) <= caps:
            continue
        if excludes.get("caps") and set(excludes["caps"]) & caps:
            continue
        if includes.get("arches") and "SCMP_ARCH_X86_64" not in {
                _ARCH_ALIASES.get(a, a) for a in includes["arches"]}:
            continue
        if excludes.get("arches") and "SCMP_ARCH_X86_64" in {
                _ARCH_ALIASES.get(a, a) for a in excludes["arches"]}:
            continue
        names = list(entry.get("names") or ([entry["name"]] if entry.get("name") else []))
        if not names:
            continue
        syscalls.append(oci.SeccompSyscall(
            names=names,
            action=entry["action"],
            args=[oci.SeccompArg(index=a["index"], value=a.get("value", 0), op=a["op"],
                                 value_two=a.get("valueTwo", 0)) for a in entry.get("args") or []],
            errno_ret=entry.get("errnoRet"),
        ))
    if "defaultAction" not in profile:
        raise errdefs.InvalidParameter("decoding seccomp profile failed: missing defaultAction")
    return oci.Seccomp(default_action=profile["defaultAction"], architectures=architectures,
                       syscalls=syscalls, default_errno_ret=profile.get("defaultErrnoRet"))


def _device_numbers(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise errdefs.InvalidParameter(f"error gathering device information while adding custom device "
                                       f"{path!r}: {e.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise errdefs.InvalidParameter(f"{path} is not a device")
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev)


def _throttle(devices) -> list[oci.ThrottleDevice] | None:
    if not devices:
        return None
    out = []
    for d in devices:
        _, major, minor = _device_numbers(d.path)
        out.append(oci.ThrottleDevice(major=major, minor=minor, rate=d.rate))
    return out


def resources(hc: HostConfig) -> oci.Resources:
    res = oci.Resources(devices=defaults.default_device_rules(privileged=hc.privileged))
    memory = oci.Memory(
        limit=hc.memory or None,
        reservation=hc.memory_reservation or None,
        swap=(hc.memory_swap if hc.memory_swap and hc.memory else None),
        swappiness=hc.memory_swappiness if hc.memory_swappiness not in (None, -1) else None,
        disable_oom_killer=hc.oom_kill_disable or None,
    )
    if memory != oci.Memory():
        res.memory = memory
    quota, period = hc.cpu_quota, hc.cpu_period
    if hc.nano_cpus:
        period = 100_000
        quota = hc.nano_cpus * period // 1_000_000_000
    cpu = oci.CPU(shares=hc.cpu_shares or None, quota=quota or None, period=period or None,
                  cpus=hc.cpuset_cpus or None, mems=hc.cpuset_mems or None)
    if cpu != oci.CPU():
        res.cpu = cpu
    if hc.pids_limit is not None and hc.pids_limit > 0:
        res.pids = oci.Pids(limit=hc.pids_limit)
    blkio = oci.BlockIO(
        weight=hc.blkio_weight or None,
        throttle_read_bps_device=_throttle(hc.blkio_device_read_bps),
        throttle_write_bps_device=_throttle(hc.blkio_device_write_bps),
        throttle_read_iops_device=_throttle(hc.blkio_device_read_iops),
        throttle_write_iops_device=_throttle(hc.blkio_device_write_iops),
    )
    if blkio != oci.BlockIO():
        res.block_io = blkio
    for mapping in hc.devices or []:
        kind, major, minor = _device_numbers(mapping.path_on_host)
        res.devices.append(oci.DeviceCgroup(allow=True, type=kind, major=major, minor=minor,
                                            access=mapping.cgroup_permissions or "rwm"))
    return res


def rlimits(hc: HostConfig) -> list[oci.Rlimit]:
    limits = {r.type: r for r in defaults.default_rlimits()}
    for u in hc.ulimits or []:
        kind = "RLIMIT_" + u.name.upper()
        limits[kind] = oci.Rlimit(type=kind, hard=u.hard, soft=u.soft)
    return list(limits.values())


def environment(rec: ContainerRecord, user: ExecUser) -> list[str]:
    """Docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM (tty), then the container's Env wins."""
    env = [defaults.DEFAULT_ENV_PATH, f"HOSTNAME={rec.config.hostname}"]
    if rec.config.tty:
        env.append("TERM=xterm")
    for entry in rec.config.env or []:
        key = entry.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != key]
        env.append(entry)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    return env


def _bind(source: str, destination: str, read_only: bool, propagation: str = _DEFAULT_PROPAGATION) -> oci.Mount:
    return oci.Mount(destination=destination, type="bind", source=source,
                     options=["rbind", propagation, "ro" if read_only else "rw"])


def build(rec: ContainerRecord, user: ExecUser, *, rootfs: str, sandbox: SandboxInfo,
          cgroup_parent: str, volume_mounts: list[oci.Mount] = ()) -> oci.Spec:
    hc = rec.host_config
    args = [rec.path, *rec.args]
    if hc.init:
        args = [INIT_PATH, "--", *args]
    shm_size = hc.shm_size or defaults.SHM_SIZE
    spec = defaults.base_spec(
        args=args, env=environment(rec, user), cwd=rec.config.working_dir or "/",
        rootfs_path=rootfs, hostname=rec.config.hostname,
        user=oci.User(uid=user.uid, gid=user.gid, additional_gids=user.additional_gids or None),
        terminal=rec.config.tty, cap_add=hc.cap_add or (), cap_drop=hc.cap_drop or (),
        privileged=hc.privileged, readonly_rootfs=hc.readonly_rootfs,
        domainname=rec.config.domainname or None, shm_size=shm_size,
    )
    process, linux = spec.process, spec.linux
    if hc.console_size and len(hc.console_size) == 2 and all(hc.console_size):
        process.console_size = oci.ConsoleSize(height=hc.console_size[0], width=hc.console_size[1])
    process.rlimits = rlimits(hc)
    if hc.oom_score_adj:
        process.oom_score_adj = hc.oom_score_adj

    no_new_privileges, seccomp = parse_security_opts(hc.security_opt)
    process.no_new_privileges = no_new_privileges
    if seccomp == "unconfined":
        linux.seccomp = None
    elif seccomp is not None and not hc.privileged:
        caps = process.capabilities.bounding if process.capabilities else []
        linux.seccomp = seccomp_from_profile(seccomp, caps)

    # Namespaces: share the host's where the HostConfig asks; network from the sandbox.
    shared = {"pid": hc.pid_mode == "host", "ipc": hc.ipc_mode == "host", "uts": hc.uts_mode == "host",
              "cgroup": hc.cgroupns_mode == "host"}
    namespaces = []
    for ns in linux.namespaces:
        if shared.get(ns.type):
            continue
        if ns.type == "network":
            if sandbox.netns_path is None:
                continue
            ns = oci.Namespace(type="network", path=sandbox.netns_path)
        namespaces.append(ns)
    linux.namespaces = namespaces
    linux.cgroups_path = f"{hc.cgroup_parent or cgroup_parent}/{rec.id}"
    linux.resources = resources(hc)
    linux.sysctl = dict(hc.sysctls or {})
    if hc.masked_paths is not None:
        linux.masked_paths = list(hc.masked_paths)
    if hc.readonly_paths is not None:
        linux.readonly_paths = list(hc.readonly_paths)
    for mapping in hc.devices or []:
        kind, major, minor = _device_numbers(mapping.path_on_host)
        linux.devices.append(oci.Device(path=mapping.path_in_container or mapping.path_on_host, type=kind,
                                        major=major, minor=minor, file_mode=0o666, uid=0, gid=0))

    user_mounts = list(volume_mounts)  # -v, --mount, --volumes-from, VOLUME: the volume service's
    for destination, options in (hc.tmpfs or {}).items():
        opts = ["noexec", "nosuid", "nodev", *filter(None, options.split(","))]
        user_mounts.append(oci.Mount(destination=destination, type="tmpfs", source="tmpfs", options=opts))
    user_destinations = {m.destination for m in user_mounts}
    mounts = [m for m in spec.mounts if m.destination not in user_destinations] + user_mounts
    for path, destination in ((sandbox.hosts_path, "/etc/hosts"),
                              (sandbox.resolv_conf_path, "/etc/resolv.conf"),
                              (sandbox.hostname_path, "/etc/hostname")):
        if path is not None and destination not in user_destinations:
            mounts.append(_bind(str(path), destination, hc.readonly_rootfs))
    if hc.init:
        mounts.append(_bind(INIT_BINARY, INIT_PATH, True))
    spec.mounts = mounts
    return spec
