"""The container's terminal: a pty made inside its devpts, master sent out (runc protocol).

The init opens /dev/ptmx in the container (so the pty belongs to the
container's devpts instance), makes the slave its controlling terminal and
stdio, and sends the master fd over the console socket with SCM_RIGHTS. As
runc does, the message's data is the pty's path; the receiver keeps the fd.
"""

from __future__ import annotations

import os
import socket

from dockyard.oci.runtime_spec import ConsoleSize
from dockyard.runtime import syscalls as sc


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"connect to console socket {path}: {err.strerror}") from None
    return sock


def setup(console_socket: socket.socket, size: ConsoleSize | None) -> None:
    """In the init, after pivot_root and setsid: pty, controlling tty, stdio, send master."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        sc.ioctl_int(master, sc.TIOCSPTLCK, 0)  # unlockpt
        name = f"/dev/pts/{sc.ioctl_get_int(master, sc.TIOCGPTN)}"
        if size is not None:
            sc.set_winsize(master, size.height, size.width)
        slave = os.open(name, os.O_RDWR | os.O_NOCTTY)
        socket.send_fds(console_socket, [name.encode()], [master])
    finally:
        os.close(master)
    console_socket.close()
    sc.set_controlling_tty(slave)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
