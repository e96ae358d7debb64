"""What ``start`` does outside the state machine: files, sandbox, bundle, shim.

``launch`` makes everything a run needs and undoes all of it if any step
fails: the network sandbox, the volumes' mounts, the shim (which owns the rootfs
mounts and the cgroups, and removes them on shutdown). A failure is recorded on the
container (State.Error, ExitCode 127/126/128) in moby's words and classes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from dockyard import errdefs
from dockyard.apitypes.container import EndpointSettings
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import logdrivers
from dockyard.daemon.containers import spec as specmod
from dockyard.daemon.containers import user as users
from dockyard.daemon.containers.attach import AttachSession
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.containers.views import now_rfc3339, parse_rfc3339
from dockyard.daemon.interfaces import ImageInfo, ImageLookup, NetworkAttacher, SandboxInfo, VolumeMounter
from dockyard.mount import Mount
from dockyard.oci import runtime_spec
from dockyard.shim.client import ExitStatus, ShimHandle, ShimManager, SpawnRequest
from dockyard.shim.rootfs import unmount_all

log = logging.getLogger("dockyard.containers")

EXIT_UNKNOWN = 128  # moby's exitUnknown: a start failed for a reason other than the command
SHIM_DIED = "shim died"  # State.Error of a container whose shim vanished without recording the exit


def resolve_image(images: ImageLookup, ref: str) -> ImageInfo:
    """The image for a create; "No such image: name:latest" (the CLI then pulls) when absent."""
    try:
        return images.resolve(ref)
    except errdefs.NotFound:
        raise errdefs.no_such_image(_with_default_tag(ref)) from None


def _with_default_tag(ref: str) -> str:
    if "@" in ref or ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{12,64}", ref):
        return ref
    return ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"


def write_runtime_file(path: Path, data: bytes) -> None:
    """Write a file of the exec root in place, without fsyncs: the exec root is runtime state
    (tmpfs under /run) that a reboot voids and every start writes afresh, and a daemon crash
    cannot lose what is in the page cache. Nothing reads it before the start that writes it
    hands it on (the shim), so no temp file and rename: writing into the file that
    ``prepare_exec_dir`` made costs ~0.05 ms where making one cost 0.1-0.3 ms on an ext4 root
    (each fsync 1-3 ms)."""
    with open(path, "wb") as f:
        f.write(data)


def start_error(message: str) -> tuple[errdefs.DockyardError, int]:
    """moby's translateContainerdStartErr: the class and exit code a runtime's refusal means."""
    if "Cannot mkdir: " in message:  # the working directory (moby's own words, not the runtime's)
        return errdefs.System(message[message.index("Cannot mkdir: "):]), EXIT_UNKNOWN
    if not message.startswith("failed to create task for container"):
        message = "failed to create task for container: " + message
    lower = message.lower()
    if "executable file not found" in lower or "no such file or directory" in lower:
        return errdefs.InvalidParameter(message), 127
    if "permission denied" in lower:
        return errdefs.InvalidParameter(message), 126
    if "not a directory" in lower:
        return errdefs.InvalidParameter(
            message + ": Are you trying to mount a directory onto a file (or vice-versa)? "
            "Check if the specified host path exists and is the expected type"), 127
    return errdefs.System(message), EXIT_UNKNOWN


_KEPT = ("rootfs", "config.json")  # the rootfs mountpoint; the bundle's spec, rewritten in place


def prepare_exec_dir(exec_dir: Path) -> None:
    """After a create, off its request's path: the exec dir, the rootfs mountpoint and an empty
    config.json, which the start that usually follows then only writes into."""
    (exec_dir / "rootfs").mkdir(parents=True, exist_ok=True)
    os.close(os.open(exec_dir / "config.json", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _fresh_exec_dir(exec_dir: Path) -> None:
    """Clear what a previous run left (exit.json, sockets)."""
    exec_dir.mkdir(parents=True, exist_ok=True)
    for entry in exec_dir.iterdir():
        if entry.name in _KEPT:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    (exec_dir / "rootfs").mkdir(exist_ok=True)


async def launch(rec: ContainerRecord, *, config: DaemonConfig, images: ImageLookup,
                 networks: NetworkAttacher, shims: ShimManager, volumes: VolumeMounter,
                 resolve_peer: Callable[[str], str],
                 pending: list[AttachSession],
                 on_failure: Callable[[str, int], None]) -> tuple[ShimHandle, SandboxInfo]:
    hc = rec.host_config
    exec_dir = config.container_exec_dir(rec.id)
    data_dir = config.container_data_dir(rec.id)
    sandbox: SandboxInfo | None = None
    mounted = False
    exit_code = EXIT_UNKNOWN
    try:
        exec_user = users.resolve(rec.config.user, image_layer_dirs(rec, images), hc.group_add, image_layers=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        _fresh_exec_dir(exec_dir)
        mode = hc.network_mode
        if mode.startswith("container:"):
            mode = "container:" + resolve_peer(mode.split(":", 1)[1])
        configs = {name: endpoint_config(ep) for name, ep in rec.networks.items()}
        primary = configs.pop(mode, None)
        sandbox = await networks.create_sandbox(
            rec.id, mode, rec.config.hostname, rec.config.domainname, hc.dns or [], hc.dns_search or [],
            hc.dns_options or [], hc.extra_hosts or [], data_dir, container_name=rec.name,
            port_bindings=hc.port_bindings, exposed_ports=list(rec.config.exposed_ports or {}),
            publish_all=hc.publish_all_ports, endpoint_config=primary, links=hc.links or [],
            more_networks=configs)
        volume_mounts = await volumes.mount(rec.id, rec.runtime)
        mounted = True
        spec = specmod.build(rec, exec_user, rootfs=str(exec_dir / "rootfs"), sandbox=sandbox,
                             cgroup_parent=config.cgroup_parent, volume_mounts=volume_mounts)
        write_runtime_file(exec_dir / "config.json", runtime_spec.encode(spec))
        request = SpawnRequest(
            container_id=rec.id, bundle=exec_dir,
            rootfs_mounts=tuple(Mount(type=m.type, source=m.source, options=tuple(m.options))
                                for m in rec.rootfs_mounts),
            state_dir=exec_dir, runtime=rec.runtime, runtime_root=config.runtime_root,
            tty=rec.config.tty, open_stdin=rec.config.open_stdin, stdin_once=rec.config.stdin_once,
            log_path=Path(rec.log_path) if rec.log_path else None,
            **logdrivers.writer_settings(hc.log_config, rec),
        )
        try:
            # spawn, attach what is waiting for this start, start: one exchange with the shim
            handle, streams = await shims.run(
                request, [(session.stdin, session.stdout, session.stderr) for session in pending])
        except errdefs.DockyardError as e:
            err, exit_code = start_error(str(e))
            raise err from None
        for session, stream in zip(pending, streams):
            session.connect(stream)
        return handle, sandbox
    except BaseException as e:
        if mounted:
            await volumes.unmount(rec.id)
        if sandbox is not None:
            await networks.release_sandbox(rec.id)
        if isinstance(e, errdefs.DockyardError):
            on_failure(e.message, exit_code)
        raise


def image_layer_dirs(rec: ContainerRecord, images: ImageLookup) -> list[Path]:
    """The image's layer dirs, top first, where its /etc/passwd and /etc/group are read: the
    lower dirs of the container's overlay, which the record names (the bottom one, the init
    layer, has neither file), with no lookups on the start path (~0.15 ms); they also outlive a
    forced removal of the image. The image's own for a rootfs that is not an overlay."""
    for mount in rec.rootfs_mounts:
        if mount.type == "overlay":
            for option in mount.options:
                if option.startswith("lowerdir="):
                    return [Path(p) for p in option.removeprefix("lowerdir=").split(":")]
    return images.layer_dirs(images.resolve(rec.image_id))


