"""Attach sessions: a client's view of a container's stdio, connected before or after start.

``docker run`` attaches BEFORE it starts the container, so a session may be
pending: it waits until ``start`` connects it to the shim's ``AttachStream``
(before the process is let run, so no output is lost). The API layer reads
``output()`` and frames it; it feeds client bytes to ``write_stdin`` and calls
``stdin_closed`` when the client half-closes. Detach keys end the session
without touching the container (TTY only, as the docker CLI sends them raw).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from dockyard import errdefs
from dockyard.shim.client import AttachStream

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str) -> bytes:
    """Docker's term.ToBytes: "ctrl-p,ctrl-q" -> b"\\x10\\x11"; single characters as they are."""
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            out.append(ord(key))
            continue
        lower = key.lower()
        if not lower.startswith("ctrl-") or len(key) != 6:
            raise errdefs.InvalidParameter(f"Invalid detach keys ({spec}) provided")
        c = lower[5]
        if "a" <= c <= "z":
            out.append(ord(c) - ord("a") + 1)
        elif c in "@[\\]^_":
            out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c])
        else:
            raise errdefs.InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class EscapeFilter:
    """Holds back bytes that might be the start of the detach sequence (moby's escapeProxy)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, detach now)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self._held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self._held = b""
                    return bytes(out), True
                self._held = candidate
            else:
                out += candidate
                self._held = b""
        return bytes(out), False


class AttachSession:
    def __init__(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                 stdin_once: bool, detach_keys: bytes) -> None:
        self.container_id = container_id
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.stdin_once = stdin_once
        self.detached = False
        self.replay: list[tuple[int, bytes]] = []  # logs=1: what was logged before, sent first
        self._escape = EscapeFilter(detach_keys if tty and stdin else b"")
        self._stream: AttachStream | None = None
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()

    # ---- the container side (service) ------------------------------------------
    def connect(self, stream: AttachStream) -> None:
        self._stream = stream
        self._connected.set()

    def abandon(self) -> None:
        """The container will not start for this session (removed, or start failed)."""
        self._ended.set()
        self._connected.set()

    # ---- the client side (API) -------------------------------------------------
    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, data) until the container's output ends, the client detaches, or it is abandoned."""
        for item in self.replay:
            yield item
        await self._connected.wait()
        if self._stream is None or self._ended.is_set():
            return
        iterator = self._stream.output().__aiter__()
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({nxt, ended}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    return
                try:
                    stream, data = nxt.result()
                except StopAsyncIteration:
                    return
                if (stream == 1 and self.stdout) or (stream == 2 and self.stderr):
                    yield stream, data
        finally:
            ended.cancel()

    async def write_stdin(self, data: bytes) -> None:
        if not self.stdin:
            return
        data, detach = self._escape.feed(data)
        if data:
            await self._connected.wait()
            if self._stream is not None and not self._ended.is_set():
                await self._stream.write_stdin(data)
        if detach:
            self.detached = True
            self._ended.set()

    async def stdin_closed(self) -> None:
        """The client half-closed: close the container's stdin with StdinOnce (no TTY), else
        end this session (moby's attach: CloseStdin && !TTY)."""
        if not self.stdin:
            return
        await self._connected.wait()
        if self.stdin_once and not self.tty and self._stream is not None:
            await self._stream.close_stdin()
        else:
            self._ended.set()

    async def close(self) -> None:
        self._ended.set()
        self._connected.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()
