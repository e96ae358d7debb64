"""Docker Engine API container shapes, with Docker's JSON names.

Create body (``Config`` + ``HostConfig`` + ``NetworkingConfig``), inspect,
summary (``GET /containers/json``) and the wait answer. Every field a client may
send is optional: the docker CLI sends ``null`` for anything unset. Unknown
fields are ignored (newer clients), as dockerd does.
Reference: docker-engine-api-v1.50.yaml (ContainerConfig, HostConfig,
ContainerInspectResponse, ContainerSummary, ContainerWaitResponse).
"""

from __future__ import annotations

import msgspec


class _D(msgspec.Struct, rename="pascal"):
    pass


# ---- Config ------------------------------------------------------------------

class HealthConfig(_D):
    test: list[str] | None = None
    interval: int | None = None
    timeout: int | None = None
    retries: int | None = None
    start_period: int | None = None
    start_interval: int | None = None


class ContainerConfig(_D):
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: dict[str, dict] | None = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: HealthConfig | None = None
    args_escaped: bool | None = None
    image: str = ""
    volumes: dict[str, dict] | None = None
    working_dir: str = ""
    entrypoint: list[str] | None = None
    network_disabled: bool | None = None
    mac_address: str | None = None
    on_build: list[str] | None = msgspec.field(default=None, name="OnBuild")
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shell: list[str] | None = None


# ---- HostConfig --------------------------------------------------------------

class LogConfig(_D):
    type: str = ""
    config: dict[str, str] | None = None


class RestartPolicy(_D):
    name: str = ""
    maximum_retry_count: int = 0


class ThrottleDevice(_D):
    path: str = ""
    rate: int = 0


class WeightDevice(_D):
    path: str = ""
    weight: int = 0


class Ulimit(_D):
    name: str = ""
    soft: int = 0
    hard: int = 0


class PortBinding(_D):
    host_ip: str = msgspec.field(default="", name="HostIp")
    host_port: str = ""


class DeviceMapping(_D):
    path_on_host: str = ""
    path_in_container: str = ""
    cgroup_permissions: str = ""


class HostConfig(_D):
    # resources
    cpu_shares: int = 0
    memory: int = 0
    cgroup_parent: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[WeightDevice] | None = None
    blkio_device_read_bps: list[ThrottleDevice] | None = None
    blkio_device_write_bps: list[ThrottleDevice] | None = None
    blkio_device_read_iops: list[ThrottleDevice] | None = msgspec.field(default=None, name="BlkioDeviceReadIOps")
    blkio_device_write_iops: list[ThrottleDevice] | None = msgspec.field(default=None, name="BlkioDeviceWriteIOps")
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list[DeviceMapping] | None = None
    device_cgroup_rules: list[str] | None = None
    device_requests: list[dict] | None = None
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None
    nano_cpus: int = 0
    oom_kill_disable: bool | None = None
    init: bool | None = None
    pids_limit: int | None = None
    ulimits: list[Ulimit] | None = None
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_iops: int = msgspec.field(default=0, name="IOMaximumIOps")
    io_maximum_bandwidth: int = msgspec.field(default=0, name="IOMaximumBandwidth")
    # everything else
    binds: list[str] | None = None
    container_id_file: str = msgspec.field(default="", name="ContainerIDFile")
    log_config: LogConfig = msgspec.field(default_factory=LogConfig)
    network_mode: str = ""
    port_bindings: dict[str, list[PortBinding] | None] | None = None
    restart_policy: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    mounts: list[dict] | None = None  # parsed by the volume service (apitypes.volume.MountSpec)
    console_size: list[int] | None = None
    annotations: dict[str, str] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = ""
    dns: list[str] | None = None
    dns_options: list[str] | None = None
    dns_search: list[str] | None = None
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = ""
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: dict[str, str] | None = None
    tmpfs: dict[str, str] | None = None
    uts_mode: str = msgspec.field(default="", name="UTSMode")
    userns_mode: str = ""
    shm_size: int = 0
    sysctls: dict[str, str] | None = None
    runtime: str = ""
    isolation: str = ""
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None


class EndpointIPAMConfig(_D):
    ipv4_address: str = msgspec.field(default="", name="IPv4Address")
    ipv6_address: str = msgspec.field(default="", name="IPv6Address")


class EndpointSettings(_D):
    ipam_config: EndpointIPAMConfig | None = msgspec.field(default=None, name="IPAMConfig")
    links: list[str] | None = None
    mac_address: str = ""
    aliases: list[str] | None = None
    driver_opts: dict[str, str] | None = None
    gw_priority: int = 0
    network_id: str = msgspec.field(default="", name="NetworkID")
    endpoint_id: str = msgspec.field(default="", name="EndpointID")
    gateway: str = ""
    ip_address: str = msgspec.field(default="", name="IPAddress")
    ip_prefix_len: int = msgspec.field(default=0, name="IPPrefixLen")
    ipv6_gateway: str = msgspec.field(default="", name="IPv6Gateway")
    global_ipv6_address: str = msgspec.field(default="", name="GlobalIPv6Address")
    global_ipv6_prefix_len: int = msgspec.field(default=0, name="GlobalIPv6PrefixLen")
    dns_names: list[str] | None = msgspec.field(default=None, name="DNSNames")


