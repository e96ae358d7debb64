"""Volume commands: volume create, ls, inspect, rm, prune (docker's output and errors)."""

from __future__ import annotations

import argparse
import re
import sys
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli.client import filters_arg, path_quote
from dockyard.cli.commands.container import confirm, for_each
from dockyard.cli.context import Context, StatusError
from dockyard.cli.formatting import Formatter, human_size
from dockyard.cli.parser import DockyardParser


def _key_values(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if flag == "opt" and not sep:
            raise StatusError(125, f'invalid argument "{item}" for "-o, --opt" flag: invalid key value pair '
                                   f'format in driver options')
        out[key] = value
    return out


def setup_create(p: DockyardParser) -> None:
    p.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("--name", default="", help=argparse.SUPPRESS)  # docker keeps it, hidden
    p.add_argument("-o", "--opt", action="append", default=[], metavar="map", help="Set driver specific options")
    p.positional("[VOLUME]", 0, 1)


def cmd_create(ctx: Context, opts: Any) -> int:
    name = opts.name
    if opts.args:
        if name:
            raise StatusError(1, "Conflicting options: cannot specify a volume-name through both --name and "
                                 "as a positional arg")
        name = opts.args[0]
    body = {"Name": name, "Driver": opts.driver, "DriverOpts": _key_values(opts.opt, "opt"),
            "Labels": _key_values(opts.label, "label")}
    vol = ctx.client.post("/volumes/create", body=body)
    print(vol.get("Name", ""))
    return 0


class VolumeRow:
    def __init__(self, v: dict[str, Any]) -> None:
        self._v = v

    def Name(self) -> str:
        return self._v.get("Name", "")

    def Driver(self) -> str:
        return self._v.get("Driver", "")

    def Scope(self) -> str:
        return self._v.get("Scope", "")

    def Mountpoint(self) -> str:
        return self._v.get("Mountpoint", "")

    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (self._v.get("Labels") or {}).items())

    def Label(self, name: str) -> str:
        return (self._v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:
        usage = self._v.get("UsageData")
        return "N/A" if not usage or usage.get("RefCount", -1) < 0 else str(usage["RefCount"])

    def Size(self) -> str:
        usage = self._v.get("UsageData")
        return "N/A" if not usage or usage.get("Size", -1) < 0 else human_size(usage["Size"])

    def Group(self) -> str:
        return ""

    def Availability(self) -> str:
        return "N/A"

    def Status(self) -> str:
        return "N/A"

    def __json__(self) -> dict[str, str]:
        fields = ["Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name", "Scope",
                  "Size", "Status"]
        return {f: getattr(self, f)() for f in fields}


HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Label": "LABEL", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
           "Availability": "AVAILABILITY", "Status": "STATUS"}


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def setup_ls(p: DockyardParser) -> None:
    p.add_argument("--cluster", action="store_true", help="Display only cluster volumes, and use cluster volume list formatting")
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. \"dangling=true\")")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.positional("", 0, 0)


def cmd_ls(ctx: Context, opts: Any) -> int:
    answer = ctx.client.get("/volumes", {"filters": filters_arg(opts.filter)})
    volumes = sorted(answer.get("Volumes") or [], key=lambda v: _natural_key(v.get("Name", "")))
    rows = [VolumeRow(v) for v in volumes]
    if opts.quiet and not opts.format:
        sys.stdout.write("".join(r.Name() + "\n" for r in rows))
    else:
        Formatter(opts.format or "table", "table {{.Driver}}\t{{.Name}}", HEADERS).render(rows)
    for warning in answer.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    return 0


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.positional("VOLUME [VOLUME...]", 1)


def cmd_inspect(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.inspect import inspect_objects

    return inspect_objects(opts.args, lambda name: ctx.client.get(f"/volumes/{path_quote(name)}"), opts.format)


def setup_rm(p: DockyardParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
    p.positional("VOLUME [VOLUME...]", 1)


def cmd_rm(ctx: Context, opts: Any) -> int:
    query = {"force": opts.force or None}
    return for_each(ctx, opts.args, lambda name: ctx.client.delete(f"/volumes/{path_quote(name)}", query))


def setup_prune(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "label=<label>")')
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.positional("", 0, 0)


def cmd_prune(ctx: Context, opts: Any) -> int:
    filters = filters_arg(opts.filter) or {}
    if opts.all:
        if "all" in filters:
            raise StatusError(1, "conflicting options: cannot specify both --all and --filter all=1")
        filters["all"] = {"true": True}
        warning = "WARNING! This will remove all local volumes not used by at least one container."
    else:
        warning = "WARNING! This will remove anonymous local volumes not used by at least one container."
    if not opts.force and not confirm(warning):
        return 0
    report = ctx.client.post("/volumes/prune", {"filters": filters or None})
    out = ""
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        out += "Deleted Volumes:\n" + "".join(f"{name}\n" for name in deleted) + "\n"
    out += f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}\n"
    sys.stdout.write(out)
    return 0
