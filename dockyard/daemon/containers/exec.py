"""ExecService: ``docker exec`` without HTTP. Exec records live in memory, as dockerd's do.

An exec is created against a running container (its command, env, user, ...
fixed then, moby's ContainerExecCreate), started once (the container's shim
forks the process into the container, ``ShimHandle.exec``), and inspected until
it is forgotten: five minutes after it ended (moby's exec GC). The container's
inspect lists the execs that have not ended (``ExecIDs``).

Events as moby emits them, on the container: ``exec_create: <cmd>``,
``exec_start: <cmd>``, ``exec_die`` (exitCode), ``exec_detach``; each with ``execID``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable, Protocol

from dockyard import errdefs
from dockyard.apitypes.exec import ExecCreateRequest, ExecCreateResponse, ExecInspect, ProcessConfig
from dockyard.daemon.containers import user as users
from dockyard.daemon.containers.attach import AttachSession, parse_detach_keys
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.oci import defaults
from dockyard.oci import runtime_spec as oci
from dockyard.shim.client import ShimHandle

log = logging.getLogger("dockyard.exec")

FORGET_AFTER = 300.0  # seconds an ended exec stays inspectable
EXIT_GRACE = 2.0  # how long a stream that ended waits for the exit to be recorded


class ExecHost(Protocol):
    """What exec needs of the container service."""

    def exec_target(self, ref: str) -> tuple[ContainerRecord, ShimHandle]:
        """The running container and its shim; Docker's 409s when it is not running, paused
        or restarting; NotFound when there is no such container."""

    def emit_exec_event(self, rec: ContainerRecord, action: str, exec_id: str, **extra: str) -> None: ...


@dataclass
class ExecRecord:
    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    env: list[str]
    user: str
    working_dir: str
    privileged: bool
    tty: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: str
    console_size: list[int] | None
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float | None = None  # time.monotonic()
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the process runs (or failed)
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def command(self) -> str:
        return " ".join([self.entrypoint, *self.args])


def replace_or_append_env(env: list[str], overrides: list[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: same key replaced in place, new keys appended, and a
    bare ``KEY`` (no "=") removes it."""
    out = list(env)
    for entry in overrides:
        key = entry.split("=", 1)[0]
        index = next((i for i, e in enumerate(out) if e.split("=", 1)[0] == key), None)
        if "=" not in entry:
            if index is not None:
                del out[index]
        elif index is None:
            out.append(entry)
        else:
            out[index] = entry
    return out


def start_error(message: str, entrypoint: str) -> tuple[errdefs.DockyardError, int]:
    """moby's translateContainerdStartErr for an exec: the error and the exit code it means."""
    if "exec failed" not in message:
        message = f"exec failed: unable to start container process: {message}"
    message = f"OCI runtime exec failed: {message}: unknown"
    lower = message.lower()
    if entrypoint.lower() in lower and ("executable file not found" in lower or "no such file or directory" in lower):
        return errdefs.InvalidParameter(message), 127
    if "permission denied" in lower:
        return errdefs.InvalidParameter(message), 126
    return errdefs.System(message), 126


class ExecSession:
    """The client's view of a started exec's stdio: the attach session, and once its output
    ended, a short wait for the exit to be recorded (the docker CLI inspects the exec next)."""

    def __init__(self, attach: AttachSession, record: ExecRecord, on_detach: Callable[[], None]) -> None:
        self._attach = attach
        self._record = record
        self._on_detach = on_detach
        self.tty = record.tty

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        async for item in self._attach.output():
            yield item
        if not self._attach.detached:
            try:
                await asyncio.wait_for(self._record.exited.wait(), EXIT_GRACE)
            except asyncio.TimeoutError:
                pass

    async def write_stdin(self, data: bytes) -> None:
        await self._attach.write_stdin(data)

    async def stdin_closed(self) -> None:
        await self._attach.stdin_closed()

    async def close(self) -> None:
        await self._attach.close()
        if self._attach.detached:
            self._attach.detached = False  # one event, however often closed
            self._on_detach()


