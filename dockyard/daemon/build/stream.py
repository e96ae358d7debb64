"""The classic builder's JSON stream messages (moby's ``streamformatter``)."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def text(line: str) -> Message:
    return {"stream": line}


def aux_id(image_id: str) -> Message:
    return {"aux": {"ID": image_id}}


def error(message: str, code: int | None = None) -> Message:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail["code"] = code
    return {"errorDetail": detail, "error": message}


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
