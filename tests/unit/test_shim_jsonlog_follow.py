"""json-file follow when the writer rotates several times while the follower lags."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dockyard.shim.jsonlog import JsonLogWriter
from dockyard.shim.jsonlog_reader import follow, read_logs


def test_follow_reads_the_files_rotated_while_it_lagged(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, max_size=1000, max_files=10)
    w.write("stdout", b"before\n")
    _, position = read_logs(log, max_files=10)

    async def follow_after_the_writer_ran_ahead() -> list[bytes]:
        reading = follow(log, position, stop=lambda: True, poll_interval=0.01)
        for i in range(3):
            w.write("stdout", f"early {i}\n".encode())
        got = [r.data for r in await reading.__anext__()]  # the follower holds the first file open
        for i in range(60):  # meanwhile several rotations
            w.write("stdout", f"line {i}\n".encode())
        got += [rec.data async for batch in reading for rec in batch]
        return got

    got = asyncio.run(follow_after_the_writer_ran_ahead())
    w.close()
    assert len(list(tmp_path.iterdir())) >= 4
    assert got == [f"early {i}\n".encode() for i in range(3)] + [f"line {i}\n".encode() for i in range(60)]
