"""Loopback ports for the servers tests start: a free one picked by the kernel (never a fixed
number), and a wait, with a deadline, until a started process listens on it."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float) -> bool:
    """True once 127.0.0.1:``port`` takes a connection; False if ``proc`` exits first or
    ``timeout`` seconds pass (the caller stops it and says why, with its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False
