"""argparse, made to speak like docker's cobra/pflag: help layout, flag errors (exit 125),
argument-count errors (exit 1), and flags interspersed with arguments where docker allows them."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, NoReturn, Sequence


class ParseExit(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _plural(n: int) -> str:
    return "argument" if n == 1 else "arguments"


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal width: left to find it itself, it imports shutil
    (and with it bz2 and lzma, ~3 ms of every command's start-up) the moment a flag is added."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 0
        super().__init__(prog, width=(columns or 80) - 2)


class DockyardParser(argparse.ArgumentParser):
    def __init__(self, prog: str, short: str) -> None:
        super().__init__(prog=prog, description=short, add_help=False, allow_abbrev=False,
                         formatter_class=_Formatter)
        self.short = short
        self.args_usage = ""
        self.min_args = 0
        self.max_args: int | None = 0
        self.interspersed = True
        self.add_argument("--help", action="store_true", help="Print usage")

    # -- declaration helpers ------------------------------------------------------------------
    def positional(self, usage: str, min_args: int = 0, max_args: int | None = None) -> None:
        """Positional words go to ``ns.args`` (checked against docker's count rules)."""
        self.args_usage = usage
        self.min_args, self.max_args = min_args, max_args
        self.add_argument("args", nargs="*", help=argparse.SUPPRESS)

    def command_line(self, usage: str) -> None:
        """IMAGE [COMMAND] [ARG...]: flags stop at the first positional (run/create)."""
        self.args_usage = usage
        self.min_args, self.max_args = 1, None
        self.interspersed = False
        self.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    # -- parsing ----------------------------------------------------------------------------
    def usage_line(self) -> str:
        has_flags = len(self._actions) > 2  # more than --help and the positional
        return self.prog + (" [OPTIONS]" if has_flags else "") + (f" {self.args_usage}" if self.args_usage else "")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        args = list(args or [])
        if "--help" in args[: self._flag_region(args)]:
            raise ParseExit(0, self.format_help())
        args, falses = self._bool_values(args)
        if self.interspersed:
            ns = super().parse_intermixed_args(args, namespace)
        else:
            ns = super().parse_args(args, namespace)
        for dest in falses:
            setattr(ns, dest, False)
        n = len(getattr(ns, "args", []) or [])
        if n < self.min_args or (self.max_args is not None and n > self.max_args):
            self._count_error()
        return ns

    def _bool_values(self, args: list[str]) -> tuple[list[str], list[str]]:
        """pflag's ``--flag=true|false`` for boolean flags: true is the bare flag, false removes it."""
        out: list[str] = []
        falses: list[str] = []
        region = self._flag_region(args)
        for i, arg in enumerate(args):
            name, eq, value = arg.partition("=")
            action = self._option_string_actions.get(name) if eq and i < region else None
            if action is None or action.nargs != 0:
                out.append(arg)
            elif value.lower() in ("1", "t", "true"):
                out.append(name)
            elif value.lower() in ("0", "f", "false"):
                falses.append(action.dest)
            else:
                self._flag_error(f'invalid argument "{value}" for "{name}" flag: strconv.ParseBool: '
                                 f'parsing "{value}": invalid syntax')
        return out, falses

    def _flag_region(self, args: list[str]) -> int:
        if self.interspersed:
            return len(args)
        for i, a in enumerate(args):
            if not a.startswith("-"):
                return i
        return len(args)

    def _count_error(self) -> NoReturn:
        lo, hi = self.min_args, self.max_args
        hint = "Run"
        if hi == 0:
            what = "accepts no arguments"
        elif lo == hi:
            what = f"requires {lo} {_plural(lo)}" if lo > 1 else f"requires exactly {lo} {_plural(lo)}"
        elif hi is None:
            what, hint = f"requires at least {lo} {_plural(lo)}", "See"
        elif lo == 0:
            what = f"requires at most {hi} {_plural(hi)}"
        else:
            what = f"requires at least {lo} and at most {hi} arguments"
        raise ParseExit(1, f"{self.prog.split()[0]}: '{self.prog}' {what}\n\nUsage:  {self.usage_line()}\n\n"
                           f"{hint} '{self.prog} --help' for more information\n")

    def _flag_error(self, message: str) -> NoReturn:
        raise ParseExit(125, f"{message}\n\nUsage:  {self.usage_line()}\n\n"
                             f"Run '{self.prog} --help' for more information\n")

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            flag = message.split(": ", 1)[1].split()[0]
            if flag.startswith("--"):
                self._flag_error(f"unknown flag: {flag.split('=')[0]}")
            if flag.startswith("-"):
                self._flag_error(f"unknown shorthand flag: '{flag[1:2]}' in {flag}")
            self._count_error()
        if message.startswith("the following arguments are required"):
            self._count_error()
        if "expected one argument" in message:
            names = message.split(":", 1)[0].replace("argument ", "").split("/")
            short = [n for n in names if not n.startswith("--")]
            self._flag_error(f"flag needs an argument: '{short[0][1:]}' in {short[0]}" if short
                             else f"flag needs an argument: {names[-1]}")
        if message.startswith("argument ") and ": invalid argument " in message:
            self._flag_error(message.split(": ", 1)[1])  # an ArgumentTypeError already worded as docker's
        if "invalid int value" in message:
            name = message.split(":", 1)[0].replace("argument ", "").split("/")[-1]
            value = message.rsplit(":", 1)[1].strip().strip("'")
            self._flag_error(f'invalid argument "{value}" for "{name}" flag: strconv.ParseInt: '
                             f'parsing "{value}": invalid syntax')
        self._flag_error(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise ParseExit(status, message or "")

    def format_help(self) -> str:
        lines = [f"\nUsage:  {self.usage_line()}", "", self.short, "", "Options:"]
        rows = []
        for action in self._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            shorts = [o for o in action.option_strings if not o.startswith("--")]
            longs = [o for o in action.option_strings if o.startswith("--")]
            names = (shorts[0] + ", " if shorts else "    ") + (longs[0] if longs else "")
            if action.nargs != 0:
                names += " " + (action.metavar or ("list" if isinstance(action, argparse._AppendAction) else "string"))
            rows.append((names, action.help or ""))
        width = max((len(r[0]) for r in rows), default=0)
        lines += [f"  {n:<{width}}   {h}" for n, h in rows]
        return "\n".join(lines) + "\n"


def make_parser(prog: str, short: str) -> DockyardParser:
    return DockyardParser(prog, short)
