"""System commands: version, info, events, system df, system prune."""

from __future__ import annotations

import json
import sys
import time
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli.client import CLIENT_API_VERSION, APIError, ConnectError, filters_arg
from dockyard.cli.commands.container import PS_HEADERS, ContainerRow, confirm, get_timestamp
from dockyard.cli.formatting import Formatter, human_size, parse_api_time, rfc3339_nano_fixed, since
from dockyard.cli.context import VERSION, Context, StatusError
from dockyard.cli.parser import DockyardParser
from dockyard.cli.template import Template

def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("3.725GiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


# ---------------------------------------------------------------------------------------------
# version


def setup_version(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.positional("", 0, 0)


class _Obj(dict):
    """A dict whose keys are also template fields (``{{.Client.Version}}``)."""


def cmd_version(ctx: Context, opts: Any) -> int:
    import platform

    client_info = {"Platform": {"Name": ""}, "Version": VERSION, "ApiVersion": CLIENT_API_VERSION,
                   "DefaultAPIVersion": CLIENT_API_VERSION, "GitCommit": "", "GoVersion": "python" + platform.python_version(),
                   "Os": "linux", "Arch": _arch(), "BuildTime": "", "Context": "default"}
    server: dict[str, Any] | None = None
    error: Exception | None = None
    try:
        client_info["ApiVersion"] = ctx.client.version
        server = ctx.client.get("/version")
    except (APIError, ConnectError) as e:
        error = e
    if opts.format:
        sys.stdout.write(Template(opts.format).render({"Client": client_info, "Server": server}) + "\n")
    else:
        lines = ["Client:",
                 f" Version:           {client_info['Version']}",
                 f" API version:       {client_info['ApiVersion']}",
                 f" Go version:        {client_info['GoVersion']}",
                 f" Git commit:        {client_info['GitCommit']}",
                 f" Built:             {client_info['BuildTime']}",
                 f" OS/Arch:           linux/{client_info['Arch']}",
                 " Context:           default"]
        if server is not None:
            lines += ["", f"Server: {(server.get('Platform') or {}).get('Name', '')}"]
            for comp in server.get("Components") or []:
                details = comp.get("Details") or {}
                lines.append(f" {comp.get('Name')}:")
                lines.append(f"  Version:          {comp.get('Version', '')}")
                if comp.get("Name") == "Engine":
                    lines += [f"  API version:      {details.get('ApiVersion', '')} (minimum version {details.get('MinAPIVersion', '')})",
                              f"  Go version:       {details.get('GoVersion', '')}",
                              f"  Git commit:       {details.get('GitCommit', '')}",
                              f"  Built:            {details.get('BuildTime', '')}",
                              f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}",
                              f"  Experimental:     {details.get('Experimental', 'false')}"]
                else:
                    for key in sorted(details):
                        lines.append(f"  {key + ':':<18}{details[key]}")
        sys.stdout.write("\n".join(lines) + "\n")
    if error is not None:
        raise StatusError(1, str(error))
    return 0


def _arch() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# ---------------------------------------------------------------------------------------------
# info


def setup_info(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.positional("", 0, 0)


def cmd_info(ctx: Context, opts: Any) -> int:
    info = ctx.client.get("/info")
    if opts.format:
        fmt = "{{json .}}" if opts.format == "json" else opts.format
        sys.stdout.write(Template(fmt).render(info) + "\n")
        return 0
    g = info.get
    plugins = g("Plugins") or {}
    swarm = g("Swarm") or {}
    lines = ["Client:", f" Version:    {VERSION}", " Context:    default", " Debug Mode: false", "",
             "Server:",
             f" Containers: {g('Containers', 0)}",
             f"  Running: {g('ContainersRunning', 0)}",
             f"  Paused: {g('ContainersPaused', 0)}",
             f"  Stopped: {g('ContainersStopped', 0)}",
             f" Images: {g('Images', 0)}",
             f" Server Version: {g('ServerVersion', '')}",
             f" Storage Driver: {g('Driver', '')}"]
    for k, v in g("DriverStatus") or []:
        lines.append(f"  {k}: {v}")
    lines += [f" Logging Driver: {g('LoggingDriver', '')}",
              f" Cgroup Driver: {g('CgroupDriver', '')}",
              f" Cgroup Version: {g('CgroupVersion', '')}",
              " Plugins:",
              f"  Volume: {' '.join(plugins.get('Volume') or [])}",
              f"  Network: {' '.join(plugins.get('Network') or [])}",
              f"  Log: {' '.join(plugins.get('Log') or [])}",
              f" Swarm: {swarm.get('LocalNodeState', '')}"]
    if swarm.get("LocalNodeState", "") not in ("inactive", "locked"):
        lines += [f"  NodeID: {swarm.get('NodeID', '')}",
                  f"  Is Manager: {str(bool(swarm.get('ControlAvailable'))).lower()}",
                  f"  Node Address: {swarm.get('NodeAddr', '')}"]
    lines += [f" Runtimes: {' '.join(sorted(g('Runtimes') or {}))}",
              f" Default Runtime: {g('DefaultRuntime', '')}",
              f" Init Binary: {g('InitBinary', '')}"]
    for name, key in (("containerd", "ContainerdCommit"), ("runc", "RuncCommit"), ("init", "InitCommit")):
        lines.append(f" {name} version: {(g(key) or {}).get('ID', '')}")
    if g("SecurityOptions"):
        lines.append(" Security Options:")
        for opt in g("SecurityOptions"):
            fields = dict(kv.partition("=")[::2] for kv in opt.split(","))
            lines.append(f"  {fields.pop('name', '')}")
            if "profile" in fields:
                lines.append(f"   Profile: {fields['profile']}")
    lines += [f" Kernel Version: {g('KernelVersion', '')}",
              f" Operating System: {g('OperatingSystem', '')}",
              f" OSType: {g('OSType', '')}",
              f" Architecture: {g('Architecture', '')}",
              f" CPUs: {g('NCPU', 0)}",
              f" Total Memory: {bytes_size(g('MemTotal', 0) or 0)}",
              f" Name: {g('Name', '')}",
              f" ID: {g('ID', '')}",
              f" Docker Root Dir: {g('DockerRootDir', '')}",
              f" Debug Mode: {str(bool(g('Debug'))).lower()}"]
    for title, key in (("HTTP Proxy", "HttpProxy"), ("HTTPS Proxy", "HttpsProxy"), ("No Proxy", "NoProxy")):
        if g(key):
            lines.append(f" {title}: {g(key)}")
    if g("Labels"):
        lines.append(" Labels:")
        lines += [f"  {label}" for label in g("Labels")]
    lines.append(f" Experimental: {str(bool(g('ExperimentalBuild'))).lower()}")
    registry = g("RegistryConfig") or {}
    insecure = [name for name, index in sorted((registry.get("IndexConfigs") or {}).items())
                if not index.get("Secure")] + list(registry.get("InsecureRegistryCIDRs") or [])
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {r}" for r in insecure]
    if registry.get("Mirrors"):
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in registry["Mirrors"]]
    lines.append(f" Live Restore Enabled: {str(bool(g('LiveRestoreEnabled'))).lower()}")
    pools = g("DefaultAddressPools") or []
    if pools:
        lines.append(" Default Address Pools:")
        lines += [f"   Base: {p.get('Base')}, Size: {p.get('Size')}" for p in pools]
    sys.stdout.write("\n".join(lines) + "\n\n")
    for warning in g("Warnings") or []:
        sys.stderr.write(f"{warning}\n")
    return 0


# ---------------------------------------------------------------------------------------------
# events


def setup_events(p: DockyardParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("--since", default="", help="Show all events created since timestamp")
    p.add_argument("--until", default="", help="Stream events until this timestamp")
    p.positional("", 0, 0)


def format_event(ev: dict[str, Any]) -> str:
    """docker's prettyPrintEvent: time, type, action, actor ID, (sorted attributes)."""
    out = ""
    if ev.get("timeNano"):
        out = rfc3339_nano_fixed(ev["timeNano"] // 1_000_000_000, ev["timeNano"] % 1_000_000_000) + " "
    elif ev.get("time"):
        out = rfc3339_nano_fixed(ev["time"], 0) + " "
    actor = ev.get("Actor") or {}
    out += f"{ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out


def cmd_events(ctx: Context, opts: Any) -> int:
    template = None
    if opts.format:
        template = Template("{{json .}}" if opts.format == "json" else opts.format)
    query = {"since": get_timestamp(opts.since), "until": get_timestamp(opts.until),
             "filters": filters_arg(opts.filter)}
    resp = ctx.client.request("GET", "/events", query)
    for line in iter(resp.readline, b""):
        line = line.strip()
        if not line:
            continue
        ev = json.loads(line)
        sys.stdout.write((template.render(ev) if template else format_event(ev)) + "\n")
        sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# system df


class _DfRow:
    def __init__(self, type_: str, total: int, active: int, size: int, reclaimable: int) -> None:
        self.Type, self._total, self._active, self._size, self._reclaimable = type_, total, active, size, reclaimable

    def TotalCount(self) -> str:
        return str(self._total)

    def Active(self) -> str:
        return str(self._active)

    # system df prints go-units HumanSize: 4 significant digits where other tables use 3
    def Size(self) -> str:
        return human_size(self._size, 4)

    def Reclaimable(self) -> str:
        text = human_size(self._reclaimable, 4)
        if self._size > 0:
            text += f" ({int(self._reclaimable * 100 / self._size)}%)"
        return text

    def __json__(self) -> dict[str, str]:
        return {"Active": self.Active(), "Reclaimable": self.Reclaimable(), "Size": self.Size(),
                "TotalCount": self.TotalCount(), "Type": self.Type}


def setup_df(p: DockyardParser) -> None:
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    p.positional("", 0, 0)


def cmd_df(ctx: Context, opts: Any) -> int:
    df = ctx.client.get("/system/df")
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    img_active = sum(1 for i in images if (i.get("Containers") or 0) > 0)
    img_reclaim = sum(i.get("Size", 0) - max(i.get("SharedSize", 0), 0) for i in images if not i.get("Containers"))
    ctr_active = sum(1 for c in containers if c.get("State") in ("running", "paused", "restarting"))
    ctr_size = sum(c.get("SizeRw") or 0 for c in containers)
    ctr_reclaim = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") not in ("running", "paused", "restarting"))
    vol_size = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    vol_active = sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0)
    vol_reclaim = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                      if (v.get("UsageData") or {}).get("RefCount", 0) == 0)
    cache_size = sum(b.get("Size", 0) for b in cache)
    rows = [_DfRow("Images", len(images), img_active, df.get("LayersSize") or 0, max(img_reclaim, 0)),
            _DfRow("Containers", len(containers), ctr_active, ctr_size, ctr_reclaim),
            _DfRow("Local Volumes", len(volumes), vol_active, vol_size, vol_reclaim),
            _DfRow("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), cache_size,
                   sum(b.get("Size", 0) for b in cache if not b.get("InUse") and not b.get("Shared")))]
    if not opts.verbose:
        headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}
        Formatter(opts.format or "table", "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                  headers).render(rows)
        return 0
    _df_verbose(images, containers, volumes, cache)
    return 0


def _df_verbose(images: list[dict], containers: list[dict], volumes: list[dict], cache: list[dict]) -> None:
    from dockyard.cli.commands.image import IMAGE_HEADERS, image_rows

    out = sys.stdout
    out.write("Images space usage:\n\n")
    Formatter("table", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t"
              "{{.UniqueSize}}\t{{.Containers}}", IMAGE_HEADERS).render(image_rows(images, True, False))
    out.write("\nContainers space usage:\n\n")
    now = time.time()
    Formatter("table", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t"
              "{{.Status}}\t{{.Names}}", PS_HEADERS).render([_SizeRow(c, True, now) for c in containers])
    out.write("\nLocal Volumes space usage:\n\n")
    out.write(_simple_table(["VOLUME NAME", "LINKS", "SIZE"],
                            [[v.get("Name", ""), str((v.get("UsageData") or {}).get("RefCount", 0)),
                              human_size(max((v.get("UsageData") or {}).get("Size", 0), 0))] for v in volumes]))
    out.write("\nBuild cache usage: " + human_size(sum(b.get("Size", 0) for b in cache)) + "\n\n")
    out.write(_simple_table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
                            [[b.get("ID", ""), b.get("Type", ""), human_size(b.get("Size", 0)),
                              since(parse_api_time(b.get("CreatedAt", ""))[0]), since(parse_api_time(b.get("LastUsedAt", ""))[0]),
                              str(b.get("UsageCount", 0)), str(bool(b.get("Shared"))).lower()] for b in cache]))


