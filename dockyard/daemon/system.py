"""System-wide answers: version, info, disk usage. Reads from the other services."""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import msgspec

from dockyard.daemon.config import DaemonConfig

VERSION = "0.1.0"
API_VERSION = "1.50"
MIN_API_VERSION = "1.24"


class ContainerCounts(Protocol):
    def counts(self) -> dict[str, int]:
        """{"total", "running", "paused", "stopped"}"""

    def disk_usage(self) -> list[dict[str, Any]]:
        """Container summaries with SizeRw and SizeRootFs, for /system/df."""


class VolumeUsage(Protocol):
    def disk_usage(self) -> list[Any]:
        """Volumes (apitypes.volume.Volume) with UsageData, for /system/df."""


class BuildCacheUsage(Protocol):
    def disk_usage(self) -> list[dict[str, Any]]:
        """The classic builder's cache records (moby's BuildCache shape), for /system/df."""


class ImageCounts(Protocol):
    def count(self) -> int: ...

    def disk_usage(self) -> dict[str, Any]:
        """{"LayersSize": int, "Images": [image summaries]} for /system/df."""


def _engine_id(data_root: Path) -> str:
    """A stable daemon ID, made once per data root (Docker keeps engine-id likewise)."""
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = str(uuid.uuid4())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(ident)
        os.replace(tmp, path)
        return ident


def _cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _read_flag(path: str) -> bool:
    try:
        return Path(path).read_text().strip() == "1"
    except OSError:
        return False


class SystemService:
    def __init__(self, config: DaemonConfig, containers: ContainerCounts, images: ImageCounts,
                 runtimes: dict[str, str], volumes: VolumeUsage | None = None,
                 build_cache: BuildCacheUsage | None = None) -> None:
        self.config = config
        self.volumes = volumes
        self.build_cache = build_cache
        self.containers = containers
        self.images = images
        self.runtimes = runtimes  # name -> path ("dockyard" -> our builtin)
        self.id = _engine_id(config.data_root)
        self.started = time.time()

    def version(self) -> dict[str, Any]:
        uname = platform.uname()
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                   "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
                   "Os": "linux", "Arch": _arch(), "KernelVersion": uname.release,
                   "Experimental": "true", "BuildTime": ""}
        return {
            "Platform": {"Name": "Dockyard"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
            "Version": VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": uname.release,
            "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        counts = self.containers.counts()
        cgv = _cgroup_version()
        warnings = []
        if cgv == "1" and not Path("/sys/fs/cgroup/blkio/blkio.weight").exists():
            warnings.append("WARNING: No blkio weight support")
            warnings.append("WARNING: No blkio weight_device support")
        if not self.config.ip_forward and not _read_flag("/proc/sys/net/ipv4/ip_forward"):
            warnings.append("WARNING: IPv4 forwarding is disabled")
        runtimes = {name: {"path": path} for name, path in self.runtimes.items()}
        return {
            "ID": self.id,
            "Containers": counts["total"],
            "ContainersRunning": counts["running"],
            "ContainersPaused": counts["paused"],
            "ContainersStopped": counts["stopped"],
            "Images": self.images.count(),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", _fs_type(self.config.data_root)],
                             ["Supports d_type", "true"], ["Using metacopy", "false"],
                             ["Native Overlay Diff", "true"], ["userxattr", "false"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                        "Authorization": None, "Log": ["json-file", "local", "none"]},
            "MemoryLimit": True,
            "SwapLimit": Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() or cgv == "2",
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "OomKillDisable": cgv == "1",
            "IPv4Forwarding": _read_flag("/proc/sys/net/ipv4/ip_forward"),
            "BridgeNfIptables": _read_flag("/proc/sys/net/bridge/bridge-nf-call-iptables"),
            "BridgeNfIp6tables": _read_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
            "Debug": self.config.log_level == "debug",
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": threading.active_count(),
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() % 1 * 1e9):09d}Z",
            "LoggingDriver": self.config.log_driver,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgv,
            "NEventsListener": 0,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                               "AllowNondistributableArtifactsHostnames": None,
                               "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                               "Mirrors": None},
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "GenericResources": None,
            "DockerRootDir": str(self.config.data_root),
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": socket.gethostname(),
            "Labels": [],
            "ExperimentalBuild": True,
            "ServerVersion": VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": self.config.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": self.config.live_restore,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin"]
            + (["name=cgroupns"] if cgv == "2" else []),
            "CDISpecDirs": [],
            "Warnings": warnings,
        }

    def disk_usage(self) -> dict[str, Any]:
        images = self.images.disk_usage()
        return {
            "LayersSize": images.get("LayersSize", 0),
            "Images": images.get("Images", []),
            "Containers": self.containers.disk_usage(),
            "Volumes": msgspec.to_builtins(self.volumes.disk_usage()) if self.volumes else [],
            "BuildCache": self.build_cache.disk_usage() if self.build_cache else [],
        }


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _fs_type(path: Path) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if str(path).startswith(mnt) and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype
