"""Log drivers: which exist, their options (checked at create, with moby's messages), their
defaults, where each keeps a container's log, and what the shim is told to write.

``json-file`` (``dockyard.shim.jsonlog``) takes its sizes in decimal units (go-units
FromHumanSize, as moby's jsonfilelog.New) and has no default rotation in dockerd; ours comes from the daemon's bounded
default log-opts. ``local`` (``dockyard.shim.locallog``) takes decimal units (FromHumanSize)
and defaults to 20 MB x 5 files, compressed, as dockerd's. ``none`` keeps nothing and, as in
moby, accepts any option.

``tag``, ``labels``, ``labels-regex``, ``env``, ``env-regex`` (both drivers) name attrs every
entry carries (moby's ``Info.ExtraAttributes`` and ``ParseLogTag``); ``docker logs --details``
prints them.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from dockyard import errdefs
from dockyard.apitypes.container import LogConfig
from dockyard.daemon.containers.record import ContainerRecord

JSON_FILE, LOCAL, NONE = "json-file", "local", "none"
DRIVERS = (JSON_FILE, LOCAL, NONE)
# moby's logger.ValidateLogOpts accepts these for every driver before the driver's own check
_BUILT_IN_OPTS = ("mode", "max-buffer-size")
_COMMON_OPTS = ("labels", "labels-regex", "env", "env-regex", "tag")
_OPTS = {
    JSON_FILE: ("max-size", "max-file", "compress", *_COMMON_OPTS),
    LOCAL: ("max-size", "max-file", "compress", *_COMMON_OPTS),
}
LOCAL_MAX_SIZE = 20 * 1024 * 1024  # moby's default is binary, though its option parses decimal
LOCAL_MAX_FILES = 5

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def human_size(value: str, base: int) -> int:
    """go-units FromHumanSize (base 1000) / RAMInBytes (base 1024): "10m", "1.5g", "20MB"."""
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"invalid size: '{value}'")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * base ** " kmgtp".index(unit or " "))


def _go_atoi(key: str, value: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise errdefs.InvalidParameter(
            f'invalid value for {key}: {value}: strconv.Atoi: parsing "{value}": invalid syntax')
    return int(value)


def _local_settings(opts: dict[str, str]) -> tuple[int, int, bool]:
    """(max size, max files, compress) with moby's local driver messages (its newConfig)."""
    max_size, max_files, compress = LOCAL_MAX_SIZE, LOCAL_MAX_FILES, True
    if "max-size" in opts:
        try:
            max_size = human_size(opts["max-size"], 1000)
        except ValueError as e:
            raise errdefs.InvalidParameter(f"invalid value for max-size: {opts['max-size']}: {e}") from None
    if "max-file" in opts:
        max_files = _go_atoi("max-file", opts["max-file"])
    if "compress" in opts:
        if opts["compress"] not in _GO_BOOLS:
            raise errdefs.InvalidParameter(
                f'invalid boolean value for compress: strconv.ParseBool: parsing "{opts["compress"]}": '
                "invalid syntax")
        compress = _GO_BOOLS[opts["compress"]]
    if max_size < 0:
        raise errdefs.InvalidParameter("max-size must not be negative")
    if max_files < 0:
        raise errdefs.InvalidParameter("max-file must not be negative")
    if compress and max_files <= 1:
        raise errdefs.InvalidParameter("compression cannot be enabled when max file count is 1")
    return max_size, max_files, compress


# a tag template's actions: only field references ({{.Name}}, {{ .ID }}), the form moby's docs give
_TAG_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_TAG_FIELD = re.compile(r"\.([A-Za-z]\w*)")


_TAG_NAMES = ("ID", "FullID", "Name", "ContainerID", "ContainerName", "ContainerEntrypoint",
              "ContainerImageID", "ImageID", "ImageFullID", "ContainerImageName", "ImageName",
              "Command", "Hostname", "ContainerCreated", "LogPath", "DaemonName")


def _tag_fields(rec: ContainerRecord) -> dict[str, str]:
    """What a tag template can name (``_TAG_NAMES``): moby's logger.Info fields and methods
    that are strings."""
    image_id = rec.image_id
    return {
        "ID": rec.id[:12], "FullID": rec.id, "Name": rec.name, "ContainerID": rec.id,
        "ContainerName": "/" + rec.name, "ContainerEntrypoint": rec.path,
        "ContainerImageID": image_id, "ImageID": image_id[:12], "ImageFullID": image_id,
        "ContainerImageName": rec.config.image, "ImageName": rec.config.image,
        "Command": " ".join([rec.path, *rec.args]), "Hostname": socket.gethostname(),
        "ContainerCreated": rec.created, "LogPath": rec.log_path, "DaemonName": "docker",
    }


