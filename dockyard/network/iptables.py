"""The daemon's own iptables chains: published ports (DNAT), masquerade, network isolation.

Every rule lives in chains named after this daemon instance (``DOCKYARD-<8 hex>`` and friends,
the suffix derived from the exec root), so several daemons on one host never touch each other's
rules, and everything is found again after a ``kill -9``: ``setup`` first removes whatever a
previous run of the same daemon left, ``teardown`` removes all of it at stop. The only rules
outside our chains are the jumps into them from the built-in chains.

Changes go to the kernel as one ``iptables-restore --noflush`` batch per call (one process,
~5-10 ms, whatever the number of rules), never one ``iptables`` process per rule.

Layout (filter FORWARD is not given a new policy; we only add rules):

  nat PREROUTING  -m addrtype --dst-type LOCAL -> DNAT chain
  nat OUTPUT      ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -> DNAT chain
                  (127.0.0.1 is served by the userland proxy, as with Docker's default; with
                  --userland-proxy=false loopback is DNATed too: the bridge gets route_localnet
                  and traffic from 127.0.0.0/8 or from the bridge back into it is masqueraded)
  nat POSTROUTING -> POST chain: MASQUERADE per network that enables it
  filter FORWARD  -> FWD chain: established -> ACCEPT; published ports -> ACCEPT (inserted
                  before the isolation jump); -> ISO1; per internal network DROP in/out;
                  per other network ACCEPT from it
  ISO1: -i <br> ! -o <br> -> ISO2;  ISO2: -o <br> -> DROP  (no traffic between two networks)

IPv6 (--ipv6 networks): the same chains through ip6tables (table names "filter6" and "nat6" in
a ``Rule``): networks stay apart, --internal stays in, masquerade for the network's IPv6 subnet,
DNAT of published ports on IPv6 host addresses to the container's IPv6 address. ::1 is never
DNATed (IPv6 has no route_localnet): the userland proxy serves it, as with Docker.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dockyard import errdefs

log = logging.getLogger("dockyard.networks")

IPTABLES_RESTORE = "/usr/sbin/iptables-restore"
IPTABLES_SAVE = "/usr/sbin/iptables-save"
IP6TABLES_RESTORE = "/usr/sbin/ip6tables-restore"
IP6TABLES_SAVE = "/usr/sbin/ip6tables-save"
FILTER6 = "filter6"  # a Rule's table for ip6tables' filter table
NAT6 = "nat6"  # and for ip6tables' nat table

Rule = tuple[str, str, str]  # (table: "nat", "filter", "nat6" or "filter6", chain, match/target spec)


@dataclass(frozen=True)
class Chains:
    """Chain names of one daemon instance (iptables allows 28 characters)."""
    suffix: str

    @classmethod
    def for_instance(cls, key: str) -> Chains:
        return cls(hashlib.sha256(key.encode()).hexdigest()[:8])

    @property
    def dnat(self) -> str:
        return f"DOCKYARD-{self.suffix}"

    @property
    def post(self) -> str:
        return f"DOCKYARD-POST-{self.suffix}"

    @property
    def forward(self) -> str:
        return f"DOCKYARD-FWD-{self.suffix}"

    @property
    def iso1(self) -> str:
        return f"DOCKYARD-ISO1-{self.suffix}"

    @property
    def iso2(self) -> str:
        return f"DOCKYARD-ISO2-{self.suffix}"

    def all(self) -> list[tuple[str, str]]:
        return [("nat", self.dnat), ("nat", self.post), ("filter", self.forward),
                ("filter", self.iso1), ("filter", self.iso2),
                (NAT6, self.dnat), (NAT6, self.post),
                (FILTER6, self.forward), (FILTER6, self.iso1), (FILTER6, self.iso2)]

    def jumps(self, localhost: bool = False) -> list[Rule]:
        """The rules in built-in chains that lead into ours (localhost: loopback DNATed too)."""
        loopback = "" if localhost else "! -d 127.0.0.0/8 "
        return [("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -j {self.dnat}"),
                ("nat", "OUTPUT", f"{loopback}-m addrtype --dst-type LOCAL -j {self.dnat}"),
                ("nat", "POSTROUTING", f"-j {self.post}"),
                ("filter", "FORWARD", f"-j {self.forward}"),
                (NAT6, "PREROUTING", f"-m addrtype --dst-type LOCAL -j {self.dnat}"),
                (NAT6, "OUTPUT", f"! -d ::1/128 -m addrtype --dst-type LOCAL -j {self.dnat}"),
                (NAT6, "POSTROUTING", f"-j {self.post}"),
                (FILTER6, "FORWARD", f"-j {self.forward}")]


def _restore(lines: list[tuple[str, str]]) -> None:
    """(table, line) pairs to the kernel: one iptables-restore document for IPv4 (a block per
    table), one ip6tables-restore document for "nat6" and "filter6" lines."""
    for binary, tables in ((IPTABLES_RESTORE, (("nat", "nat"), ("filter", "filter"))),
                           (IP6TABLES_RESTORE, ((NAT6, "nat"), (FILTER6, "filter")))):
        out: list[str] = []
        for ours, table in tables:
            body = [line for t, line in lines if t == ours]
            if body:
                out += [f"*{table}", *body, "COMMIT"]
        if not out:
            continue
        done = subprocess.run([binary, "-w", "--noflush"], input="\n".join(out) + "\n", capture_output=True,
                              text=True, timeout=30)
        if done.returncode != 0:
            raise errdefs.System(f"iptables failed: {done.stderr.strip() or done.stdout.strip()}")


def add(rules: list[Rule]) -> None:
    if rules:
        _restore([(t, f"-A {c} {spec}") for t, c, spec in rules])


def insert(rules: list[Rule], position: int) -> None:
    if rules:
        _restore([(t, f"-I {c} {position} {spec}") for t, c, spec in rules])


def delete(rules: list[Rule]) -> None:
    """Delete rules one batch per rule, ignoring those already gone (a restore batch is all or
    nothing, and a cleanup must remove what is there even when something else is not)."""
    if not rules:
        return
    try:
        _restore([(t, f"-D {c} {spec}") for t, c, spec in rules])
    except errdefs.System:
        for rule in rules:
            try:
                _restore([(rule[0], f"-D {rule[1]} {rule[2]}")])
            except errdefs.System:
                pass


def _saved(table: str) -> list[str]:
    binary, table = {FILTER6: (IP6TABLES_SAVE, "filter"), NAT6: (IP6TABLES_SAVE, "nat")}.get(
        table, (IPTABLES_SAVE, table))
    done = subprocess.run([binary, "-t", table], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise errdefs.System(f"iptables-save failed: {done.stderr.strip()}")
    return done.stdout.splitlines()


def teardown(chains: Chains) -> None:
    """Remove the jumps and chains of this instance (whatever a previous run left too), read
    from one dump per table and removed in one batch."""
    ours = {c for _, c in chains.all()}
    lines: list[tuple[str, str]] = []
    present: list[tuple[str, str]] = []
    for table in ("nat", "filter", NAT6, FILTER6):
        for line in _saved(table):
            if line.startswith(":") and line[1:].split()[0] in ours:
                present.append((table, line[1:].split()[0]))
            elif line.startswith("-A ") and line.split()[-1] in ours and line.split()[1] not in ours:
                lines.append((table, "-D" + line[2:]))  # a jump from a built-in chain
    lines += [(t, f"-F {c}") for t, c in present] + [(t, f"-X {c}") for t, c in present]
    if lines:
        _restore(lines)


def setup(chains: Chains, localhost: bool = False) -> None:
    """Fresh chains and jumps for this instance (after removing any left by a previous run)."""
    teardown(chains)
    lines = [(t, f":{c} - [0:0]") for t, c in chains.all()]
    for table in ("filter", FILTER6):
        lines += [(table, f"-A {chains.forward} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                  (table, f"-A {chains.forward} -j {chains.iso1}")]
    lines += [(t, f"-I {c} 1 {spec}") for t, c, spec in chains.jumps(localhost)]
    _restore(lines)


def _filter_rules(table: str, chains: Chains, bridge: str, internal: bool, icc: bool) -> list[Rule]:
    rules: list[Rule] = [(table, chains.iso1, f"-i {bridge} ! -o {bridge} -j {chains.iso2}"),
                         (table, chains.iso2, f"-o {bridge} -j DROP")]
    if not icc:  # before the network's ACCEPT: bridged traffic between two of its containers
        rules.append((table, chains.forward, f"-i {bridge} -o {bridge} -j DROP"))
    if internal:
        rules += [(table, chains.forward, f"-i {bridge} ! -o {bridge} -j DROP"),
                  (table, chains.forward, f"-o {bridge} ! -i {bridge} -j DROP")]
    else:
        rules.append((table, chains.forward, f"-i {bridge} -j ACCEPT"))
    return rules


def network_rules(chains: Chains, bridge: str, subnet: str, internal: bool, masquerade: bool,
                  hairpin: bool = False, subnet6: str = "", icc: bool = True) -> list[Rule]:
    """Isolation, --internal, masquerade; hairpin (no userland proxy): NAT for published ports
    reached from 127.0.0.0/8 or from the bridge itself, which cannot be answered directly.
    subnet6 (--ipv6 networks): the same for IPv6 (with ip6tables). Without icc, traffic between two
    ports of the bridge is dropped (it passes FORWARD through br_netfilter: see
    ``bridge_netfilter``); the gateway, the outside and published ports stay reachable."""
    rules = _filter_rules("filter", chains, bridge, internal, icc)
    if subnet6:
        rules += _filter_rules(FILTER6, chains, bridge, internal, icc)
    if not internal:
        for table, source in (("nat", subnet), (NAT6, subnet6)):
            if not source:
                continue
            if masquerade:
                rules.append((table, chains.post, f"-s {source} ! -o {bridge} -j MASQUERADE"))
            if hairpin:
                rules.append((table, chains.post,
                              f"-s {source} -o {bridge} -m conntrack --ctstate DNAT -j MASQUERADE"))
        if hairpin:
            rules.append(("nat", chains.post, f"-s 127.0.0.0/8 -o {bridge} -j MASQUERADE"))
    return rules


def bridge_netfilter() -> None:
    """Bridged (same-bridge) traffic through iptables and ip6tables, which icc=false needs, as
    dockerd does: loads br_netfilter and switches bridge-nf-call-ip(6)tables on (host-wide
    settings; nothing is changed when they are on already)."""
    base = Path("/proc/sys/net/bridge")
    if not base.exists():
        done = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True, timeout=30)
        if done.returncode != 0 or not base.exists():
            raise errdefs.System("icc=false needs the br_netfilter kernel module, which could not be "
                                 f"loaded: {done.stderr.strip()}")
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        path = base / name
        if path.read_text().strip() != "1":
            log.warning("enabling %s (net.bridge.%s=1) for a network with icc disabled", name, name)
            path.write_text("1\n")


def port_rules(chains: Chains, bridge: str, proto: str, host_ip: str, host_port: int,
               container_ip: str, container_port: int, hairpin: bool = False) -> tuple[list[Rule], list[Rule]]:
    """(DNAT rules to append, FORWARD accept rules to insert before the isolation jump), with
    iptables or, for an IPv6 host address (and container address), ip6tables.
    Without hairpin, traffic from the container's own bridge is left to the userland proxy."""
    v6 = ipaddress.ip_address(host_ip).version == 6
    nat, filt, host_len = (NAT6, FILTER6, 128) if v6 else ("nat", "filter", 32)
    dst = "" if ipaddress.ip_address(host_ip).is_unspecified else f"-d {host_ip}/{host_len} "
    inbound = "" if hairpin else f"! -i {bridge} "
    target = f"[{container_ip}]" if v6 else container_ip
    dnat = [(nat, chains.dnat, f"{dst}{inbound}-p {proto} -m {proto} --dport {host_port} "
                               f"-j DNAT --to-destination {target}:{container_port}")]
    accept = [(filt, chains.forward, f"-d {container_ip}/{host_len} {inbound}-o {bridge} -p {proto} "
                                     f"-m {proto} --dport {container_port} -j ACCEPT")]
    return dnat, accept
