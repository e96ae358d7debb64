"""`inspect`: JSON (docker's 4-space indented array) or a template per object, any object type."""

from __future__ import annotations

import json
import sys
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Callable

from dockyard.cli.client import APIError, path_quote
from dockyard.cli.context import Context, StatusError
from dockyard.cli.parser import DockyardParser
from dockyard.cli.template import Template, go_maps


def inspect_objects(names: list[str], get: Callable[[str], Any], fmt: str) -> int:
    """Fetch each object with ``get`` (LookupError = not found); print like docker; errors last."""
    template = Template(fmt) if fmt else None
    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            obj = get(name)
        except LookupError as e:
            errors.append(f"Error: {e.args[0]}")
            continue
        except APIError as e:
            errors.append(str(e))
            continue
        if template is not None:
            sys.stdout.write(template.render(go_maps(obj)) + "\n")
        found.append(obj)
    if template is None:
        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", default="", help="Only inspect objects of the given type")
    p.positional("NAME|ID [NAME|ID...]", 1)


_PATHS = {"container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}",
          "volume": "/volumes/{}"}


def cmd_inspect(ctx: Context, opts: Any) -> int:
    if opts.type and opts.type not in _PATHS:
        raise StatusError(1, f'unknown type: "{opts.type}": must be one of "config", "container", "image", '
                             '"network", "node", "plugin", "secret", "service", "task", "volume"')
    kinds = [opts.type] if opts.type else ["container", "image", "network", "volume"]

    def get(name: str) -> Any:
        if opts.type:  # one kind asked for: the daemon's own error, as docker prints it
            query = {"size": True} if opts.type == "container" and opts.size else None
            return ctx.client.get(_PATHS[opts.type].format(path_quote(name)), query)
        for kind in kinds:
            query = {"size": True} if kind == "container" and opts.size else None
            try:
                return ctx.client.get(_PATHS[kind].format(path_quote(name)), query)
            except APIError as e:
                if e.status not in (404, 400):
                    raise
        raise LookupError(f"No such object: {name}")

    return inspect_objects(opts.args, get, opts.format)
