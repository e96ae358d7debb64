"""Recursive read-only binds through the docker CLI, with our runtime and with runc: a bind
source with a tmpfs submount (mounted and unmounted by the test) and Docker 25's
``bind-recursive`` modes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import daemon_harness


@pytest.fixture(scope="module")
def env():
    src = Path(tempfile.mkdtemp(prefix="dy-rro-src-"))
    (src / "sub").mkdir()
    (src / "top").write_text("top\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dy-rro", str(src / "sub")], check=True)
    handle = None
    try:
        (src / "sub" / "inner").write_text("inner\n")
        handle = daemon_harness.new_daemon()
        daemon_harness.load_busybox(handle)
        yield handle, src
    finally:
        if handle is not None:
            daemon_harness.destroy(handle)
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)
        shutil.rmtree(src, ignore_errors=True)


def _writes(handle, runtime: str, mount: str) -> tuple[str, str]:
    """(top, sub): "ok" or "ro" for a write at the top of the bind and in its submount."""
    script = ("for d in /m /m/sub; do if touch $d/w-$$ 2>/dev/null; then rm $d/w-$$; echo ok; "
              "else echo ro; fi; done")
    r = handle.docker("run", "--rm", "--network", "none", "--runtime", runtime, "--mount", mount,
                      "busybox", "sh", "-c", script)
    assert r.returncode == 0, (mount, r.stderr.decode(), handle.log()[-2000:])
    top, sub = r.stdout.decode().split()
    return top, sub


@pytest.mark.parametrize("runtime", ["dockyard", "runc"])
def test_bind_recursive_modes(env, runtime):
    handle, src = env
    base = f"type=bind,src={src},dst=/m"
    assert _writes(handle, runtime, f"{base},readonly,bind-propagation=rprivate,bind-recursive=readonly") == ("ro", "ro")
    assert _writes(handle, runtime, f"{base},readonly") == ("ro", "ro")  # Docker 25+: recursive where possible
    assert _writes(handle, runtime, f"{base},readonly,bind-recursive=writable") == ("ro", "ok")
    assert _writes(handle, runtime, f"{base},readonly,bind-recursive=enabled") == ("ro", "ro")
    assert _writes(handle, runtime, base) == ("ok", "ok")
    # a non-recursive bind does not bring the submount: the empty directory under it is read-only
    assert _writes(handle, runtime, f"{base},readonly,bind-recursive=disabled") == ("ro", "ro")
    r = handle.docker("run", "--rm", "--network", "none", "--runtime", runtime, "-v", f"{src}:/m:ro",
                      "busybox", "sh", "-c", "cat /m/sub/inner; touch /m/sub/x")
    assert r.returncode != 0 and r.stdout.decode() == "inner\n" and "Read-only file system" in r.stderr.decode()
    assert not (src / "sub" / "x").exists() and (src / "sub" / "inner").read_text() == "inner\n"
