"""Network commands: network ls, network inspect."""

from __future__ import annotations

import sys
from typing import Any

from dockyard.cli.client import filters_arg, path_quote
from dockyard.cli.formatting import Formatter, go_time_string, parse_api_time, truncate_id
from dockyard.cli.context import Context
from dockyard.cli.parser import DockyardParser


class NetworkRow:
    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self._n, self._trunc = n, trunc

    def ID(self) -> str:
        return truncate_id(self._n.get("Id", "")) if self._trunc else self._n.get("Id", "")

    def Name(self) -> str:
        return self._n.get("Name", "")

    def Driver(self) -> str:
        return self._n.get("Driver", "")

    def Scope(self) -> str:
        return self._n.get("Scope", "")

    def IPv4(self) -> str:
        return str(self._n.get("EnableIPv4", True)).lower()

    def IPv6(self) -> str:
        return str(bool(self._n.get("EnableIPv6"))).lower()

    def Internal(self) -> str:
        return str(bool(self._n.get("Internal"))).lower()

    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (self._n.get("Labels") or {}).items())

    def Label(self, name: str) -> str:
        return (self._n.get("Labels") or {}).get(name, "")

    def CreatedAt(self) -> str:
        return go_time_string(*parse_api_time(self._n.get("Created", "")))

    def __json__(self) -> dict[str, str]:
        fields = ["CreatedAt", "Driver", "ID", "IPv4", "IPv6", "Internal", "Labels", "Name", "Scope"]
        return {f: getattr(self, f)() for f in fields}


HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "Label": "LABEL", "CreatedAt": "CREATED"}


def setup_ls(p: DockyardParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help='Provide filter values (e.g. "driver=bridge")')
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.positional("", 0, 0)


def cmd_ls(ctx: Context, opts: Any) -> int:
    networks = ctx.client.get("/networks", {"filters": filters_arg(opts.filter)})
    networks.sort(key=lambda n: n.get("Name", ""))
    rows = [NetworkRow(n, not opts.no_trunc) for n in networks]
    if opts.quiet:
        sys.stdout.write("".join(r.ID() + "\n" for r in rows))
        return 0
    Formatter(opts.format or "table", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", HEADERS).render(rows)
    return 0


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    p.positional("NETWORK [NETWORK...]", 1)


def cmd_inspect(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.inspect import inspect_objects

    def get(name: str) -> Any:
        return ctx.client.get(f"/networks/{path_quote(name)}", {"verbose": opts.verbose or None})

    return inspect_objects(opts.args, get, opts.format)
