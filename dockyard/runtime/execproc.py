"""A process exec'd into a running container (``docker exec``): the forked child's side.

``DockyardRuntime.exec`` opens the container init's namespaces
(``/proc/<init>/ns/*``), enters its PID namespace itself (a PID namespace only
applies to children) and forks; the child, here, joins the container's cgroup,
enters the other namespaces (mount last), and then does what the container's
init does after its own start: terminal or stdio, rlimits, seccomp, capability
bounding set, user, capability sets, cwd, no_new_privileges, execve.

Handshake with the caller (one pipe, close-on-exec):

 =====  =============================  ============================================
 step   child -> caller                meaning
 =====  =============================  ============================================
 1      EOF                            execve succeeded (the pipe closed on exec)
 1'     ``{"type": "error", ...}``      a step or the exec failed; the child exits 1
 =====  =============================  ============================================
"""

from __future__ import annotations

import gc
import os
import socket
from dataclasses import dataclass

from dockyard.oci.runtime_spec import Process
from dockyard.runtime import console, init
from dockyard.runtime import syscalls as sc
from dockyard.runtime.cgroups import Manager


@dataclass
class ExecConfig:
    process: Process
    namespaces: list[tuple[int, int, str]]  # (fd, CLONE_NEW*, description), mount namespace last
    cgroup: Manager
    seccomp_program: bytes | None
    sync_fd: int
    stdio: tuple[int, int, int] | None
    console_socket: socket.socket | None


def _setup(cfg: ExecConfig) -> str:
    process = cfg.process
    init.begin_child(process, cfg.stdio)
    cfg.cgroup.add(0)  # before the cgroup namespace, so its root is our own cgroup
    for fd, nstype, what in cfg.namespaces:
        sc.setns(fd, nstype, what)
        os.close(fd)
    if process.terminal:
        if cfg.console_socket is None:
            raise OSError(0, "process.terminal is set but no console socket was given")
        console.setup(cfg.console_socket, process.console_size)
    return init.limit_process(process, cfg.seccomp_program)


def run(cfg: ExecConfig) -> None:
    """The child's whole life; never returns."""
    gc.disable()  # a collection would copy every page inherited from the shim
    try:
        executable = _setup(cfg)
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        init.exec_process(cfg.process, cfg.seccomp_program, executable)
    except BaseException as err:  # noqa: BLE001 - the child must report, never unwind into the caller
        try:
            init._send(cfg.sync_fd, init.SyncMessage(type="error", message=init._describe(err)))
        finally:
            os._exit(1)
    os._exit(1)
