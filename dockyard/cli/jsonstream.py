"""Rendering the daemon's JSON message streams (pull, load, import, push) as docker's jsonmessage does.

On a terminal, each message with an ``id`` and progress owns a line that later messages rewrite
in place (cursor up, clear line, cursor down); anything else is printed below and starts a new
block. Off a terminal, progress bars are dropped and every other message is one line. An
``error``/``errorDetail`` message ends the stream with :class:`StreamError`.
"""

from __future__ import annotations

import json
import os
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import IO, Any, Iterable


class StreamError(Exception):
    """An error reported inside a 200 stream; ``str()`` is the daemon's message."""


def progress_string(detail: dict[str, Any], width: int) -> str:
    """jsonmessage.JSONProgress.String: "[=====>    ]  1.2MB/4.5MB" (bar only on wide terminals)."""
    from dockyard.cli.formatting import human_size

    current, total = detail.get("current") or 0, detail.get("total") or 0
    unit = detail.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current, 4):>8}" if not unit else f"{current} {unit}"
    percentage = min(50, int(current / total * 100) // 2)
    bar = f"[{'=' * percentage}>{' ' * max(0, 50 - percentage)}] " if width > 110 else ""
    if detail.get("hidecounts"):
        numbers = ""
    elif not unit:
        numbers = f"{human_size(current, 4):>8}" if current > total else \
            f"{human_size(current, 4):>8}/{human_size(total, 4)}"
    else:
        numbers = f"{current} {unit}" if current > total else f"{current}/{total} {unit}"
    return bar + numbers


def display(lines: Iterable[bytes], out: IO[str], is_terminal: bool = False,
            aux: list[dict[str, Any]] | None = None) -> None:
    width = 200
    if is_terminal:
        try:
            width = os.get_terminal_size(out.fileno()).columns
        except (OSError, ValueError):
            pass
    ids: dict[str, int] = {}
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
        ident = msg.get("id", "")
        has_progress = "progressDetail" in msg and msg["progressDetail"] is not None
        diff = 0
        if ident and (has_progress or msg.get("progress")):
            if ident not in ids:
                ids[ident] = len(ids)
                if is_terminal:
                    out.write("\n")
            diff = len(ids) - ids[ident]
            if is_terminal:
                out.write(f"\x1b[{diff}A")
        else:
            ids = {}  # a message outside the progress block: later ids start a new block
        _display_one(msg, out, is_terminal, width, has_progress)
        if ident and is_terminal and diff:
            out.write(f"\x1b[{diff}B")
        out.flush()


def _display_one(msg: dict[str, Any], out: IO[str], is_terminal: bool, width: int, has_progress: bool) -> None:
    endl = ""
    progress = progress_string(msg.get("progressDetail") or {}, width) if has_progress else ""
    if is_terminal and msg.get("stream") is None and has_progress:
        out.write("\x1b[2K\r")
        endl = "\r"
    elif has_progress and progress:
        return  # docker drops progress bars when the output is not a terminal
    text = f"{msg['id']}: " if msg.get("id") else ""
    if msg.get("from"):
        text += f"(from {msg['from']}) "
    status = msg.get("status", "")
    if has_progress and is_terminal:
        text += f"{status} {progress}{endl}"
    elif msg.get("progress"):
        text += f"{status} {msg['progress']}{endl}"
    elif msg.get("stream") is not None:
        text += f"{msg['stream']}{endl}"
    else:
        text += f"{status}{endl}\n"
    out.write(text)
