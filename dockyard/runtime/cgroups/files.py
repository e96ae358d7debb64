"""Reading and writing cgroup control files, with errors that name the file."""

from __future__ import annotations

import functools
import os
import time


def write(directory: str, name: str, value: str) -> None:
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, f"open {path}: {err.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as err:
        raise OSError(err.errno, f"write {value!r} to {path}: {err.strerror}") from None
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def read_int(directory: str, name: str, default: int = 0) -> int:
    try:
        value = read(directory, name)
    except OSError:
        return default
    return default if value == "max" else int(value)


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """Files of "key value" lines (memory.stat, cpu.stat, memory.oom_control)."""
    out: dict[str, int] = {}
    try:
        text = read(directory, name)
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def procs(directory: str) -> list[int]:
    try:
        return [int(line) for line in read(directory, "cgroup.procs").split()]
    except FileNotFoundError:
        return []


def remove(directory: str, timeout: float) -> None:
    """rmdir, retrying while the kernel still counts exiting tasks (EBUSY)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != 16 or time.monotonic() > deadline:
                raise OSError(err.errno, f"remove cgroup {directory}: {err.strerror}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@functools.cache
def own_cgroups() -> dict[str, str]:
    """This process's cgroup per hierarchy: {"memory": "/a/b", ..., "": "/x" (v2)}.

    Cached per process: only relative cgroup paths use it, resolved when the shim starts."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                out[controller] = path
    return out
