"""The Dockerfile parser: lines into instructions (moby's ``parser`` + ``instructions`` split).

What it knows: parser directives at the top (``# escape=``, ``# syntax=``, ``# check=``), the
escape character, line continuations, comment and empty lines (also inside a continuation),
exec form (a JSON array) and shell form, ``--flag=value`` options, and heredocs
(``RUN <<EOF``, ``COPY <<EOF /dest``, ``<<-EOF`` strips leading tabs, a quoted delimiter
turns expansion off). Errors name the line and the instruction, as Docker's do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard import errdefs

INSTRUCTIONS = {"from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy", "entrypoint",
                "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell"}
# instructions whose leading --flags are options (others take "--" as part of their argument)
_WITH_FLAGS = {"from", "run", "add", "copy", "healthcheck"}
_HEREDOC_CAPABLE = {"run", "add", "copy"}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([a-zA-Z_][a-zA-Z0-9_]*)\2")


@dataclass
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted
    file_descriptor: int = 0


@dataclass
class Instruction:
    cmd: str  # lower case
    original: str  # the line as written (continuations joined), for "Step N/M : ..."
    line: int  # 1-based line where it starts
    rest: str  # the argument text after the flags
    flags: dict[str, list[str]] = field(default_factory=dict)
    json: list[str] | None = None  # exec form
    heredocs: list[Heredoc] = field(default_factory=list)

    def flag(self, name: str, default: str = "") -> str:
        values = self.flags.get(name)
        return values[-1] if values else default

    def error(self, message: str) -> errdefs.InvalidParameter:
        return errdefs.InvalidParameter(f"dockerfile parse error line {self.line}: {message}")


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return found, index
        name = match.group(1).lower()
        if name in found:
            raise errdefs.InvalidParameter(f"only one {name} parser directive can be used")
        found[name] = match.group(2)
    return found, len(lines)


def _parse_flags(cmd: str, text: str, line: int) -> tuple[dict[str, list[str]], str]:
    flags: dict[str, list[str]] = {}
    rest = text
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            break
        name, sep, value = word[2:].partition("=")
        if not name:
            raise errdefs.InvalidParameter(f"dockerfile parse error line {line}: {cmd.upper()}: "
                                           f"invalid flag {word!r}")
        flags.setdefault(name.lower(), []).append(value if sep else "true")
        rest = after.lstrip()
    return flags, rest


def exec_form(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # Docker falls back to the shell form for anything that is not valid JSON
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse(text: str) -> Dockerfile:
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise errdefs.InvalidParameter(f"invalid escape token '{escape}' does not match ` or \\")
    instructions: list[Instruction] = []
    i = start
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        first_line = i + 1
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        parts = [raw.rstrip()]
        # continuations: a line ending in the escape character joins the next; comment and
        # empty lines in between are dropped
        while parts[-1].endswith(escape):
            parts[-1] = parts[-1][:-1]
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            parts.append(lines[i].rstrip())
            i += 1
        joined = "".join(parts).strip()
        word, _, rest = joined.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        cmd = word.lower()
        rest = rest.strip()
        if cmd not in INSTRUCTIONS:
            raise errdefs.InvalidParameter(
                f"dockerfile parse error line {first_line}: unknown instruction: {word.upper()}")
        flags, rest = _parse_flags(cmd, rest, first_line) if cmd in _WITH_FLAGS else ({}, rest)
        inst = Instruction(cmd=cmd, original=joined, line=first_line, rest=rest, flags=flags)
        if cmd in _HEREDOC_CAPABLE and "<<" in rest and not rest.startswith("["):
            for match in _HEREDOC.finditer(rest):
                strip_tabs, quote, name = match.group(1), match.group(2), match.group(3)
                body: list[str] = []
                while True:
                    if i >= len(lines):
                        raise inst.error(f"unterminated heredoc {name}")
                    line = lines[i]
                    i += 1
                    check = line.lstrip("\t") if strip_tabs else line
                    if check == name:
                        break
                    body.append(check)
                inst.heredocs.append(Heredoc(name=name, content="".join(b + "\n" for b in body),
                                             expand=not quote))
        else:
            inst.json = exec_form(rest)
        _check_arity(inst)
        instructions.append(inst)
    if not instructions:
        raise errdefs.InvalidParameter("the Dockerfile (Dockerfile) cannot be empty")
    if instructions[0].cmd not in ("from", "arg"):
        raise errdefs.InvalidParameter("Please provide a source image with `from` prior to commit")
    return Dockerfile(instructions=instructions, escape=escape, directives=directives)


def is_heredoc_only(rest: str) -> bool:
    """``RUN <<EOF`` (the heredoc is the whole command), not ``RUN cat <<EOF``."""
    match = _HEREDOC.fullmatch(rest.strip())
    return match is not None


def _check_arity(inst: Instruction) -> None:
    name = inst.cmd.upper()
    if inst.cmd in ("cmd", "entrypoint", "shell", "healthcheck", "onbuild"):
        if inst.cmd == "shell" and not inst.json:
            raise inst.error("SHELL requires the arguments to be in JSON form")
        return
    if not inst.rest and not inst.heredocs:
        if inst.cmd in ("env", "label", "arg", "expose", "volume", "user", "workdir", "stopsignal",
                        "from", "maintainer", "run"):
            raise inst.error(f"{name} requires at least one argument")
        if inst.cmd in ("add", "copy"):
            raise inst.error(f"{name} requires at least two arguments")
