"""Reading processes from /proc: the tree below a daemon, RSS and PSS, and who listens on a socket.

Memory figures follow the kernel's own accounting: RSS from /proc/<pid>/status (what `ps` shows),
PSS from /proc/<pid>/smaps_rollup (shared pages divided among the processes that map them, so the
PSS of many shims adds up to what they really cost together)."""

from __future__ import annotations

import os
import socket
import struct

KIB_PER_MIB = 1024


def children(pid: int) -> list[int]:
    """Direct children of pid, from every thread's children list."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """pid and everything below it, parents before children."""
    order, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        order.append(p)
        todo.extend(children(p))
    return order


def naming(text: str) -> list[int]:
    """Processes whose command line contains text (a private directory: never a program name)."""
    needle = text.encode()
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != os.getpid() and needle in _cmdline(int(e))]


def forks_outside(tree: set[int]) -> list[int]:
    """Processes outside ``tree`` running the command line of one inside it: forks that left the
    tree (Dockyard's zygote double-forks its spare shim, which forks its create helper and that
    the prepared init of the next container)."""
    lines = {_cmdline(p) for p in tree} - {b""}
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) not in tree and _cmdline(int(e)) in lines]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may contain spaces and parentheses: the fields start after the last ")".
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in argv if a)[:120]
    except OSError:
        return "?"


def _kib_field(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def supervisors_of(container_pid: int, stop_at: set[int]) -> list[int]:
    """The processes between a container's init and the daemon (or init): its shim, conmon, ...

    Found by walking up the parents, because every engine detaches its per-container supervisor
    differently (containerd's shim and conmon re-parent to init, a zygote-forked shim to whoever
    reaps it); what they share is that they are ancestors of the container's first process."""
    found = []
    p = parent(container_pid)
    while p > 1 and p not in stop_at:
        found.append(p)
        p = parent(p)
    return found


def unix_socket_owner(path: str) -> int:
    """The pid of the process listening on a unix socket (SO_PEERCRED), or 0 if unknown."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(path)
        cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", cred)[0]
    except OSError:
        return 0
    finally:
        s.close()


def top_mappings(pid: int, limit: int = 15) -> list[tuple[str, int]]:
    """The mappings of pid holding the most PSS, summed by name (anonymous ones as [anon])."""
    by_name: dict[str, int] = {}
    name = "[anon]"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if not head:
                    continue
                if "-" in head[0] and not head[0].endswith(":"):
                    name = head[5].strip() if len(head) > 5 else "[anon]"
                elif head[0] == "Pss:":
                    by_name[name] = by_name.get(name, 0) + int(head[1])
    except OSError:
        return []
    return sorted(by_name.items(), key=lambda kv: -kv[1])[:limit]
