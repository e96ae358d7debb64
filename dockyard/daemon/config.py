"""Daemon configuration: dockerd-compatible flags merged over daemon.json.

Plain data; ``dockyard.cmd.dockyardd`` fills it, every service reads it.
Paths derived from the two roots live here so every service agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DaemonConfig:
    data_root: Path = Path("/var/lib/dockyard")
    exec_root: Path = Path("/run/dockyard")
    hosts: list[str] = field(default_factory=lambda: ["unix:///run/dockyard/dockyard.sock"])
    pidfile: Path | None = None  # default: exec_root / "dockyardd.pid"
    log_level: str = "info"
    config_file: Path = Path("/etc/dockyard/daemon.json")
    default_runtime: str = "dockyard"  # or "runc", "crun"
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> binary path (runc-compatible)
    bridge: str = "dockyard0"  # default bridge name; "none" disables the default bridge
    bip: str | None = None  # gateway CIDR of the default bridge, e.g. "172.30.0.1/16"
    default_address_pools: list[dict] = field(
        default_factory=lambda: [{"base": "172.30.0.0/16", "size": 24}]
    )
    # Unlike Docker's unbounded json-file default, a chatty container cannot fill the disk:
    # 5 files of at most 20 MB each (what Docker's `local` driver keeps by default)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=lambda: {"max-size": "20m", "max-file": "5"})
    cgroup_parent: str = "/dockyard"  # our containers' cgroups go below this in each hierarchy
    live_restore: bool = True
    iptables: bool = True
    ip_forward: bool = True
    userland_proxy: bool = True  # dockerd's --userland-proxy: published ports on 127.0.0.1 by proxy
    icc: bool = True  # dockerd's --icc: containers on the default bridge may talk to each other
    tls: bool = False
    tlscacert: Path | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    tlsverify: bool = False
    # registries (daemon/distribution): Docker's daemon.json keys and defaults
    insecure_registries: list[str] = field(default_factory=list)  # names or CIDRs; 127.0.0.0/8 always
    registry_mirrors: list[str] = field(default_factory=list)  # tried first for docker.io pulls
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    registry_certs_dir: Path = Path("/etc/dockyard/certs.d")  # <host[:port]>/ca.crt, client.cert/.key
    # Where Docker volume plugins are found (as dockerd): <name>.sock in the socket dirs,
    # <name>.spec / <name>.json in the spec dirs. dockyardd --plugin-dir replaces both.
    plugin_socket_dirs: list[Path] = field(default_factory=lambda: [Path("/run/docker/plugins")])
    plugin_spec_dirs: list[Path] = field(
        default_factory=lambda: [Path("/etc/docker/plugins"), Path("/usr/lib/docker/plugins")])

    # Derived locations (everything a service writes lives below the two roots).
    @property
    def db_path(self) -> Path:
        return self.data_root / "dockyard.db"

    @property
    def image_root(self) -> Path:
        return self.data_root / "image"  # content/, layers/, ... owned by storage

    @property
    def snapshot_root(self) -> Path:
        return self.data_root / "overlay"

    def container_data_dir(self, container_id: str) -> Path:
        """Persistent per-container files: json log, hostname, hosts, resolv.conf."""
        return self.data_root / "containers" / container_id

    def container_exec_dir(self, container_id: str) -> Path:
        """Per-container runtime state: bundle (config.json, rootfs mountpoint), shim socket, exit file."""
        return self.exec_root / "containers" / container_id

    @property
    def zygote_socket(self) -> Path:
        return self.exec_root / "zygote.sock"

    @property
    def runtime_root(self) -> Path:
        return self.exec_root / "runtime"

    @property
    def netns_dir(self) -> Path:
        return self.exec_root / "netns"

    @property
    def lock_path(self) -> Path:
        return self.data_root / "dockyardd.lock"
