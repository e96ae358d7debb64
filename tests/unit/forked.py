"""Run a test's body in a forked child: for what must not touch the test process (a seccomp
filter installed, pages copied or learned)."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_child(body: Callable[[], int]) -> int:
    """``body()`` in a forked child (its pages start shared with ours); its int result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.write(write_fd, str(body()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        result = f.read()
    os.waitpid(pid, 0)
    return int(result)
