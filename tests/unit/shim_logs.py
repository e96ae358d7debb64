"""What the tests of both file log drivers (json-file, local) share."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Protocol

from dockyard.shim.logread import LogPosition, LogRecord


class _Writer(Protocol):
    def write(self, stream: str, data: bytes) -> None: ...
    def close(self) -> None: ...


Follow = Callable[..., AsyncIterator[list[LogRecord]]]


def follow_while_writing(follow: Follow, log: Path, position: LogPosition, writer: _Writer,
                         writes: Iterable[bytes]) -> list[bytes]:
    """What ``follow`` yields from ``position`` while ``writer`` writes ``writes`` to stdout, one
    at a time with a pause (so rotations come between its reads), then closes, and the
    follower is told the container stopped."""
    async def main() -> list[bytes]:
        stopped = False
        got: list[bytes] = []

        async def consume() -> None:
            async for batch in follow(log, position, stop=lambda: stopped, poll_interval=0.01):
                got.extend(rec.data for rec in batch)

        task = asyncio.create_task(consume())
        for data in writes:
            writer.write("stdout", data)
            await asyncio.sleep(0.03)
        writer.close()
        stopped = True
        await asyncio.wait_for(task, 5)
        return got

    return asyncio.run(main())
