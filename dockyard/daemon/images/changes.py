"""``--change`` instructions for import and commit (``docker import -c``, ``docker commit -c``).

Each change is one Dockerfile line; only the instructions Docker allows for commit
and import are accepted: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME,
WORKDIR, STOPSIGNAL. They are applied to a ContainerConfig as the builder would.
"""

from __future__ import annotations

import json
import shlex

from dockyard import errdefs
from dockyard.oci.image_spec import ContainerConfig

ALLOWED = {"cmd", "entrypoint", "env", "expose", "label", "onbuild", "user", "volume", "workdir", "stopsignal"}


def _json_or_shell(rest: str) -> list[str]:
    """Exec form (a JSON array of strings) or shell form (``/bin/sh -c "..."``)."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def _pairs(instruction: str, rest: str) -> list[tuple[str, str]]:
    """``KEY=VALUE ...`` (with shell quoting) or the legacy ``KEY VALUE`` form."""
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"{instruction}: {e}") from None
    if words and "=" not in words[0]:
        if len(words) < 2 and instruction == "ENV":
            raise errdefs.InvalidParameter("ENV must have two arguments")
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise errdefs.InvalidParameter(f"{instruction} names can not be blank" if not key
                                           else f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value")
        out.append((key, value))
    return out


def _port(spec: str) -> str:
    proto = "tcp"
    if "/" in spec:
        spec, proto = spec.split("/", 1)
    if not spec or not all(part.isdigit() for part in spec.split("-")):
        raise errdefs.InvalidParameter(f"invalid containerPort: {spec}")
    return f"{spec}/{proto.lower()}"


def apply(config: ContainerConfig, changes: list[str]) -> ContainerConfig:
    cmd_set = False
    for change in changes:
        for line in change.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            instruction = word.lower()
            if instruction not in ALLOWED:
                raise errdefs.InvalidParameter(f"{word.upper()} is not a valid change command")
            if instruction == "cmd":
                config.cmd = _json_or_shell(rest)
                cmd_set = True
            elif instruction == "entrypoint":
                config.entrypoint = _json_or_shell(rest)
                if not cmd_set:  # as the builder does: a new ENTRYPOINT resets an inherited CMD
                    config.cmd = None
            elif instruction == "env":
                env = list(config.env or [])
                for key, value in _pairs("ENV", rest):
                    env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
                config.env = env
            elif instruction == "label":
                config.labels = {**(config.labels or {}), **dict(_pairs("LABEL", rest))}
            elif instruction == "expose":
                ports = dict(config.exposed_ports or {})
                for item in rest.split():
                    ports[_port(item)] = {}
                config.exposed_ports = ports
            elif instruction == "volume":
                volumes = dict(config.volumes or {})
                paths = _json_or_shell(rest) if rest.startswith("[") else rest.split()
                if paths[:2] == ["/bin/sh", "-c"]:
                    paths = rest.split()
                for path in paths:
                    if not path:
                        raise errdefs.InvalidParameter("VOLUME specified can not be an empty string")
                    volumes[path] = {}
                config.volumes = volumes
            elif instruction == "user":
                config.user = rest
            elif instruction == "workdir":
                config.working_dir = rest if rest.startswith("/") else \
                    ((config.working_dir or "/").rstrip("/") + "/" + rest)
            elif instruction == "stopsignal":
                config.stop_signal = rest
            elif instruction == "onbuild":
                config.on_build = [*(config.on_build or []), rest]
    return config
