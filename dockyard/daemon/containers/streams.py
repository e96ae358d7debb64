"""A container's standard streams: attach (a session connected now, or pending until the
next start connects it), detach, logs and the TTY's size (moby's attach.go, logs.go,
resize.go). The streams themselves are ``attach.AttachSession`` and ``logs``."""

from __future__ import annotations

from typing import AsyncIterator

from dockyard import errdefs
from dockyard.daemon.containers.attach import DEFAULT_DETACH_KEYS, AttachSession, parse_detach_keys
from dockyard.daemon.containers.core import ContainerCore
from dockyard.daemon.containers.logs import LogOptions, read as read_logs


async def attach(core: ContainerCore, ref: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool,
                 stream: bool, detach_keys: str | None) -> AttachSession:
    rec = core.store.get(ref)
    if rec.state.paused:
        raise errdefs.Conflict("You cannot attach to a paused container, unpause it first")
    if rec.state.restarting:
        raise errdefs.Conflict("You cannot attach to a restarting container, wait until it is running")
    keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
    session = AttachSession(rec.id, stdin=stdin and rec.config.open_stdin, stdout=stdout, stderr=stderr,
                            tty=rec.config.tty, stdin_once=rec.config.stdin_once, detach_keys=keys)
    if logs and rec.log_path:
        session.replay = [item async for item in read_logs(
            rec, LogOptions(stdout=stdout, stderr=stderr), lambda: True)]
    if not stream:
        session.abandon()
        return session
    async with core.lock(rec.id):
        running = core.live.get(rec.id)
        if running is not None and rec.state.running:
            session.connect(await running.handle.attach(session.stdin, stdout, stderr))
        else:
            core.pending.setdefault(rec.id, []).append(session)
    core.emit(rec, "attach")
    return session


async def detach(core: ContainerCore, session: AttachSession) -> None:
    """The client went away: drop a still-pending session, close a connected one."""
    pending = core.pending.get(session.container_id)
    if pending and session in pending:
        pending.remove(session)
    await session.close()
    if session.detached and core.store.has_id(session.container_id):
        core.emit(core.store.get(session.container_id), "detach")


def logs(core: ContainerCore, ref: str, options: LogOptions) -> AsyncIterator[tuple[int, bytes]]:
    rec = core.store.get(ref)
    if rec.host_config.log_config.type == "none" or not rec.log_path:
        raise errdefs.NotImplementedFeature("configured logging driver does not support reading")
    if not options.stdout and not options.stderr:
        raise errdefs.InvalidParameter("You must choose at least one stream")
    cid = rec.id
    return read_logs(rec, options, lambda: cid not in core.live)


async def resize(core: ContainerCore, ref: str, height: int, width: int) -> None:
    rec = core.store.get(ref)
    running = core.live.get(rec.id)
    if running is None or not rec.state.running:
        raise errdefs.Conflict(f"Container {rec.id} is not running")
    await running.handle.resize(height, width)
    core.emit(rec, "resize", height=str(height), width=str(width))
