"""Network commands: network create, ls, inspect, rm, connect, disconnect, prune."""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli.client import APIError, filters_arg, path_quote
from dockyard.cli.commands.container import confirm
from dockyard.cli.formatting import Formatter, go_time_string, parse_api_time, truncate_id
from dockyard.cli.context import Context, StatusError
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


def _n(name: str) -> str:
    return f"/networks/{path_quote(name)}"


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise StatusError(125, f'invalid argument "{item}" for "{flag}" flag: bad format for key=value')
        out[key] = value
    return out


def setup_create(p: DockyardParser) -> None:
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--aux-address", action="append", default=[], metavar="map",
                   help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
    p.add_argument("--config-from", default="", help="The network from which to copy the configuration")
    p.add_argument("--config-only", action="store_true", help="Create a configuration only network")
    p.add_argument("-d", "--driver", default="bridge", help='Driver to manage the Network (default "bridge")')
    p.add_argument("--gateway", action="append", default=[], metavar="strings",
                   help="IPv4 or IPv6 Gateway for the master subnet")
    p.add_argument("--ingress", action="store_true", help="Create swarm routing-mesh network")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--ip-range", action="append", default=[], metavar="strings",
                   help="Allocate container ip from a sub-range")
    p.add_argument("--ipam-driver", default="default", help='IP Address Management Driver (default "default")')
    p.add_argument("--ipam-opt", action="append", default=[], metavar="map", help="Set IPAM driver specific options")
    p.add_argument("--ipv4", action="store_true", default=None, help="Enable or disable IPv4 address assignment")
    p.add_argument("--ipv6", action="store_true", default=None, help="Enable or disable IPv6 address assignment")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="map", help="Set driver specific options")
    p.add_argument("--scope", default="", help="Control the network's scope")
    p.add_argument("--subnet", action="append", default=[], metavar="strings",
                   help="Subnet in CIDR format that represents a network segment")
    p.positional("NETWORK", 1, 1)


def _ipam_config(opts: Any) -> list[dict[str, Any]]:
    """docker's consolidateIpam: each --ip-range/--gateway/--aux-address belongs to one --subnet."""
    import ipaddress

    if not opts.subnet and (opts.ip_range or opts.gateway or opts.aux_address):
        raise StatusError(1, "every ip-range or gateway must have a corresponding subnet")
    pools = [{"Subnet": s} for s in opts.subnet]

    def owner(addr: str, what: str) -> dict[str, Any]:
        ip = ipaddress.ip_network(addr, strict=False)
        for pool in pools:
            net = ipaddress.ip_network(pool["Subnet"], strict=False)
            if ip.version == net.version and ip.subnet_of(net):  # type: ignore[arg-type]
                return pool
        raise StatusError(1, f"no matching subnet for {what} {addr}")

    for r in opts.ip_range:
        owner(r, "range")["IPRange"] = r
    for g in opts.gateway:
        owner(g, "gateway")["Gateway"] = g
    for aux in opts.aux_address:
        name, _, addr = aux.partition("=")
        owner(addr, "aux-address").setdefault("AuxiliaryAddresses", {})[name] = addr
    return pools


def cmd_create(ctx: Context, opts: Any) -> int:
    body: dict[str, Any] = {
        "Driver": opts.driver, "Scope": opts.scope,
        "IPAM": {"Driver": opts.ipam_driver, "Options": _pairs(opts.ipam_opt, "--ipam-opt"),
                 "Config": _ipam_config(opts)},
        "Internal": opts.internal, "Attachable": opts.attachable, "Ingress": opts.ingress,
        "ConfigOnly": opts.config_only, "ConfigFrom": {"Network": opts.config_from} if opts.config_from else None,
        "Options": _pairs(opts.opt, "-o, --opt"), "Labels": _pairs(opts.label, "--label"), "Name": opts.args[0],
    }
    if opts.ipv4 is not None:
        body["EnableIPv4"] = opts.ipv4
    if opts.ipv6 is not None:
        body["EnableIPv6"] = opts.ipv6
    resp = ctx.client.post("/networks/create", body=body)
    print(resp["Id"])
    for warning in [resp["Warning"]] if resp.get("Warning") else []:
        sys.stderr.write(f"WARNING: {warning}\n")
    return 0


def setup_rm(p: DockyardParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")
    p.positional("NETWORK [NETWORK...]", 1)


def cmd_rm(ctx: Context, opts: Any) -> int:
    def remove(name: str) -> str | None:
        try:
            ctx.client.delete(_n(name))
        except APIError as e:
            if opts.force and e.status == 404:
                return ""
            raise
        return None

    errors = []
    for name in opts.args:
        try:
            if remove(name) is None:
                print(name, flush=True)
        except APIError as e:
            errors.append(str(e))
    if errors:
        # docker prints each error, then its bare status error ("exit status 1")
        raise StatusError(1, "\n".join(errors) + "\nexit status 1")
    return 0


def setup_connect(p: DockyardParser) -> None:
    p.add_argument("--alias", action="append", default=[], metavar="strings",
                   help="Add network-scoped alias for the container")
    p.add_argument("--driver-opt", action="append", default=[], metavar="strings", help="driver options for the network")
    p.add_argument("--gw-priority", type=int, default=0, help="Highest gw-priority provides the default gateway")
    p.add_argument("--ip", default="", help='IPv4 address (e.g., "172.30.100.104")')
    p.add_argument("--ip6", default="", help='IPv6 address (e.g., "2001:db8::33")')
    p.add_argument("--link", action="append", default=[], help="Add link to another container")
    p.add_argument("--link-local-ip", action="append", default=[], metavar="strings",
                   help="Add a link-local address for the container")
    p.positional("NETWORK CONTAINER", 2, 2)


def cmd_connect(ctx: Context, opts: Any) -> int:
    network, container = opts.args
    ipam: dict[str, Any] = {}
    if opts.ip:
        ipam["IPv4Address"] = opts.ip
    if opts.ip6:
        ipam["IPv6Address"] = opts.ip6
    if opts.link_local_ip:
        ipam["LinkLocalIPs"] = opts.link_local_ip
    endpoint = {"IPAMConfig": ipam, "Links": opts.link or None, "Aliases": opts.alias,
                "MacAddress": "", "DriverOpts": _pairs(opts.driver_opt, "--driver-opt"),
                "GwPriority": opts.gw_priority, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": None}  # the zero fields docker sends too
    ctx.client.post(_n(network) + "/connect", body={"Container": container, "EndpointConfig": endpoint})
    return 0


def setup_disconnect(p: DockyardParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")
    p.positional("NETWORK CONTAINER", 2, 2)


def cmd_disconnect(ctx: Context, opts: Any) -> int:
    network, container = opts.args
    ctx.client.post(_n(network) + "/disconnect", body={"Container": container, "Force": opts.force})
    return 0


def setup_prune(p: DockyardParser) -> None:
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "until=<timestamp>")')
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.positional("", 0, 0)


def cmd_prune(ctx: Context, opts: Any) -> int:
    if not opts.force and not confirm("WARNING! This will remove all custom networks not used by at least one "
                                      "container."):
        return 0
    report = ctx.client.post("/networks/prune", {"filters": filters_arg(opts.filter)})
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    return 0
