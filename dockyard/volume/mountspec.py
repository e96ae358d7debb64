"""Parse a container's mount requests: ``-v`` strings (HostConfig.Binds), ``--mount``
(HostConfig.Mounts) and Config.Volumes, into one typed ``MountRequest`` each.

Pure: no I/O but the existence check of a ``--mount type=bind`` source (Docker
refuses a missing one at create, while ``-v`` creates it at start). Messages are
Docker's linux parser's (volume/mounts/linux_parser.go).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dockyard import errdefs
from dockyard.apitypes.volume import MountSpec

PROPAGATIONS = ("shared", "slave", "private", "rshared", "rslave", "rprivate")
DEFAULT_PROPAGATION = "rprivate"
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_CONSISTENCY = ("consistent", "cached", "delegated")


@dataclass
class MountRequest:
    type: str  # "bind" | "volume" | "tmpfs"
    destination: str
    source: str = ""  # host path (bind) or volume name ("" for a new anonymous volume)
    read_only: bool = False
    mode: str = ""  # MountPoint.Mode as Docker records it
    propagation: str = ""  # binds only
    nocopy: bool = False
    driver: str = ""  # "" means the container's VolumeDriver or "local"
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    subpath: str = ""
    create_source: bool = False  # -v: a missing host path is made at start
    # binds: "enabled" (rbind; read-only submounts too where the kernel can), "disabled" (bind),
    # "writable" (read-only on the top mount only), "readonly" (read-only submounts, or an error)
    recursive: str = "enabled"
    tmpfs_options: list[str] = field(default_factory=list)  # "size=..", "mode=.."


def invalid_spec(spec: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"invalid volume specification: '{spec}'")


def _config_error(kind: str, message: str) -> str:
    return f'invalid mount config for type "{kind}": {message}'


def check_destination(kind: str, destination: str) -> str:
    """Absolute, not "/", not into /proc: returns the cleaned path or a config error message."""
    if not destination.startswith("/"):
        return _config_error(kind, f"invalid mount path: '{destination}' mount path must be absolute")
    clean = os.path.normpath(destination)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean == "/":
        return _config_error(kind, "invalid specification: destination can't be '/'")
    if clean == "/proc" or clean.startswith("/proc/"):
        return _config_error(kind, f"invalid mount path: '{destination}' cannot be mounted because it "
                                   'is located inside "/proc"')
    return ""


def _clean(path: str) -> str:
    clean = os.path.normpath(path)
    return "/" + clean.lstrip("/") if clean.startswith("/") else clean


def parse_bind(spec: str) -> MountRequest:
    """One ``HostConfig.Binds`` entry: ``[src:]dst[:mode]``; an absolute src is a bind, else a volume name."""
    parts = spec.split(":")
    if any(p == "" for p in parts) or not 1 <= len(parts) <= 3:
        raise invalid_spec(spec)
    if len(parts) == 1:
        source, destination, mode = "", parts[0], ""
    elif len(parts) == 2:
        if _valid_mode(parts[1]) and not parts[1].startswith("/"):
            raise invalid_spec(spec)  # "/foo:rw": a destination with a mode and no source
        source, destination, mode = parts[0], parts[1], ""
    else:
        source, destination, mode = parts
    kind = "bind" if source.startswith("/") else "volume"
    if mode and not _valid_mode(mode):
        raise errdefs.InvalidParameter(f"invalid mode: {mode}")
    words = mode.split(",") if mode else []
    if kind == "bind" and "nocopy" in words:
        raise errdefs.InvalidParameter(f"invalid mode: {mode}")
    problem = check_destination(kind, destination)
    if problem:
        raise errdefs.InvalidParameter(f"invalid volume specification: '{spec}': {problem}")
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    req = MountRequest(type=kind, destination=_clean(destination), read_only="ro" in words, mode=mode)
    if kind == "bind":
        req.source = _clean(source)
        req.propagation = propagation or DEFAULT_PROPAGATION
        req.create_source = True
    else:
        if propagation:
            raise errdefs.InvalidParameter(f"invalid mode: {mode}")
        req.source = source
        req.nocopy = "nocopy" in words
        if not mode and source:
            req.mode = "z"  # Docker records the default SELinux copy mode for a named volume
    return req


def _valid_mode(mode: str) -> bool:
    counts = {"rw": 0, "label": 0, "propagation": 0, "copy": 0, "consistency": 0}
    for word in mode.split(","):
        if word in _RW_MODES:
            counts["rw"] += 1
        elif word in _LABEL_MODES:
            counts["label"] += 1
        elif word in PROPAGATIONS:
            counts["propagation"] += 1
        elif word == "nocopy":
            counts["copy"] += 1
        elif word in _CONSISTENCY:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def parse_mount(spec: MountSpec) -> MountRequest:
    """One ``HostConfig.Mounts`` entry (``--mount``), validated as Docker validates it."""
    kind = spec.type
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster", "image"):
            raise errdefs.InvalidParameter(_config_error(kind, f'mount type "{kind}" is not supported'))
        raise errdefs.InvalidParameter(_config_error(kind, "mount type unknown"))
    problem = check_destination(kind, spec.target)
    if problem:
        raise errdefs.InvalidParameter(problem)
    if spec.consistency and spec.consistency not in (*_CONSISTENCY, "default"):
        raise errdefs.InvalidParameter(_config_error(kind, f"invalid consistency: {spec.consistency}"))
    req = MountRequest(type=kind, destination=_clean(spec.target), read_only=spec.read_only)
    if kind == "bind":
        if spec.volume_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field VolumeOptions must not be specified"))
        if spec.tmpfs_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field TmpfsOptions must not be specified"))
        if not spec.source:
            raise errdefs.InvalidParameter(_config_error(kind, "field Source must not be empty"))
        if not spec.source.startswith("/"):
            raise errdefs.InvalidParameter(_config_error(
                kind, f"invalid mount path: '{spec.source}' mount path must be absolute"))
        opts = spec.bind_options
        req.source = _clean(spec.source)
        if not os.path.exists(req.source) and not (opts and opts.create_mountpoint):
            raise errdefs.InvalidParameter(_config_error(kind, f"bind source path does not exist: {req.source}"))
        req.create_source = bool(opts and opts.create_mountpoint)
        req.propagation = (opts.propagation if opts and opts.propagation else DEFAULT_PROPAGATION)
        if req.propagation not in PROPAGATIONS:
            raise errdefs.InvalidParameter(_config_error(kind, f"invalid propagation mode: {req.propagation}"))
        if opts and opts.non_recursive:
            req.recursive = "disabled"
            if opts.read_only_non_recursive or opts.read_only_force_recursive:
                raise errdefs.InvalidParameter(_config_error(
                    kind, "option NonRecursive conflicts with ReadOnlyNonRecursive/ReadOnlyForceRecursive"))
        elif opts and opts.read_only_non_recursive:
            if opts.read_only_force_recursive:
                raise errdefs.InvalidParameter(_config_error(
                    kind, "option ReadOnlyForceRecursive conflicts with ReadOnlyNonRecursive"))
            if not spec.read_only:
                raise errdefs.InvalidParameter(_config_error(
                    kind, "option ReadOnlyNonRecursive requires ReadOnly"))
            req.recursive = "writable"
        elif opts and opts.read_only_force_recursive:
            if not spec.read_only:
                raise errdefs.InvalidParameter(_config_error(
                    kind, "option ReadOnlyForceRecursive requires ReadOnly"))
            req.recursive = "readonly"
    elif kind == "volume":
        if spec.bind_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field BindOptions must not be specified"))
        if spec.tmpfs_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field TmpfsOptions must not be specified"))
        req.source = spec.source
        opts = spec.volume_options
        if opts is not None:
            req.nocopy = opts.no_copy
            req.labels = dict(opts.labels or {})
            if opts.driver_config is not None:
                req.driver = opts.driver_config.name
                req.driver_opts = dict(opts.driver_config.options or {})
            if opts.subpath:
                sub = os.path.normpath(opts.subpath)
                if os.path.isabs(opts.subpath) or sub == ".." or sub.startswith("../"):
                    raise errdefs.InvalidParameter(_config_error(
                        kind, "subpath must be a relative path within the volume"))
                if not spec.source:
                    raise errdefs.InvalidParameter(_config_error(
                        kind, "subpath can't be used with anonymous volumes"))
                req.subpath = sub
    else:
        if spec.source:
            raise errdefs.InvalidParameter(_config_error(kind, "field Source must not be specified"))
        if spec.bind_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field BindOptions must not be specified"))
        if spec.volume_options is not None:
            raise errdefs.InvalidParameter(_config_error(kind, "field VolumeOptions must not be specified"))
        opts = spec.tmpfs_options
        if opts is not None:
            if opts.size_bytes < 0:
                raise errdefs.InvalidParameter(_config_error(kind, f"invalid tmpfs size: {opts.size_bytes}"))
            if opts.size_bytes:
                req.tmpfs_options.append(f"size={opts.size_bytes}")
            if opts.mode:
                req.tmpfs_options.append(f"mode={opts.mode:o}")
            for option in opts.options or []:
                req.tmpfs_options.append("=".join(option))
    return req


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """``container[:ro|:rw]`` -> (container, mode); mode "" keeps each mount's own."""
    name, sep, mode = spec.partition(":")
    if not name:
        raise errdefs.InvalidParameter(f"invalid volumes-from specification: '{spec}'")
    if sep:
        words = mode.split(",")
        if not mode or not _valid_mode(mode) or any(w in PROPAGATIONS or w == "nocopy" for w in words):
            raise errdefs.InvalidParameter(f"invalid mode for volumes-from: {mode}")
    return name, mode
