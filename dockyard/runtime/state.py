"""Per-container runtime state on disk: ``<root>/<id>/state.json`` and ``exec.fifo``.

Written once, atomically, when ``create`` succeeds, so any process (the shim
after a restart, the CLI) can kill, inspect or delete the container. The
status is not stored but derived, like runc does it: the init's PID (checked
against its start time, so a recycled PID is not mistaken for it) gone or a
zombie -> stopped; exec.fifo still present -> created; cgroup frozen -> paused;
otherwise running.
"""

from __future__ import annotations

import os

import msgspec

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"


class ContainerState(msgspec.Struct, omit_defaults=True):
    id: str
    pid: int
    pid_start_time: int  # field 22 of /proc/<pid>/stat, in clock ticks since boot
    bundle: str
    rootfs: str
    cgroup_path: str
    created: str  # RFC3339Nano, UTC


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid``, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may hold spaces and parens: split after the last ')'
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(state: ContainerState) -> bool:
    return process_start_time(state.pid) == state.pid_start_time


def save(directory: str, state: ContainerState) -> None:
    # atomic by the rename; no fsync: the state describes processes, which a power loss ends
    # anyway (the runtime root is under /run), and on a disk-backed root it cost ~1 ms a start
    tmp = os.path.join(directory, STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, msgspec.json.encode(state))
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, STATE_FILE))


def load(directory: str) -> ContainerState:
    with open(os.path.join(directory, STATE_FILE), "rb") as f:
        return msgspec.json.decode(f.read(), type=ContainerState)