def _render_tag(template: str, fields: dict[str, str]) -> str:
    def action(match: re.Match) -> str:
        ref = _TAG_FIELD.fullmatch(match.group(1))
        if ref is None:
            raise errdefs.InvalidParameter(
                f"template: log-tag: unsupported action {match.group(0)!r} (only {{{{.Field}}}})")
        if ref.group(1) not in fields:
            raise errdefs.InvalidParameter(
                f'template: log-tag:1:{match.start() + 2}: executing "log-tag" at <.{ref.group(1)}>: '
                f"can't evaluate field {ref.group(1)} in type *logger.Info")
        return fields[ref.group(1)]
    return _TAG_ACTION.sub(action, template)


def _regex(key: str, pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise errdefs.InvalidParameter(f"error parsing regexp for {key}: {e}") from None


def log_attrs(log: LogConfig, rec: ContainerRecord) -> tuple[tuple[str, str], ...]:
    """The attrs each entry carries, sorted by key: moby's ExtraAttributes (labels and env named
    or matched), then ``tag`` rendered when set (no default template, as json-file and local)."""
    opts = log.config or {}
    if log.type == NONE:
        return ()
    labels = rec.config.labels or {}
    env = dict(e.split("=", 1) for e in rec.config.env or [] if "=" in e)
    attrs: dict[str, str] = {}
    for key, source in (("labels", labels), ("env", env)):
        for name in filter(None, opts.get(key, "").split(",")):
            if name in source:
                attrs[name] = source[name]
        if opts.get(f"{key}-regex"):
            pattern = _regex(f"{key}-regex", opts[f"{key}-regex"])
            attrs.update((k, v) for k, v in source.items() if pattern.search(k))
    if opts.get("tag"):
        tag = _render_tag(opts["tag"], _tag_fields(rec))
        if tag:
            attrs["tag"] = tag
    return tuple(sorted(attrs.items()))


def validate(log: LogConfig) -> None:
    """Refuse an unknown driver or option, or a bad value, before the container is made."""
    if log.type not in DRIVERS:
        raise errdefs.InvalidParameter(f"logger: no log driver named '{log.type}' is registered")
    if log.type == NONE:
        return
    opts = {k: v for k, v in (log.config or {}).items() if k not in _BUILT_IN_OPTS}
    for key in opts:
        if key not in _OPTS[log.type]:
            if log.type == LOCAL:
                raise errdefs.InvalidParameter(f"unknown log opt '{key}' for log driver {LOCAL}")
            raise errdefs.InvalidParameter(f"unknown log opt '{key}' for {log.type} log driver")
    for key in ("labels-regex", "env-regex"):
        if opts.get(key):
            _regex(key, opts[key])
    if opts.get("tag"):
        _render_tag(opts["tag"], dict.fromkeys(_TAG_NAMES, ""))
    if log.type == LOCAL:
        _local_settings(opts)
        return
    if "max-size" in opts:
        try:
            size = human_size(opts["max-size"], 1000)
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        if size <= 0:
            raise errdefs.InvalidParameter("max-size must be a positive number")
    if "max-file" in opts and not (opts["max-file"].isdigit() and int(opts["max-file"]) >= 1):
        raise errdefs.InvalidParameter("max-file cannot be less than 1")
    if _json_compress(opts) and (int(opts.get("max-file", "1")) < 2 or "max-size" not in opts):
        raise errdefs.InvalidParameter(
            "compress cannot be true when max-file is less than 2 or max-size is not set")


def _json_compress(opts: dict[str, str]) -> bool:
    value = opts.get("compress", "false")
    if value not in _GO_BOOLS:
        raise errdefs.InvalidParameter(
            f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return _GO_BOOLS[value]


def log_file(data_dir: Path, container_id: str, driver: str) -> str:
    """Where the driver keeps the log ("" for none); dockerd's paths."""
    if driver == JSON_FILE:
        return str(data_dir / f"{container_id}-json.log")
    if driver == LOCAL:
        return str(data_dir / "local-logs" / "container.log")
    return ""


def inspect_log_path(driver: str, path: str) -> str:
    """``LogPath`` in inspect: moby shows only json-file's; the local driver's files are private."""
    return path if driver == JSON_FILE else ""


def max_files(log: LogConfig) -> int:
    """How many files a reader looks for (the current one included)."""
    opts = log.config or {}
    if log.type == LOCAL:
        return max(1, _local_settings(opts)[1])
    return int(opts.get("max-file", "1"))


def writer_settings(log: LogConfig, rec: ContainerRecord) -> dict:
    """The log fields of the shim's SpawnRequest (besides the path)."""
    opts = log.config or {}
    attrs = log_attrs(log, rec)
    if log.type == LOCAL:
        size, files, compress = _local_settings(opts)
        return {"log_driver": LOCAL, "log_max_size": size or None, "log_max_files": max(1, files),
                "log_compress": compress, "log_attrs": attrs}
    return {"log_driver": log.type,
            "log_max_size": human_size(opts["max-size"], 1000) if "max-size" in opts else None,
            "log_max_files": int(opts.get("max-file", "1")), "log_compress": _json_compress(opts),
            "log_attrs": attrs}