class ExecService:
    def __init__(self, host: ExecHost, exec_dir: Callable[[str], Path]) -> None:
        self._host = host
        self._exec_dir = exec_dir  # a container's bundle (config.json, rootfs)
        self._execs: dict[str, ExecRecord] = {}
        self._tasks: set[asyncio.Task] = set()

    def _get(self, exec_id: str) -> ExecRecord:
        record = self._execs.get(exec_id)
        if record is None:
            raise errdefs.NotFound(f"No such exec instance: {exec_id}")
        return record

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - FORGET_AFTER
        for exec_id in [i for i, r in self._execs.items() if r.ended_at is not None and r.ended_at < cutoff]:
            del self._execs[exec_id]

    def running_ids(self, container_id: str) -> list[str]:
        """The container's execs that have not ended (its inspect's ExecIDs)."""
        return [r.id for r in self._execs.values() if r.container_id == container_id and r.ended_at is None]

    # ---- create ----------------------------------------------------------------
    def create(self, ref: str, body: ExecCreateRequest) -> ExecCreateResponse:
        if not body.cmd:
            raise errdefs.InvalidParameter("No exec command specified")
        rec, _ = self._host.exec_target(ref)
        if body.detach_keys:
            try:
                parse_detach_keys(body.detach_keys)
            except errdefs.InvalidParameter:
                raise errdefs.InvalidParameter(f"Invalid escape keys ({body.detach_keys}) provided") from None
        tty = bool(body.tty)
        # moby's CreateDaemonEnvironment, then the container's Env, then the exec's
        env = [defaults.DEFAULT_ENV_PATH, f"HOSTNAME={rec.config.hostname}", *(["TERM=xterm"] if tty else [])]
        env = replace_or_append_env(replace_or_append_env(env, rec.config.env or []), body.env or [])
        self._forget_old()
        record = ExecRecord(
            id=secrets.token_hex(32), container_id=rec.id, entrypoint=body.cmd[0], args=list(body.cmd[1:]),
            env=env, user=body.user or rec.config.user or "", working_dir=body.working_dir or rec.config.working_dir or "",
            privileged=bool(body.privileged), tty=tty, open_stdin=bool(body.attach_stdin),
            open_stdout=bool(body.attach_stdout), open_stderr=bool(body.attach_stderr),
            detach_keys=body.detach_keys or "", console_size=body.console_size)
        self._execs[record.id] = record
        self._host.emit_exec_event(rec, f"exec_create: {record.command}", record.id)
        return ExecCreateResponse(id=record.id)

    # ---- start -----------------------------------------------------------------
    def check(self, exec_id: str) -> None:
        """moby's ExecExists: the exec is known and its container can run it (before any hijack)."""
        record = self._get(exec_id)
        try:
            self._host.exec_target(record.container_id)
        except errdefs.NotFound:
            raise errdefs.NotFound(f"No such container: {exec_id}") from None

    def _process(self, record: ExecRecord, rec: ContainerRecord, console_size: list[int] | None) -> oci.Process:
        """The container's own process (config.json) with the exec's command, env, cwd, tty,
        user and, with --privileged, every capability: what moby hands containerd."""
        bundle = self._exec_dir(rec.id)
        process = oci.decode((bundle / "config.json").read_bytes()).process
        process.args = [record.entrypoint, *record.args]
        process.env = record.env
        process.cwd = record.working_dir or "/"
        process.terminal = record.tty
        size = console_size or record.console_size
        process.console_size = oci.ConsoleSize(height=size[0], width=size[1]) \
            if record.tty and size and len(size) == 2 and all(size) else None
        if record.user and record.user != rec.config.user:
            user = users.resolve(record.user, [bundle / "rootfs"], rec.host_config.group_add)
            process.user = oci.User(uid=user.uid, gid=user.gid, additional_gids=user.additional_gids or None)
        if record.privileged:
            process.capabilities = defaults.capabilities_for(privileged=True)
        return process

    async def start(self, exec_id: str, *, detach: bool,
                    console_size: list[int] | None = None) -> ExecSession | None:
        """Run the exec; its stdio session unless detached (or nothing is attached)."""
        record = self._get(exec_id)
        rec, handle = self._host.exec_target(record.container_id)
        if record.exit_code is not None:
            raise errdefs.Conflict(f"Error: Exec command {exec_id} has already run")
        if record.running:
            raise errdefs.Conflict(f"Error: Exec command {exec_id} is already running")
        record.running = True
        self._host.emit_exec_event(rec, f"exec_start: {record.command}", exec_id)
        attach = not detach and (record.open_stdin or record.open_stdout or record.open_stderr)
        try:
            # moby resolves the user itself: its errors are not the runtime's ("unable to find user")
            process = self._process(record, rec, console_size)
        except errdefs.DockyardError:
            self._failed(record, 126)
            raise
        try:
            pid, stream = await handle.exec(exec_id, process, stdin=attach and record.open_stdin, attach=attach)
        except (errdefs.Conflict, errdefs.NotFound):
            self._failed(record, 126)
            raise
        except errdefs.DockyardError as e:
            err, code = start_error(e.message, record.entrypoint)
            self._failed(record, code)
            raise err from None
        record.pid = pid
        record.started.set()
        task = asyncio.ensure_future(self._wait(record, rec, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if stream is None:
            return None
        session = AttachSession(rec.id, stdin=record.open_stdin, stdout=record.open_stdout,
                                stderr=record.open_stderr, tty=record.tty, stdin_once=True,
                                detach_keys=parse_detach_keys(record.detach_keys) if record.detach_keys
                                else parse_detach_keys("ctrl-p,ctrl-q"))
        session.connect(stream)
        return ExecSession(session, record,
                           lambda: self._host.emit_exec_event(rec, "exec_detach", exec_id))

    @staticmethod
    def _failed(record: ExecRecord, exit_code: int) -> None:
        record.running = False
        record.exit_code = exit_code
        record.ended_at = time.monotonic()
        record.started.set()
        record.exited.set()

    async def _wait(self, record: ExecRecord, rec: ContainerRecord, handle: ShimHandle) -> None:
        try:
            code = await handle.exec_wait(record.id)
        except Exception as e:  # the shim is gone with the container
            log.warning("exec %s in container %s: lost its shim: %s", record.id, rec.id, e)
            code = 255
        record.exit_code = code
        record.running = False
        record.ended_at = time.monotonic()
        self._host.emit_exec_event(rec, "exec_die", record.id, exitCode=str(code))
        record.exited.set()

    # ---- resize / inspect --------------------------------------------------------
    async def resize(self, exec_id: str, height: int, width: int) -> None:
        record = self._get(exec_id)
        _, handle = self._host.exec_target(record.container_id)
        try:
            await asyncio.wait_for(record.started.wait(), 10)
        except asyncio.TimeoutError:
            raise errdefs.System("timeout waiting for exec session ready") from None
        if not record.running:
            raise errdefs.Conflict(f"Exec {exec_id} is not running")
        await handle.exec_resize(exec_id, height, width)

    def inspect(self, exec_id: str) -> ExecInspect:
        r = self._get(exec_id)
        return ExecInspect(
            id=r.id, running=r.running, exit_code=r.exit_code,
            process_config=ProcessConfig(privileged=r.privileged, user=r.user, tty=r.tty,
                                         entrypoint=r.entrypoint, arguments=r.args),
            open_stdin=r.open_stdin, open_stderr=r.open_stderr, open_stdout=r.open_stdout,
            can_remove=False, container_id=r.container_id, detach_keys=r.detach_keys, pid=r.pid)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