def endpoints(sandbox: SandboxInfo, configured: dict[str, EndpointSettings] | None = None) -> dict[str, EndpointSettings]:
    """The record's networks from a sandbox; what the user configured (IPAMConfig, Links) is kept."""
    configured = configured or {}
    out = {}
    for ep in sandbox.endpoints:
        given = configured.get(ep.network_name) or next(
            (c for c in configured.values() if c.network_id and c.network_id == ep.network_id), None)
        out[ep.network_name] = EndpointSettings(
            network_id=ep.network_id, endpoint_id=ep.endpoint_id, gateway=ep.gateway,
            ip_address=ep.ip_address, ip_prefix_len=ep.ip_prefix_len, mac_address=ep.mac_address,
            aliases=list(ep.aliases) or None, ipam_config=given.ipam_config if given else None,
            links=given.links if given else None, ipv6_gateway=ep.ipv6_gateway,
            global_ipv6_address=ep.ipv6_address, global_ipv6_prefix_len=ep.ipv6_prefix_len)
    return out


def endpoint_config(ep: EndpointSettings | None) -> EndpointSettings | None:
    """What a start asks of a network: the user's settings, not the last run's addresses."""
    if ep is None:
        return None
    return EndpointSettings(ipam_config=ep.ipam_config, aliases=ep.aliases, links=ep.links,
                            mac_address="" if ep.endpoint_id else ep.mac_address)


