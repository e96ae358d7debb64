"""The files a container gets bound at /etc/hosts, /etc/resolv.conf and /etc/hostname.

Contents follow Docker's (libnetwork's etchosts and resolvconf packages); files are written
atomically so a reader never sees half a file.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from dockyard import errdefs

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)

# What Docker falls back to when the host lists only local resolvers (unreachable from a
# container with its own network namespace).
DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]
INTERNAL_RESOLVER = "127.0.0.11"  # the embedded DNS of user-defined networks


def write_atomic(path: Path, data: str) -> None:
    """Replace path by rename, so readers see the old or the new file, never a mix.

    No fsync: these files are derived data, rewritten at every container start before the
    container can read them, so losing them in a crash costs nothing, while three fsyncs
    would cost milliseconds on every ``docker run``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_if_changed(path: Path, data: str) -> None:
    """``write_atomic`` unless the file already holds exactly ``data``: written ahead of the
    start (at create) or by the container's last run. Reading a small file costs far less than
    making one (0.1-0.3 ms on an ext4 root)."""
    encoded = data.encode()
    try:
        with open(path, "rb") as f:
            if f.read(len(encoded) + 1) == encoded:
                return
    except OSError:
        pass
    write_atomic(path, data)


def parse_extra_host(entry: str) -> tuple[str, str]:
    """``--add-host name:ip`` (or ``name=ip``) -> (name, ip); IPv6 addresses may be bracketed."""
    for sep in ("=", ":"):
        name, found, ip = entry.partition(sep)
        if found and name and ip:
            ip = ip.strip("[]")
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                if ip != "host-gateway":
                    break
            return name, ip
    raise errdefs.InvalidParameter(f"invalid IP address in add-host: {entry!r}")


def _host_entry(entry: str, host_gateway: str) -> str:
    name, ip = parse_extra_host(entry)
    if ip == "host-gateway":
        if not host_gateway:
            raise errdefs.InvalidParameter("unable to derive the IP value for host-gateway: "
                                           "the daemon has no default bridge")
        ip = host_gateway
    return f"{ip}\t{name}\n"


def hosts(hostname: str, domainname: str, address: str | None, extra_hosts: list[str],
          host_gateway: str = "", links: list[tuple[str, str]] = ()) -> str:
    """Docker's /etc/hosts: localhost entries, --add-host entries, legacy --link entries
    ((address, names) pairs), then the container's own."""
    lines = [DEFAULT_HOSTS]
    lines += [_host_entry(entry, host_gateway) for entry in extra_hosts]
    lines += [f"{ip}\t{names}\n" for ip, names in links]
    if address:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{address}\t{names}\n")
    return "".join(lines)


def host_hosts(extra_hosts: list[str], host_gateway: str = "") -> str:
    """Host networking: the host's own /etc/hosts, plus --add-host entries."""
    try:
        base = HOST_HOSTS.read_text()
    except FileNotFoundError:
        base = DEFAULT_HOSTS
    if base and not base.endswith("\n"):
        base += "\n"
    return base + "".join(_host_entry(entry, host_gateway) for entry in extra_hosts)


def _is_local_nameserver(line: str) -> bool:
    fields = line.split()
    if len(fields) < 2 or fields[0] != "nameserver":
        return False
    try:
        return ipaddress.ip_address(fields[1].split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(dns: list[str], dns_search: list[str], dns_options: list[str],
                host_netns: bool = False) -> str:
    """The host's resolv.conf adjusted as Docker does: loopback nameservers dropped (unless the
    container shares the host's network), Google's servers if none is left, and --dns,
    --dns-search, --dns-option replacing the matching lines."""
    try:
        source = HOST_RESOLV_CONF.read_text()
    except FileNotFoundError:
        source = ""
    kept: list[str] = []
    nameservers: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        key = stripped.split()[0] if stripped.split() else ""
        if key == "nameserver":
            if host_netns or not _is_local_nameserver(stripped):
                nameservers.append(stripped.split()[1])
            continue
        if (key in ("search", "domain") and dns_search) or (key == "options" and dns_options):
            continue
        kept.append(line)
    if dns:
        nameservers = list(dns)
    elif not nameservers:
        nameservers = list(DEFAULT_NAMESERVERS)
    out = [line for line in kept if line.strip()]
    out += [f"nameserver {ns}" for ns in nameservers]
    if dns_search:
        # "." alone means: no search domains at all.
        domains = [d for d in dns_search if d != "."]
        if domains:
            out.append("search " + " ".join(domains))
    if dns_options:
        out.append("options " + " ".join(dns_options))
    return "\n".join(_order(out)) + "\n"


def internal_resolv_conf(dns: list[str], dns_search: list[str],
                         dns_options: list[str]) -> tuple[str, list[tuple[str, int]]]:
    """A user-defined network's resolv.conf, as Docker writes it: the embedded resolver
    (127.0.0.11) as the only nameserver, ``ndots:0`` unless asked otherwise, and the servers it
    forwards to. Those are the --dns servers, else the host's (loopback ones included: the
    resolver forwards from the host's namespace)."""
    return internalize(resolv_conf(dns, dns_search, dns_options, host_netns=True))


def internalize(external: str) -> tuple[str, list[tuple[str, int]]]:
    """A resolv.conf turned into the embedded resolver's one, and the servers it forwards to."""
    upstreams = [(line.split()[1], 53) for line in external.splitlines()
                 if line.startswith("nameserver ") and line.split()[1:2] != [INTERNAL_RESOLVER]]
    lines = [line for line in external.splitlines()
             if not line.startswith("nameserver ") and not line.startswith("# ExtServers:")]
    lines.append(f"nameserver {INTERNAL_RESOLVER}")
    if not any(line.startswith("options") and "ndots:" in line for line in lines):
        options = [line for line in lines if line.startswith("options ")]
        if options:
            lines[lines.index(options[0])] = options[0] + " ndots:0"
        else:
            lines.append("options ndots:0")
    servers = ", ".join(ip for ip, _ in upstreams)
    lines.append(f"# ExtServers: [{servers}]")
    return "\n".join(_order(lines)) + "\n", upstreams


def rewrite_in_place(path: Path, data: str) -> None:
    """Replace a file's content keeping its inode: a running container has it bind-mounted, and
    a rename would leave the container with the old file."""
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(data)


def _order(lines: list[str]) -> list[str]:
    """Comments first, then nameserver, search, options lines, as resolv.conf readers expect."""
    rank = {"nameserver": 1, "search": 2, "domain": 2, "options": 3}
    return sorted(lines, key=lambda l: rank.get(l.split()[0], 0) if l.split() else 0)


def hostname_file(hostname: str) -> str:
    return hostname + "\n"
