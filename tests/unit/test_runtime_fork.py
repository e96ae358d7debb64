"""syscalls.fork: fork(2) without CPython's after-fork work, for the zygote's single-threaded
family of processes. The child must still be a working interpreter (signal handlers need the
main thread), and it must write far fewer of the pages it shares with its parent."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

from dockyard.runtime import syscalls as sc


def _child_report(fork) -> tuple[int, str]:
    """(page faults of the child up to its first line, what it found) via a pipe."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        try:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            got = []
            signal.signal(signal.SIGUSR1, lambda *_: got.append("usr1"))  # main thread only
            os.kill(os.getpid(), signal.SIGUSR1)
            os.write(w, f"{faults} {got[0] if got else '-'} {os.getppid()}".encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        faults, what, parent = os.read(r, 100).decode().split()
        assert int(parent) == os.getpid()
        return int(faults), what
    finally:
        os.close(r)


COMPARE = """
import os, sys
sys.path.insert(0, {root!r})
from tests.unit.test_runtime_fork import _child_report
from dockyard.runtime import syscalls as sc
raw, what = _child_report(sc.fork)
full, _ = _child_report(os.fork)
print(raw, full, what)
"""


def test_a_raw_fork_child_is_a_working_interpreter_that_wrote_less() -> None:
    # in an interpreter of its own: this one may have threads of earlier tests alive, and then
    # sc.fork is os.fork
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", COMPARE.format(root=root)], capture_output=True,
                         text=True, check=True).stdout.split()
    raw_faults, python_faults, what = int(out[0]), int(out[1]), out[2]
    assert what == "usr1"
    assert raw_faults < python_faults


def test_with_other_threads_alive_it_is_os_fork() -> None:
    """Forked from a second thread: only CPython's after-fork work makes that thread the child's
    main thread, which signal.signal checks for; a raw fork's child would fail there."""
    found: list[str] = []
    thread = threading.Thread(target=lambda: found.append(_child_report(sc.fork)[1]))
    thread.start()
    thread.join()
    assert found == ["usr1"]
