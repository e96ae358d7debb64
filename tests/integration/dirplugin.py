"""The example volume plugin (examples/volume-plugin/dirplugin.py) as a separate process for
tests, started and stopped by PID; and a private dockyardd that finds it in its --plugin-dir."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import daemon_harness
from tests.integration.tempdirs import temp_dir

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples/volume-plugin/dirplugin.py"


def start_plugin(sock: Path, state: Path) -> subprocess.Popen:
    sock.unlink(missing_ok=True)  # a killed plugin leaves its socket file behind
    proc = subprocess.Popen([sys.executable, "-S", str(PLUGIN), "--socket", str(sock), "--root", str(state)])
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            proc.wait()
            raise RuntimeError("dirplugin did not start")
        time.sleep(0.02)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@contextmanager
def daemon_with_plugin(prefix: str, busybox: bool = False) -> Iterator[tuple[daemon_harness.DaemonHandle, Path]]:
    """(daemon, plugin dir): a dirplugin in a temp dir that is the daemon's --plugin-dir. The
    daemon is destroyed, the plugin stopped and the dir removed afterwards, whatever happened."""
    with temp_dir(prefix) as plugins:
        proc = start_plugin(plugins / "dirplugin.sock", plugins / "state")
        try:
            handle = daemon_harness.new_daemon(["--plugin-dir", str(plugins)])
            try:
                if busybox:
                    daemon_harness.load_busybox(handle)
                yield handle, plugins
            finally:
                daemon_harness.destroy(handle)
        finally:
            stop(proc)
