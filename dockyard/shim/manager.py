"""The daemon's side of the shim (asyncio): start the zygote, spawn shims, talk to them.

Implements the ``dockyard.shim.client`` contract. Kept apart from it so the zygote,
which imports the contract types, does not load asyncio (shared memory every shim
would carry). Wire format and request table: ``dockyard.shim.protocol``. One
connection per call; ``wait`` and ``attach`` keep theirs until the answer or the
end of the output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Sequence

import msgspec

from dockyard import errdefs
from dockyard.oci import runtime_spec
from dockyard.shim import protocol
from dockyard.shim.client import AttachStream, ExitStatus, ShimState, SpawnRequest
from dockyard.shim.sockpath import short_path

log = logging.getLogger("dockyard.shim")


def spawn_request_to_json(request: SpawnRequest) -> dict:
    return {
        "container_id": request.container_id,
        "bundle": str(request.bundle),
        "rootfs_mounts": [{"type": m.type, "source": m.source, "target": m.target,
                           "options": list(m.options)} for m in request.rootfs_mounts],
        "state_dir": str(request.state_dir),
        "runtime": request.runtime,
        "runtime_root": str(request.runtime_root),
        "tty": request.tty,
        "open_stdin": request.open_stdin,
        "stdin_once": request.stdin_once,
        "log_path": str(request.log_path) if request.log_path is not None else None,
        "log_max_size": request.log_max_size,
        "log_max_files": request.log_max_files,
        "log_driver": request.log_driver,
        "log_compress": request.log_compress,
        "log_attrs": [list(pair) for pair in request.log_attrs],
    }


def _exit_status(body: dict) -> ExitStatus:
    return ExitStatus(exit_code=int(body["exit_code"]), finished_at=str(body["finished_at"]),
                      oom_killed=bool(body.get("oom_killed", False)), error=str(body.get("error", "")))


class _Connection:
    """One framed connection to a shim or the zygote."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> "_Connection":
        with short_path(path) as reachable:
            reader, writer = await asyncio.open_unix_connection(reachable)
        return cls(reader, writer)

    async def send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(protocol.frame(kind, payload))
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes] | None:
        """The next frame, or None at end of stream."""
        try:
            header = await self.reader.readexactly(protocol.HEADER.size)
            kind, length = protocol.HEADER.unpack(header)
            return kind, await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def reply(self) -> dict | None:
        """The next REPLY's body (raising its error), or None if the peer closed first."""
        while True:
            got = await self.read_frame()
            if got is None:
                return None
            if got[0] == protocol.REPLY:
                return protocol.raise_for_reply(json.loads(got[1]))

    async def request(self, op: str, **args: object) -> dict | None:
        await self.send(protocol.REQUEST, json.dumps({"op": op, **args}).encode())
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class _Attach:
    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while True:
            got = await self._conn.read_frame()
            if got is None or got[0] == protocol.OUTPUT_END:
                return
            if got[0] == protocol.STDOUT:
                yield 1, got[1]
            elif got[0] == protocol.STDERR:
                yield 2, got[1]

    async def write_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), protocol.OUTPUT_CHUNK):
            await self._conn.send(protocol.STDIN, data[i:i + protocol.OUTPUT_CHUNK])

    async def close_stdin(self) -> None:
        await self._conn.send(protocol.STDIN_CLOSE)

    async def close(self) -> None:
        await self._conn.close()


