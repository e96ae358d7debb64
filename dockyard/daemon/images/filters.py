"""Docker's filter arguments for images (list and prune), and created-time handling.

Filters arrive as ``{"dangling": ["true"], "label": ["a=b"], ...}``. Unknown keys and
bad values are errors with Docker's words.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from dockyard import errdefs
from dockyard.daemon.images import references

LIST_FILTERS = {"before", "dangling", "label", "reference", "since", "until"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def validate(filters: dict[str, list[str]], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")


def dangling(filters: dict[str, list[str]]) -> bool | None:
    """None when no dangling filter; refuses values other than true/false (and 1/0)."""
    values = filters.get("dangling")
    if not values:
        return None
    wanted = set()
    for value in values:
        if value.lower() in ("true", "1"):
            wanted.add(True)
        elif value.lower() in ("false", "0"):
            wanted.add(False)
        else:
            raise errdefs.InvalidParameter(f"invalid filter 'dangling={value}'")
    return wanted.pop() if len(wanted) == 1 else None


def parse_created(created: str | None) -> float:
    """Unix time of an RFC 3339 timestamp with up to nanoseconds ("" or None -> 0)."""
    if not created:
        return 0.0
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", created)
    if match is None:
        return 0.0
    base, fraction, zone = match.groups()
    stamp = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return stamp.timestamp() + (float(fraction) if fraction else 0.0)


def parse_until(value: str) -> float:
    """``until``: a unix timestamp, an RFC 3339 date, or a Go duration before now ("24h")."""
    try:
        return float(value)
    except ValueError:
        pass
    if re.fullmatch(rf"(?:{_DURATION.pattern})+", value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value))
        return time.time() - seconds
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.rstrip("Z"), fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    stamp = parse_created(value)
    if stamp:
        return stamp
    raise errdefs.InvalidParameter(f"failed to parse value as time or duration: \"{value}\"")


def labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match a slash."""
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                return False
            body = pattern[i + 1:end]
            regex += "[" + ("^" + body[1:] if body.startswith("^") else re.escape(body).replace("\\-", "-")) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex += re.escape(pattern[i])
        else:
            regex += re.escape(c)
        i += 1
    return re.fullmatch(regex, name) is not None


def reference_match(stored_refs: list[str], patterns: list[str]) -> bool:
    """Docker's ``reference`` filter: a pattern matches the familiar ``name:tag`` or the name."""
    for stored in stored_refs:
        ref = references.parse(stored)
        for pattern in patterns:
            if _path_match(pattern, ref.familiar()) or _path_match(pattern, ref.familiar_name):
                return True
    return False
