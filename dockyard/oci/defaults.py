"""Docker's container defaults expressed as OCI runtime-spec data.

What ``docker run`` gives a container when the user asks for nothing special:
the 14 default capabilities, the masked and read-only ``/proc`` and ``/sys``
paths, the standard mounts (proc, /dev tmpfs, devpts, shm, mqueue, sysfs,
cgroup), the device nodes and device-cgroup allow list, the six namespaces and
the default seccomp profile. ``base_spec`` assembles a complete ``Spec``; the
daemon then layers the container's HostConfig on top (binds, resources,
cgroupsPath, ...). Plain data, no I/O except reading our own NOFILE limit.
Reference: moby ``oci/defaults.go``, ``oci/caps``, runc ``libcontainer/specconv``.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable

from dockyard.errdefs import InvalidParameter
from dockyard.oci.runtime_spec import (
    Capabilities,
    Device,
    DeviceCgroup,
    Linux,
    Mount,
    Namespace,
    Process,
    Resources,
    Rlimit,
    Root,
    Spec,
    User,
)
from dockyard.oci.seccomp_default import default_seccomp

# Index == the kernel's capability number (include/uapi/linux/capability.h).
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS: dict[str, int] = {name: number for number, name in enumerate(ALL_CAPABILITIES)}

# Docker's default set, in moby's order (oci/caps/defaults.go).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

NAMESPACES: tuple[str, ...] = ("mount", "pid", "uts", "ipc", "network", "cgroup")

DEFAULT_ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHM_SIZE = 64 * 1024 * 1024
# Docker's default NOFILE (1048576), clamped to what this process may grant:
# without CAP_SYS_RESOURCE nothing can raise a hard limit above our own.
DEFAULT_NOFILE = 1048576


def normalize_capability(name: str) -> str:
    """``sys_admin`` / ``CAP_SYS_ADMIN`` -> ``CAP_SYS_ADMIN``; ``all`` -> ``ALL``.

    Raises InvalidParameter with moby's wording for an unknown name.
    """
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in CAPABILITY_NUMBERS:
        raise InvalidParameter(f'unknown capability: "{cap}"')
    return cap


def _normalize_all(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        cap = normalize_capability(name)
        if cap not in out:
            out.append(cap)
    return out


def capability_list(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (), privileged: bool = False) -> list[str]:
    """The effective capability names after --cap-add/--cap-drop/--privileged (moby TweakCapabilities)."""
    if privileged:
        return list(ALL_CAPABILITIES)
    adds = _normalize_all(cap_add)
    drops = _normalize_all(cap_drop)
    if not adds and not drops:
        return list(DEFAULT_CAPABILITIES)
    if "ALL" in adds:
        return [c for c in ALL_CAPABILITIES if c not in drops]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"]
    caps = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    caps.extend(c for c in adds if c not in caps)
    return caps


def capabilities_for(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (), privileged: bool = False) -> Capabilities:
    """OCI capability sets as Docker writes them: bounding = permitted = effective, nothing inheritable."""
    caps = capability_list(cap_add, cap_drop, privileged)
    return Capabilities(bounding=list(caps), effective=list(caps), permitted=list(caps))


def default_mounts(*, privileged: bool = False, shm_size: int = SHM_SIZE) -> list[Mount]:
    """Docker's standard mounts; sysfs and cgroup are read-only unless privileged."""
    sys_ro = [] if privileged else ["ro"]
    return [
        Mount(destination="/proc", type="proc", source="proc", options=["nosuid", "noexec", "nodev"]),
        Mount(
            destination="/dev",
            type="tmpfs",
            source="tmpfs",
            options=["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount(
            destination="/dev/pts",
            type="devpts",
            source="devpts",
            options=["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount(destination="/sys", type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", *sys_ro]),
        Mount(
            destination="/sys/fs/cgroup",
            type="cgroup",
            source="cgroup",
            options=["nosuid", "noexec", "nodev", "relatime", *sys_ro],
        ),
        Mount(destination="/dev/mqueue", type="mqueue", source="mqueue", options=["nosuid", "noexec", "nodev"]),
        Mount(
            destination="/dev/shm",
            type="tmpfs",
            source="shm",
            options=["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        ),
    ]


def default_devices() -> list[Device]:
    """The device nodes every container gets in its /dev (runc's default set)."""

    def char(path: str, major: int, minor: int) -> Device:
        return Device(path=path, type="c", major=major, minor=minor, file_mode=0o666, uid=0, gid=0)

    return [
        char("/dev/null", 1, 3),
        char("/dev/zero", 1, 5),
        char("/dev/full", 1, 7),
        char("/dev/random", 1, 8),
        char("/dev/urandom", 1, 9),
        char("/dev/tty", 5, 0),
    ]


def default_device_rules(*, privileged: bool = False) -> list[DeviceCgroup]:
    """Device cgroup rules: deny everything, then Docker/runc's allow list (or allow all if privileged)."""
    if privileged:
        return [DeviceCgroup(allow=True, access="rwm")]

    def allow(kind: str, major: int | None, minor: int | None, access: str = "rwm") -> DeviceCgroup:
        return DeviceCgroup(allow=True, type=kind, major=major, minor=minor, access=access)

    return [
        DeviceCgroup(allow=False, access="rwm"),
        allow("c", None, None, "m"),  # mknod of any char device (opening still needs a rule)
        allow("b", None, None, "m"),
        allow("c", 1, 3),  # null
        allow("c", 1, 8),  # random
        allow("c", 1, 7),  # full
        allow("c", 5, 0),  # tty
        allow("c", 1, 5),  # zero
        allow("c", 1, 9),  # urandom
        allow("c", 5, 1),  # console
        allow("c", 136, None),  # pts
        allow("c", 5, 2),  # ptmx
        allow("c", 10, 200),  # tun
    ]


def default_rlimits() -> list[Rlimit]:
    """RLIMIT_NOFILE as Docker containers usually see it (1048576), capped at our own hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)
    return [Rlimit(type="RLIMIT_NOFILE", hard=nofile, soft=nofile)]


def base_spec(
    args: list[str],
    env: list[str],
    cwd: str,
    rootfs_path: str,
    hostname: str,
    *,
    user: User | None = None,
    terminal: bool = False,
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    privileged: bool = False,
    readonly_rootfs: bool = False,
    domainname: str | None = None,
    shm_size: int = SHM_SIZE,
) -> Spec:
    """A complete spec for ``docker run`` defaults. The caller sets ``linux.cgroups_path``,
    resources, extra mounts and namespace paths (e.g. network joined from a netns file)."""
    if not any(e.startswith("PATH=") for e in env):
        env = [DEFAULT_ENV_PATH, *env]
    caps = capability_list(cap_add, cap_drop, privileged)
    return Spec(
        process=Process(
            args=list(args),
            cwd=cwd or "/",
            env=list(env),
            terminal=terminal,
            user=user or User(),
            capabilities=Capabilities(bounding=list(caps), effective=list(caps), permitted=list(caps)),
            rlimits=default_rlimits(),
            no_new_privileges=False,
        ),
        root=Root(path=rootfs_path, readonly=readonly_rootfs),
        hostname=hostname,
        domainname=domainname,
        mounts=default_mounts(privileged=privileged, shm_size=shm_size),
        linux=Linux(
            namespaces=[Namespace(type=t) for t in NAMESPACES],
            resources=Resources(devices=default_device_rules(privileged=privileged)),
            devices=default_devices(),
            seccomp=None if privileged else default_seccomp(caps),
            masked_paths=[] if privileged else list(MASKED_PATHS),
            readonly_paths=[] if privileged else list(READONLY_PATHS),
        ),
    )
