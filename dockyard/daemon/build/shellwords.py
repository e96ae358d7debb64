"""Dockerfile word processing: quotes, escapes and ``$var`` substitution (moby's shell lexer).

``expand`` turns one word into one string (WORKDIR, USER, STOPSIGNAL, a legacy ``ENV k v``
value); ``words`` splits a line into words first (ENV/LABEL/ARG pairs, COPY/ADD sources,
EXPOSE, VOLUME). Substitution knows ``$a``, ``${a}``, ``${a:-word}``, ``${a-word}``,
``${a:+word}``, ``${a+word}``, ``${a:?msg}``, ``${a?msg}``; an unset variable is empty.
Inside single quotes nothing is special; inside double quotes the escape character only
escapes ``"``, ``$``, itself and a backquote.
"""

from __future__ import annotations

from typing import Mapping

from dockyard import errdefs

_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, split: bool, quotes: bool = True) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.split = split
        self.quotes = quotes  # False: quotes are plain characters (heredoc bodies)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def run(self) -> list[str]:
        out: list[str] = []
        word: list[str] = []
        started = False  # a quoted empty string ("") is still a word
        while self.pos < len(self.text):
            ch = self.take()
            if self.split and ch in " \t\r\n":
                if word or started:
                    out.append("".join(word))
                word, started = [], False
                continue
            started = True
            if ch == self.escape and not self.quotes:
                word.append(self.take() if self.peek() in ("$", self.escape) else ch)
            elif ch == self.escape:
                nxt = self.take()
                word.append(nxt)
            elif ch == "'" and self.quotes:
                word.append(self._single())
            elif ch == '"' and self.quotes:
                word.append(self._double())
            elif ch == "$":
                word.append(self._variable())
            else:
                word.append(ch)
        if word or started:
            out.append("".join(word))
        return out

    def _single(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise errdefs.InvalidParameter("unexpected end of statement while looking for matching single-quote")
        value, self.pos = self.text[self.pos:end], end + 1
        return value

    def _double(self) -> str:
        value: list[str] = []
        while True:
            ch = self.take()
            if ch == "":
                raise errdefs.InvalidParameter("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                return "".join(value)
            if ch == self.escape and self.peek() in ('"', "$", self.escape, "`"):
                value.append(self.take())
            elif ch == "$":
                value.append(self._variable())
            else:
                value.append(ch)

    def _name(self) -> str:
        start = self.pos
        if self.peek() in _NAME_START:
            while self.peek() and self.peek() in _NAME_CHARS:
                self.pos += 1
        return self.text[start:self.pos]

    def _variable(self) -> str:
        if self.peek() == "{":
            self.pos += 1
            name = self._name()
            if not name:
                raise errdefs.InvalidParameter(f"missing or invalid variable name in ${{ at {self.text!r}")
            op = ""
            if self.peek() == ":":
                op = self.take()
            if self.peek() in ("-", "+", "?"):
                op += self.take()
            elif op:
                raise errdefs.InvalidParameter(f"unsupported modifier ({op}{self.peek()}) in substitution")
            word = self._until_brace() if op else ""
            if self.take() != "}":
                raise errdefs.InvalidParameter(f"missing '}}' in substitution of {name}")
            value = self.env.get(name)
            unset_or_empty = value is None or (op.startswith(":") and value == "")
            kind = op[-1:] if op else ""
            if kind == "-":
                return word if unset_or_empty else value or ""
            if kind == "+":
                return "" if unset_or_empty else word
            if kind == "?":
                if unset_or_empty:
                    raise errdefs.InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
                return value or ""
            return value or ""
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _until_brace(self) -> str:
        """The word of a modifier, itself expanded (``${a:-$b}``), up to the closing brace."""
        value: list[str] = []
        while self.peek() and self.peek() != "}":
            ch = self.take()
            if ch == self.escape:
                value.append(self.take())
            elif ch == "$":
                value.append(self._variable())
            elif ch == "'":
                value.append(self._single())
            elif ch == '"':
                value.append(self._double())
            else:
                value.append(ch)
        return "".join(value)


def expand(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables substituted, whitespace kept."""
    parts = _Lexer(text, env, escape, split=False).run()
    return parts[0] if parts else ""


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Whitespace-separated words, each with quotes removed and variables substituted."""
    return _Lexer(text, env, escape, split=True).run()


def substitute(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A heredoc body: variables substituted, quotes and whitespace kept as written."""
    parts = _Lexer(text, env, escape, split=False, quotes=False).run()
    return parts[0] if parts else ""