class _SizeRow(ContainerRow):
    """A ps row whose Size is the writable layer alone (df -v)."""

    def Size(self) -> str:
        return human_size(self._c.get("SizeRw") or 0)


def _simple_table(headers: list[str], rows: list[list[str]]) -> str:
    from dockyard.cli.formatting import tabwrite

    return tabwrite("\n".join("\t".join(r) for r in [headers, *rows]) + "\n")


# ---------------------------------------------------------------------------------------------
# system prune


def setup_prune(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "label=<key>=<value>")')
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    p.positional("", 0, 0)


def cmd_prune(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.image import prune_images

    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if opts.all
                 else "all dangling images")
    items.append("unused build cache" if not opts.all else "all build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not opts.force and not confirm(warning):
        return 0
    filters = filters_arg(opts.filter)
    out = ""
    space = 0
    report = ctx.client.post("/containers/prune", {"filters": filters})
    if report.get("ContainersDeleted"):
        out += "Deleted Containers:\n" + "".join(f"{c}\n" for c in report["ContainersDeleted"]) + "\n"
    space += report.get("SpaceReclaimed") or 0
    report = ctx.client.post("/networks/prune", {"filters": filters})
    if report.get("NetworksDeleted"):
        out += "Deleted Networks:\n" + "".join(f"{n}\n" for n in report["NetworksDeleted"]) + "\n"
    if opts.volumes:
        report = ctx.client.post("/volumes/prune", {"filters": filters})
        if report.get("VolumesDeleted"):
            out += "Deleted Volumes:\n" + "".join(f"{v}\n" for v in report["VolumesDeleted"]) + "\n"
        space += report.get("SpaceReclaimed") or 0
    image_out, image_space = prune_images(ctx, opts.all, opts.filter)
    out += image_out
    space += image_space
    try:
        report = ctx.client.post("/build/prune", {"all": opts.all or None, "filters": filters})
        if report.get("CachesDeleted"):
            out += "Deleted build cache objects:\n" + "".join(f"{c}\n" for c in report["CachesDeleted"]) + "\n"
        space += report.get("SpaceReclaimed") or 0
    except APIError as e:
        if e.status != 404:  # a daemon without a builder has nothing to prune there
            raise
    sys.stdout.write(out + f"Total reclaimed space: {human_size(space, 4)}\n")
    return 0
