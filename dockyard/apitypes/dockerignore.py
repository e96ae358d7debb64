"""``.dockerignore``: Docker's pattern semantics (moby's ``patternmatcher``), shared by the client
that filters the context it sends and the daemon that applies it again.

Each line is a pattern; ``#`` lines and blank lines are skipped; a leading ``!`` re-includes.
Patterns are cleaned like Go's ``filepath.Clean`` and anchored at the context root (a leading
``/`` means nothing more). ``*`` and ``?`` never cross a ``/``, ``**`` does, ``[...]`` is a
class, the escape is ``\\``. The last pattern that matches a path, or any of its parent
directories, decides; so ``dir`` excludes everything below ``dir``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from dockyard import errdefs


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # "!pattern": re-include
    regex: re.Pattern[str]


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern)
    cleaned = cleaned.lstrip("/") or "."
    return cleaned


def _compile(pattern: str, line: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/": zero or more directories
                    i += 1
                    out.append("(.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise errdefs.InvalidParameter(f"Error processing .dockerignore: syntax error in pattern {line!r}")
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise errdefs.InvalidParameter(f"Error processing .dockerignore: syntax error in pattern {line!r}")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error:
        raise errdefs.InvalidParameter(f"Error processing .dockerignore: syntax error in pattern {line!r}") from None


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        body = line[1:].strip() if exclusion else line
        if not body:
            continue
        body = _clean(body)
        patterns.append(Pattern(text=body, exclusion=exclusion, regex=_compile(body, raw)))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    """Whether the context-relative ``path`` is left out of the build."""
    path = _clean(path)
    parents = []
    parent = posixpath.dirname(path)
    while parent:
        parents.append(parent)
        parent = posixpath.dirname(parent)
    matched = False
    for pattern in patterns:
        if pattern.exclusion != matched:
            continue  # only a pattern that could flip the verdict needs matching
        if pattern.regex.match(path) or any(pattern.regex.match(p) for p in parents):
            matched = not pattern.exclusion
    return matched
