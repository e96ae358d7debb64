"""Recursive read-only binds through the docker CLI, with our runtime and with runc: a bind
source with a tmpfs submount (mounted and unmounted by the test) and Docker 25's
``bind-recursive`` modes; docker-py at API 1.43 (non-recursive read-only binds, as before
Docker 25) and a runc whose ``features`` has no "rro" (the quiet fallback to "ro")."""

from __future__ import annotations

import json
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
        # "norro": the system's runc, but its features list no "rro" (as runc before 1.1, or runsc)
        (src.parent / f"{src.name}-bin").mkdir()
        norro = src.parent / f"{src.name}-bin" / "norro"
        norro.write_text('#!/bin/sh\nfor a in "$@"; do if [ "$a" = features ]; then '
                         'echo \'{"mountOptions": ["bind", "rbind", "ro", "rw"]}\'; exit 0; fi; done\n'
                         f'exec {shutil.which("runc")} "$@"\n')
        norro.chmod(0o755)
        config = src.parent / f"{src.name}-daemon.json"
        config.write_text(json.dumps({"runtimes": {"norro": {"path": str(norro)}}}))
        handle = daemon_harness.new_daemon(["--config-file", str(config)])
        daemon_harness.load_busybox(handle)
        yield handle, src
    finally:
        if handle is not None:
            daemon_harness.destroy(handle)
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(src.parent / f"{src.name}-bin", ignore_errors=True)
        (src.parent / f"{src.name}-daemon.json").unlink(missing_ok=True)


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


def test_runtime_without_rro_falls_back_to_ro(env):
    """Docker's per-runtime rule: a plain read-only bind quietly becomes "ro" (submounts stay
    writable) on a runtime whose features lack "rro"; bind-recursive=readonly is refused."""
    handle, src = env
    base = f"type=bind,src={src},dst=/m"
    assert _writes(handle, "norro", f"{base},readonly") == ("ro", "ok")
    r = handle.docker("run", "--rm", "--network", "none", "--runtime", "norro", "-v", f"{src}:/m:ro",
                      "busybox", "sh", "-c", "touch /m/sub/w && rm /m/sub/w && ! touch /m/w")
    assert r.returncode == 0, r.stderr.decode()
    r = handle.docker("run", "--rm", "--network", "none", "--runtime", "norro", "--mount",
                      f"{base},readonly,bind-propagation=rprivate,bind-recursive=readonly", "busybox", "true")
    assert r.returncode != 0 and 'rro is not supported by runtime "norro"' in r.stderr.decode(), r.stderr.decode()


def test_docker_py_api_1_43_binds_are_not_recursive(env):
    """moby's DefaultReadOnlyNonRecursive: before API 1.44 a read-only bind (-v :ro or a Mount)
    leaves its submounts writable, and ReadOnlyForceRecursive is refused; at the default
    version the same calls give recursive read-only binds."""
    import docker

    handle, src = env
    script = ("for d in /m /m/sub; do if touch $d/w-$$ 2>/dev/null; then rm $d/w-$$; echo ok; "
              "else echo ro; fi; done")
    forced = {"Type": "bind", "Source": str(src), "Target": "/m", "ReadOnly": True,
              "BindOptions": {"Propagation": "rprivate", "ReadOnlyForceRecursive": True}}
    old = docker.DockerClient(base_url=handle.host, version="1.43", timeout=60)
    new = docker.DockerClient(base_url=handle.host, timeout=60)
    try:
        def writes(client, **kwargs) -> list[str]:
            out = client.containers.run("busybox", ["sh", "-c", script], remove=True, network_mode="none", **kwargs)
            return out.decode().split()

        bind = {"volumes": {str(src): {"bind": "/m", "mode": "ro"}}}
        mount = {"mounts": [docker.types.Mount("/m", str(src), type="bind", read_only=True)]}
        assert writes(old, **bind) == ["ro", "ok"] and writes(old, **mount) == ["ro", "ok"]
        assert writes(new, **bind) == ["ro", "ro"] and writes(new, **mount) == ["ro", "ro"]
        assert writes(new, mounts=[forced]) == ["ro", "ro"]
        with pytest.raises(docker.errors.APIError) as e:
            old.api.create_container("busybox", "true", host_config=old.api.create_host_config(mounts=[forced]))
        assert e.value.status_code == 400
        assert "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer" in str(e.value)
    finally:
        old.close()
        new.close()