class NetworkingConfig(_D):
    endpoints_config: dict[str, EndpointSettings | None] | None = None


class CreateRequest(ContainerConfig):
    """POST /containers/create body: Config fields at top level plus HostConfig."""
    host_config: HostConfig | None = None
    networking_config: NetworkingConfig | None = None


class CreateResponse(_D):
    id: str = msgspec.field(name="Id")
    warnings: list[str] = []


# ---- inspect -----------------------------------------------------------------

class State(_D):
    status: str = "created"  # created running paused restarting removing exited dead
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = msgspec.field(default=False, name="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"


class HealthcheckResult(_D):
    start: str  # RFC 3339, UTC
    end: str
    exit_code: int  # 0 healthy, 1 unhealthy, -1 the probe could not run or timed out
    output: str


class Health(_D):
    status: str = "starting"  # starting healthy unhealthy
    failing_streak: int = 0
    log: list[HealthcheckResult] = []  # the last five probes


class StateWithHealth(State, kw_only=True):
    """State of a container with a health check: Docker omits ``Health`` for the others."""
    health: Health


class MountPoint(_D):
    type: str = "bind"
    name: str = ""
    source: str = ""
    destination: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = msgspec.field(default=True, name="RW")
    propagation: str = ""


class Port(_D):
    private_port: int
    type: str
    ip: str | None = msgspec.field(default=None, name="IP")
    public_port: int | None = None


class NetworkSettings(_D):
    bridge: str = ""
    sandbox_id: str = msgspec.field(default="", name="SandboxID")
    sandbox_key: str = ""
    ports: dict[str, list[PortBinding] | None] = {}
    hairpin_mode: bool = False
    link_local_ipv6_address: str = msgspec.field(default="", name="LinkLocalIPv6Address")
    link_local_ipv6_prefix_len: int = msgspec.field(default=0, name="LinkLocalIPv6PrefixLen")
    secondary_ip_addresses: list | None = msgspec.field(default=None, name="SecondaryIPAddresses")
    secondary_ipv6_addresses: list | None = msgspec.field(default=None, name="SecondaryIPv6Addresses")
    endpoint_id: str = msgspec.field(default="", name="EndpointID")
    gateway: str = ""
    global_ipv6_address: str = msgspec.field(default="", name="GlobalIPv6Address")
    global_ipv6_prefix_len: int = msgspec.field(default=0, name="GlobalIPv6PrefixLen")
    ip_address: str = msgspec.field(default="", name="IPAddress")
    ip_prefix_len: int = msgspec.field(default=0, name="IPPrefixLen")
    ipv6_gateway: str = msgspec.field(default="", name="IPv6Gateway")
    mac_address: str = ""
    networks: dict[str, EndpointSettings] = {}


class GraphDriver(_D):
    name: str = "overlay2"
    data: dict[str, str] | None = None


class ContainerInspect(_D):
    id: str = msgspec.field(name="Id")
    created: str
    path: str
    args: list[str]
    state: State
    image: str
    resolv_conf_path: str
    hostname_path: str
    hosts_path: str
    log_path: str
    name: str
    restart_count: int
    driver: str
    platform: str
    mount_label: str
    process_label: str
    app_armor_profile: str = msgspec.field(name="AppArmorProfile")
    exec_ids: list[str] | None = msgspec.field(name="ExecIDs")
    host_config: HostConfig
    graph_driver: GraphDriver
    mounts: list[MountPoint]
    config: ContainerConfig
    network_settings: NetworkSettings
    size_rw: int | None = msgspec.field(default=None, name="SizeRw")
    size_root_fs: int | None = msgspec.field(default=None, name="SizeRootFs")


# ---- list --------------------------------------------------------------------

class SummaryHostConfig(_D):
    network_mode: str = ""
    annotations: dict[str, str] | None = None


class SummaryNetworkSettings(_D):
    networks: dict[str, EndpointSettings] = {}


class ContainerSummary(_D):
    id: str = msgspec.field(name="Id")
    names: list[str]
    image: str
    image_id: str = msgspec.field(name="ImageID")
    command: str
    created: int
    ports: list[Port]
    labels: dict[str, str]
    state: str
    status: str
    host_config: SummaryHostConfig
    network_settings: SummaryNetworkSettings
    mounts: list[MountPoint]
    size_rw: int | None = msgspec.field(default=None, name="SizeRw")
    size_root_fs: int | None = msgspec.field(default=None, name="SizeRootFs")


class UpdateRequest(_D):
    """POST /containers/{id}/update body (docker update): Resources plus RestartPolicy."""
    cpu_shares: int = 0
    memory: int = 0
    blkio_weight: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_reservation: int = 0
    memory_swap: int = 0
    nano_cpus: int = msgspec.field(default=0, name="NanoCpus")
    pids_limit: int | None = None
    restart_policy: RestartPolicy | None = None


# ---- wait / prune ------------------------------------------------------------

class WaitExitError(_D):
    message: str = ""


class WaitResponse(_D):
    status_code: int
    error: WaitExitError | None = None


class PruneResponse(_D):
    containers_deleted: list[str] | None = None
    space_reclaimed: int = 0
