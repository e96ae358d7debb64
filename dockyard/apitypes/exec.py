"""Docker Engine API exec shapes, with Docker's JSON names.

Reference: docker-engine-api-v1.50.yaml (ExecConfig for ``POST /containers/{id}/exec``,
ExecStartConfig for ``POST /exec/{id}/start``, ExecInspectResponse, ProcessConfig).
Every field a client may send is optional (the docker CLI sends ``null`` for unset).
"""

from __future__ import annotations

import msgspec


class _D(msgspec.Struct, rename="pascal"):
    pass


class ExecCreateRequest(_D):
    attach_stdin: bool | None = None
    attach_stdout: bool | None = None
    attach_stderr: bool | None = None
    console_size: list[int] | None = None  # [height, width]
    detach_keys: str | None = None
    tty: bool | None = None
    env: list[str] | None = None
    cmd: list[str] | None = None
    privileged: bool | None = None
    user: str | None = None
    working_dir: str | None = None


class ExecStartRequest(_D):
    detach: bool | None = None
    tty: bool | None = None
    console_size: list[int] | None = None


class ExecCreateResponse(_D):
    id: str = msgspec.field(name="Id")


class ProcessConfig(msgspec.Struct):
    privileged: bool
    user: str
    tty: bool
    entrypoint: str
    arguments: list[str]


class ExecInspect(_D):
    id: str = msgspec.field(name="ID")
    running: bool
    exit_code: int | None
    process_config: ProcessConfig
    open_stdin: bool
    open_stderr: bool
    open_stdout: bool
    can_remove: bool
    container_id: str = msgspec.field(name="ContainerID")
    detach_keys: str
    pid: int
