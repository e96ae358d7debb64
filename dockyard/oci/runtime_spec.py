"""OCI runtime-spec ``config.json`` as typed data (the subset Dockyard uses).

Field names are the spec's JSON names (camelCase via ``rename``). The daemon
builds a ``Spec`` from a container's Config/HostConfig; the runtime (ours, runc
or crun) reads it from the bundle. No I/O here beyond encode/decode helpers.
Reference: https://github.com/opencontainers/runtime-spec/blob/main/config.md
"""

from __future__ import annotations

import msgspec

OCI_VERSION = "1.0.2"


class _S(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class User(_S):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] | None = None


class Capabilities(_S):
    bounding: list[str] = []
    effective: list[str] = []
    inheritable: list[str] = []
    permitted: list[str] = []
    ambient: list[str] = []


class Rlimit(_S):
    type: str  # "RLIMIT_NOFILE"
    hard: int
    soft: int


class ConsoleSize(_S):
    height: int
    width: int


class Process(_S):
    args: list[str]
    cwd: str  # required: runc rejects a config without it (omit_defaults would drop "/")
    env: list[str] = []
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = msgspec.field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = []
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None


class Root(_S):
    path: str
    readonly: bool = False


class Mount(_S):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = []


class Namespace(_S):
    type: str  # pid network mount ipc uts user cgroup
    path: str | None = None


class Device(_S):
    path: str
    type: str  # c b u p
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class DeviceCgroup(_S):
    allow: bool
    type: str | None = None  # a c b
    major: int | None = None
    minor: int | None = None
    access: str | None = None  # rwm


class Memory(_S):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None  # memory+swap, as OCI and cgroup v1 memsw
    kernel: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None


class CPU(_S):
    shares: int | None = None
    quota: int | None = None
    period: int | None = None
    cpus: str | None = None
    mems: str | None = None


class Pids(_S):
    limit: int


class ThrottleDevice(_S):
    major: int
    minor: int
    rate: int


class WeightDevice(_S):
    major: int
    minor: int
    weight: int | None = None


class BlockIO(_S):
    weight: int | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = None
    throttle_write_iops_device: list[ThrottleDevice] | None = None


class Resources(_S):
    devices: list[DeviceCgroup] = []
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = msgspec.field(default=None, name="blockIO")


class SeccompArg(_S):
    index: int
    value: int
    op: str  # SCMP_CMP_EQ ...
    value_two: int = 0


class SeccompSyscall(_S):
    names: list[str]
    action: str  # SCMP_ACT_ALLOW / SCMP_ACT_ERRNO / ...
    args: list[SeccompArg] = []
    errno_ret: int | None = None


class Seccomp(_S):
    default_action: str
    architectures: list[str] = []
    syscalls: list[SeccompSyscall] = []
    default_errno_ret: int | None = None


class Linux(_S):
    namespaces: list[Namespace] = []
    resources: Resources | None = None
    cgroups_path: str | None = None
    devices: list[Device] = []
    seccomp: Seccomp | None = None
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    sysctl: dict[str, str] = {}
    rootfs_propagation: str | None = None


class Spec(_S, kw_only=True):
    oci_version: str = msgspec.field(default=OCI_VERSION)
    process: Process
    root: Root
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] = []
    linux: Linux = msgspec.field(default_factory=Linux)
    annotations: dict[str, str] = {}


_encoder = msgspec.json.Encoder()


def encode(spec: Spec) -> bytes:
    """JSON for config.json; ``ociVersion`` is always written (runc requires it)."""
    body = _encoder.encode(spec)
    if not body.startswith(b'{"ociVersion"'):
        body = b'{"ociVersion":"' + spec.oci_version.encode() + b'",' + body[1:]
    return body


def decode(data: bytes) -> Spec:
    return msgspec.json.decode(data, type=Spec)