def forget_sandbox(rec: ContainerRecord) -> None:
    """After an exit the sandbox is gone: keep which networks, drop addresses (as Docker shows)."""
    rec.sandbox_key = ""
    rec.ports = {}
    for name, ep in rec.networks.items():
        rec.networks[name] = EndpointSettings(network_id=ep.network_id, aliases=ep.aliases,
                                              ipam_config=ep.ipam_config, links=ep.links)


def read_exit_file(state_dir: Path) -> ExitStatus:
    """The shim's exit.json, or SHIM_DIED when the shim vanished without writing it."""
    try:
        doc = json.loads((state_dir / "exit.json").read_bytes())
        return ExitStatus(exit_code=int(doc["exit_code"]), finished_at=doc.get("finished_at") or now_rfc3339(),
                          oom_killed=bool(doc.get("oom_killed")), error=doc.get("error") or "")
    except (OSError, ValueError, KeyError):
        return shim_died()


def shim_died() -> ExitStatus:
    return ExitStatus(exit_code=255, finished_at=now_rfc3339(), error=SHIM_DIED)


def clean_orphan(rec: ContainerRecord, config: DaemonConfig) -> None:
    """What a dead shim left: the container's processes (killed, as containerd does when a shim
    dies), its cgroups and runtime state (runtime delete --force), its rootfs mounts.
    Blocking: run it in a thread."""
    from dockyard.shim.shim import load_runtime  # the runtime is loaded only for this rare cleanup

    try:
        load_runtime(rec.runtime, config.runtime_root).delete(rec.id, force=True)
    except Exception as e:  # nothing left to delete, or the runtime refused: the mounts still go
        log.info("container %s: runtime delete after its shim died: %s", rec.id, e)
    root = config.container_exec_dir(rec.id) / "rootfs"
    if os.path.ismount(root):
        unmount_all(tuple(Mount(type=m.type, source=m.source, options=tuple(m.options))
                          for m in rec.rootfs_mounts), root)


def dir_size(path: Path | None) -> int:
    if path is None:
        return 0
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def parse_timestamp(value: str) -> float:
    """A filter time: Go duration ("10m", "1h30m": that long ago), unix seconds or RFC 3339."""
    if _DURATION.fullmatch(value) or re.fullmatch(r"(\d+(?:\.\d+)?(h|m|s|ms))+", value):
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u]
                      for n, u in _DURATION.findall(value))
        return time.time() - seconds
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_rfc3339(value if "T" in value else value + "T00:00:00Z")
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid filter 'until={value}'") from None