class ShimClient:
    """ShimHandle over ``<state_dir>/shim.sock``."""

    def __init__(self, container_id: str, state_dir: Path, shim_pid: int, pid: int) -> None:
        self.container_id = container_id
        self.state_dir = state_dir
        self.shim_pid = shim_pid
        self.pid = pid

    async def _connect(self) -> _Connection:
        try:
            return await _Connection.open(self.state_dir / "shim.sock")
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise errdefs.NotFound(
                f"container {self.container_id}: its shim is gone ({err.strerror})") from None

    async def _call(self, op: str, **args: object) -> dict:
        conn = await self._connect()
        try:
            reply = await conn.request(op, **args)
        finally:
            await conn.close()
        if reply is None:
            raise errdefs.System(f"container {self.container_id}: the shim closed the connection "
                                 f"during {op} (see {self.state_dir / 'shim.log'})")
        return reply

    async def state(self) -> ShimState:
        reply = await self._call("state")
        exit_body = reply.get("exit")
        return ShimState(status=reply["status"], pid=int(reply["pid"]),
                         exit=_exit_status(exit_body) if exit_body else None)

    async def start(self) -> None:
        await self._call("start")

    async def kill(self, signal: int, all_processes: bool = False) -> None:
        await self._call("kill", signal=int(signal), all=all_processes)

    async def pause(self) -> None:
        await self._call("pause")

    async def resume(self) -> None:
        await self._call("resume")

    async def resize(self, height: int, width: int) -> None:
        await self._call("resize", height=height, width=width)

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> AttachStream:
        conn = await self._connect()
        try:
            if await conn.request("attach", stdin=stdin, stdout=stdout, stderr=stderr) is None:
                raise errdefs.System(f"container {self.container_id}: the shim refused the attach")
        except BaseException:
            await conn.close()
            raise
        return _Attach(conn)

    async def wait(self) -> ExitStatus:
        reply = await self._call("wait")
        return _exit_status(reply["exit"])

    async def shutdown(self) -> None:
        await self._call("shutdown")

    async def discard(self) -> None:
        try:
            await self.kill(signal.SIGKILL, all_processes=True)
        except Exception:
            pass  # it may never have run
        try:
            await self.shutdown()
        except Exception:
            pass  # gone already

    async def exec(self, exec_id: str, process: runtime_spec.Process, *, stdin: bool,
                   attach: bool) -> tuple[int, AttachStream | None]:
        conn = await self._connect()
        try:
            reply = await conn.request("exec", exec_id=exec_id, process=msgspec.to_builtins(process),
                                       stdin=stdin, attach=attach)
            if reply is None:
                raise errdefs.System(f"container {self.container_id}: the shim closed the connection "
                                     f"during exec (see {self.state_dir / 'shim.log'})")
        except BaseException:
            await conn.close()
            raise
        if not attach:
            await conn.close()
            return int(reply["pid"]), None
        return int(reply["pid"]), _Attach(conn)

    async def exec_wait(self, exec_id: str) -> int:
        return int((await self._call("exec_wait", exec_id=exec_id))["exit_code"])

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        await self._call("exec_resize", exec_id=exec_id, height=height, width=width)


