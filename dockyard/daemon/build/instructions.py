"""The metadata instructions: how each changes the run config, and the comment it records.

ENV, LABEL, MAINTAINER, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, SHELL, CMD, ENTRYPOINT,
HEALTHCHECK, ONBUILD (ARG is the builder's: it changes the build args, not the config).
Each returns the comment Docker writes after ``#(nop)`` in the history's ``created_by``.
Variables are expanded only where Docker expands them (ADD, COPY, ENV, EXPOSE, FROM, LABEL,
STOPSIGNAL, USER, VOLUME, WORKDIR, and ARG defaults).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Mapping

from dockyard.daemon.build import shellwords
from dockyard.daemon.build.dockerfile import Instruction, exec_form
from dockyard.oci import image_spec as spec

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


@dataclass
class StageConfig:
    """What a stage's instructions change: the run config plus the image's author."""
    config: spec.ContainerConfig
    author: str | None = None
    cmd_set: bool = False  # CMD given in this stage (ENTRYPOINT then keeps it)
    escape: str = "\\"
    onbuild_run: list[str] = field(default_factory=list)

    def shell(self) -> list[str]:
        return list(self.config.shell or DEFAULT_SHELL)


def go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a string slice: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def pairs(inst: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """``k=v ...`` (quotes and variables processed) or the legacy ``k v`` form."""
    name = inst.cmd.upper()
    first = inst.rest.split(None, 1)
    if first and "=" not in first[0]:
        if inst.cmd == "label" or len(first) < 2:
            raise inst.error(f"{name} must have two arguments" if inst.cmd == "env" else
                             f"{name} requires at least one argument")
        return [(shellwords.expand(first[0], env, escape), shellwords.expand(first[1], env, escape))]
    out = []
    for word in shellwords.words(inst.rest, env, escape):
        key, sep, value = word.partition("=")
        if not sep:
            raise inst.error(f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value")
        if not key:
            raise inst.error(f"{name} names can not be blank")
        out.append((key, value))
    return out


def set_env(config: spec.ContainerConfig, key: str, value: str) -> None:
    env = [e for e in (config.env or []) if e.partition("=")[0] != key]
    env.append(f"{key}={value}")
    config.env = env


def env_map(config: spec.ContainerConfig) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in config.env or [])


def _command(inst: Instruction, stage: StageConfig) -> list[str]:
    if inst.json is not None:
        return list(inst.json)
    return [*stage.shell(), inst.rest]


def _duration(inst: Instruction, flag: str) -> int | None:
    text = inst.flag(flag)
    if not text:
        return None
    total, pos = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise inst.error(f"time: invalid duration \"{text}\"")
    return int(total)


def _ports(words: list[str], inst: Instruction) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        start, _, end = port.partition("-")
        if not start.isdigit() or (end and not end.isdigit()):
            raise inst.error(f"invalid containerPort: {port}")
        for number in range(int(start), int(end or start) + 1):
            out.append(f"{number}/{proto}")
    return out


def apply(inst: Instruction, stage: StageConfig, env: Mapping[str, str]) -> str:
    """Apply a metadata instruction to the stage; returns the history comment."""
    config, esc = stage.config, stage.escape
    cmd = inst.cmd
    if cmd == "env":
        items = pairs(inst, env, esc)
        for key, value in items:
            set_env(config, key, value)
        return "ENV " + " ".join(f"{k}={v}" for k, v in items)
    if cmd == "label":
        items = pairs(inst, env, esc)
        config.labels = {**(config.labels or {}), **dict(items)}
        return "LABEL " + " ".join(f"{k}={v}" for k, v in items)
    if cmd == "maintainer":
        stage.author = inst.rest
        return "MAINTAINER " + inst.rest
    if cmd == "expose":
        ports = _ports(shellwords.words(inst.rest, env, esc), inst)
        config.exposed_ports = {**(config.exposed_ports or {}), **{p: {} for p in ports}}
        return "EXPOSE " + " ".join(ports)
    if cmd == "volume":
        paths = inst.json if inst.json is not None else shellwords.words(inst.rest, env, esc)
        for path in paths:
            if not path.strip():
                raise inst.error("VOLUME specified can not be an empty string")
        config.volumes = {**(config.volumes or {}), **{p: {} for p in paths}}
        return "VOLUME [" + " ".join(paths) + "]"
    if cmd == "user":
        config.user = shellwords.expand(inst.rest, env, esc)
        return "USER " + config.user
    if cmd == "workdir":
        path = shellwords.expand(inst.rest, env, esc)
        if not path.startswith("/"):
            path = (config.working_dir or "/").rstrip("/") + "/" + path
        config.working_dir = posixpath.normpath(path)
        return "WORKDIR " + config.working_dir
    if cmd == "stopsignal":
        config.stop_signal = shellwords.expand(inst.rest, env, esc)
        return "STOPSIGNAL " + config.stop_signal
    if cmd == "shell":
        assert inst.json is not None
        if not inst.json:
            raise inst.error("SHELL requires at least one argument")
        config.shell = list(inst.json)
        return "SHELL [" + " ".join(inst.json) + "]"
    if cmd == "cmd":
        config.cmd = _command(inst, stage)
        config.args_escaped = None
        stage.cmd_set = True
        return "CMD " + go_quote_list(config.cmd)
    if cmd == "entrypoint":
        config.entrypoint = _command(inst, stage) if (inst.json is not None or inst.rest) else None
        if not stage.cmd_set:
            config.cmd = None
        return "ENTRYPOINT " + go_quote_list(config.entrypoint or [])
    if cmd == "healthcheck":
        return _healthcheck(inst, stage)
    if cmd == "onbuild":
        trigger = inst.rest
        word = trigger.split(None, 1)[0].upper() if trigger.strip() else ""
        if word in ("ONBUILD",):
            raise inst.error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if word in ("FROM", "MAINTAINER"):
            raise inst.error(f"{word} isn't allowed as an ONBUILD trigger")
        config.on_build = [*(config.on_build or []), trigger]
        return "ONBUILD " + trigger
    raise inst.error(f"unknown instruction: {cmd.upper()}")


def _healthcheck(inst: Instruction, stage: StageConfig) -> str:
    rest = inst.rest
    word, _, args = rest.partition(" ")
    kind = word.upper()
    if kind == "NONE":
        if args.strip() or inst.flags:
            raise inst.error("HEALTHCHECK NONE takes no arguments")
        stage.config.healthcheck = spec.HealthConfig(test=["NONE"])
        return "HEALTHCHECK &{[\"NONE\"]}"
    if kind != "CMD":
        raise inst.error(f"Unknown type \"{word}\" in HEALTHCHECK (try CMD)")
    args = args.strip()
    if not args:
        raise inst.error("Missing command after HEALTHCHECK CMD")
    command = exec_form(args)
    test = ["CMD", *command] if command is not None else ["CMD-SHELL", args]
    retries = inst.flag("retries")
    if retries and (not retries.isdigit() or int(retries) < 0):
        raise inst.error("--retries cannot be negative")
    health = spec.HealthConfig(test=test, interval=_duration(inst, "interval"), timeout=_duration(inst, "timeout"),
                               start_period=_duration(inst, "start-period"),
                               start_interval=_duration(inst, "start-interval"),
                               retries=int(retries) if retries else None)
    for flag in inst.flags:
        if flag not in ("interval", "timeout", "start-period", "start-interval", "retries"):
            raise inst.error(f"Unknown flag: {flag}")
    stage.config.healthcheck = health
    return "HEALTHCHECK &{" + go_quote_list(test) + "}"
