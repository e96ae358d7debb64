"""Rendering the daemon's JSON message streams (pull, load, import, push) as docker's jsonmessage does.

Non-terminal output prints one line per message and skips progress bars; on a terminal, lines
with an ``id`` are kept in place and rewritten (cursor moves), as docker draws layer progress.
An ``error``/``errorDetail`` message ends the stream with :class:`StreamError`.
"""

from __future__ import annotations

import json
from typing import IO, Any, Iterable


class StreamError(Exception):
    """An error reported inside a 200 stream; ``str()`` is the daemon's message."""


def _progress_string(msg: dict[str, Any]) -> str:
    detail = msg.get("progressDetail") or {}
    current, total = detail.get("current") or 0, detail.get("total") or 0
    if msg.get("progress"):
        return msg["progress"]
    if not current and not total:
        return ""
    from dockyard.cli.formatting import human_size

    if total <= 0:
        return f"{human_size(current, 4):>8}"
    width = 50
    filled = min(width, int(width * current / total))
    bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
    return f"[{bar}] {human_size(current, 4):>8}/{human_size(total, 4)}"


def display(lines: Iterable[bytes], out: IO[str], is_terminal: bool = False,
            aux: list[dict[str, Any]] | None = None) -> None:
    ids: dict[str, int] = {}  # terminal mode: id -> line index counted from the top
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        msg = json.loads(raw)
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            raise StreamError(detail.get("message") or msg.get("error") or "unknown error")
        if "aux" in msg:
            if aux is not None:
                aux.append(msg["aux"])
            continue
        progress = _progress_string(msg)
        ident = msg.get("id", "")
        if is_terminal and ident and not msg.get("stream"):
            if ident in ids:
                diff = len(ids) - ids[ident]
                out.write(f"\x1b[{diff}A\r\x1b[2K")
            else:
                ids[ident] = len(ids)
                diff = 0
            out.write(_line(msg, ident, progress if is_terminal else ""))
            out.write("\n")
            if diff:
                out.write(f"\x1b[{diff - 1}B" if diff > 1 else "")
            out.flush()
            continue
        if progress and not is_terminal:
            continue  # docker drops progress-bar messages when output is not a terminal
        if msg.get("stream") is not None:
            out.write(msg["stream"])
        else:
            out.write(_line(msg, ident, "") + "\n")
        out.flush()


def _line(msg: dict[str, Any], ident: str, progress: str) -> str:
    text = f"{ident}: " if ident else ""
    if msg.get("from"):
        text += f"(from {msg['from']}) "
    status = msg.get("status", "")
    return text + (f"{status} {progress}" if progress else status)