async def _unless_dead(pid: int, reply: Awaitable[dict | None]) -> dict | None:
    """``reply``'s result, or None as soon as process ``pid`` exits first. The connection alone
    cannot tell: the container's init, forked by the shim and blocked before exec, holds a copy."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    loop = asyncio.get_running_loop()
    died = loop.create_future()
    loop.add_reader(pidfd, lambda: died.done() or died.set_result(None))
    task = asyncio.ensure_future(reply)
    try:
        await asyncio.wait((task, died), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # a reply sent just before exiting may still be in the socket buffer
            await asyncio.wait((task,), timeout=0.5)
        if task.done():
            return task.result()
        task.cancel()
        return None
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


class ZygoteShimManager:
    """ShimManager: starts the zygote (``start()``), asks it for shims, reconnects to live ones."""

    def __init__(self, zygote_socket: Path, python: str = sys.executable,
                 preload: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        """``preload``: more modules for the zygote to import (e.g. a runtime given as
        ``module:factory``); ``env``: the zygote's (and so every shim's) environment, the
        daemon's by default."""
        self.zygote_socket = zygote_socket
        self.python = python
        self.preload = preload
        self.env = env
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> None:
        self.zygote_socket.parent.mkdir(parents=True, exist_ok=True)
        # -P: the daemon's working directory must not shadow modules of the shims
        args = [self.python, "-P", "-m", "dockyard.shim.zygote", "--socket", str(self.zygote_socket)]
        for module in self.preload:
            args += ["--preload", module]
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env)
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            line = b""
        if line != b"ready\n":
            await self.close()
            raise errdefs.System("the shim zygote did not start (see the daemon's log for its error)")

    async def spawn(self, request: SpawnRequest) -> ShimClient:
        conn = await self._ask_zygote(request, None)
        try:
            return await self._created(conn, request)
        finally:
            await conn.close()

    async def run(self, request: SpawnRequest, attach: Sequence[tuple[bool, bool, bool]] = ()
                  ) -> tuple[ShimClient, list[AttachStream]]:
        conn = await self._ask_zygote(request, len(attach))
        handle: ShimClient | None = None
        streams: list[AttachStream] = []
        pending: list[asyncio.Future] = []
        try:
            # the shim's first reply comes once shim.sock is bound: the attach requests queue
            # there while it creates, and it starts the container once they are in
            handle = await self._created(conn, request, lambda h: pending.extend(
                asyncio.ensure_future(h.attach(*streams_of)) for streams_of in attach))
            for future in pending:
                streams.append(await future)
            if await _unless_dead(handle.shim_pid, conn.reply()) is None:
                raise errdefs.System(f"container {request.container_id}: the shim (pid {handle.shim_pid}) "
                                     f"died during start; see {request.state_dir / 'shim.log'}")
            return handle, streams
        except BaseException:
            for future in pending:
                future.cancel()
                if future.done() and not future.cancelled() and future.exception() is None \
                        and future.result() not in streams:
                    streams.append(future.result())  # attached, not yet taken: closed below
            for stream in streams:
                await stream.close()
            if handle is not None and handle.pid:
                await handle.discard()
            raise
        finally:
            await conn.close()

    async def _ask_zygote(self, request: SpawnRequest, start_after: int | None) -> _Connection:
        """Ask the zygote for a shim; the connection is then the shim's (its replies follow)."""
        if self._proc is not None and self._proc.returncode is not None:
            log.warning("the shim zygote exited (status %s); starting a new one", self._proc.returncode)
            self._proc = None
            await self.start()
        try:
            conn = await _Connection.open(self.zygote_socket)
        except (FileNotFoundError, ConnectionRefusedError):
            raise errdefs.Unavailable("the shim zygote is not running") from None
        body: dict = {"op": "spawn", "request": spawn_request_to_json(request)}
        if start_after is not None:
            body["start"] = start_after
        try:
            await conn.send(protocol.REQUEST, json.dumps(body).encode())
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _created(self, conn: _Connection, request: SpawnRequest,
                       on_shim: Callable[[ShimClient], None] | None = None) -> ShimClient:
        """The shim's first two replies: its pid (``on_shim`` is called then), the init's pid."""
        shim_pid = 0
        first = await conn.reply()
        if first is not None:
            shim_pid = int(first["shim_pid"])
            handle = ShimClient(request.container_id, request.state_dir, shim_pid, 0)
            if on_shim is not None:
                on_shim(handle)
            second = await _unless_dead(shim_pid, conn.reply())
            if second is not None:
                handle.pid = int(second["pid"])
                return handle
        raise errdefs.System(f"container {request.container_id}: the shim (pid {shim_pid}) died "
                             f"during create; see {request.state_dir / 'shim.log'}")

    async def connect(self, state_dir: Path, container_id: str) -> ShimClient | None:
        handle = ShimClient(container_id, state_dir, 0, 0)
        try:
            state = await handle.state()
        except (errdefs.NotFound, errdefs.System):
            return None
        try:
            handle.shim_pid = int((state_dir / "shim.pid").read_text())
        except (OSError, ValueError):
            pass
        handle.pid = state.pid
        return handle

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # EOF tells the zygote to exit
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
