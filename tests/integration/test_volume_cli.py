"""docker volume create/ls/inspect/rm/prune and system df -v through the real docker CLI against a
private dockyardd, with the example dirplugin found in the daemon's --plugin-dir."""

from __future__ import annotations

import json
import time

import pytest

from tests import daemon_harness
from tests.integration.dirplugin import daemon_with_plugin


@pytest.fixture(scope="module")
def env():
    with daemon_with_plugin("dy-vol-cli-") as started:
        yield started


def ok(handle, *args: str) -> str:
    r = handle.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode(), handle.log()[-2000:])
    return r.stdout.decode()


def fails(handle, *args: str) -> str:
    r = handle.docker(*args)
    assert r.returncode != 0, args
    return r.stderr.decode().strip()


def test_create_ls_inspect_rm(env):
    handle, _ = env
    assert ok(handle, "volume", "create", "--label", "tier=db", "dbdata").strip() == "dbdata"
    info = json.loads(ok(handle, "volume", "inspect", "dbdata"))[0]
    assert info["Mountpoint"] == str(handle.data_root / "volumes/dbdata/_data")
    assert info["Labels"] == {"tier": "db"} and info["Driver"] == "local" and info["Scope"] == "local"
    anon = ok(handle, "volume", "create").strip()
    assert len(anon) == 64
    assert "dbdata" in ok(handle, "volume", "ls", "-q").split()
    assert ok(handle, "volume", "ls", "-q", "--filter", "label=tier=db").split() == ["dbdata"]
    assert ok(handle, "volume", "ls", "--format", "{{.Name}} {{.Driver}}", "--filter", "name=dbdat").split() == [
        "dbdata", "local"]
    assert ok(handle, "volume", "prune", "-f").count(anon) == 1  # anonymous only by default
    assert "dbdata" in ok(handle, "volume", "ls", "-q").split()
    ok(handle, "volume", "rm", "dbdata")
    assert "no such volume" in fails(handle, "volume", "inspect", "dbdata")


def test_bad_input(env):
    handle, _ = env
    assert "includes invalid characters for a local volume name" in fails(handle, "volume", "create", "a..b/c")
    assert 'plugin "nope" not found' in fails(handle, "volume", "create", "-d", "nope", "xyz")
    assert 'invalid option: "bogus"' in fails(handle, "volume", "create", "-o", "bogus=1", "xyz")
    assert "Error response from daemon: get ghost: no such volume" in fails(handle, "volume", "rm", "ghost")
    assert "xyz" not in ok(handle, "volume", "ls", "-q").split()


def test_tmpfs_volume_and_df(env):
    handle, _ = env
    ok(handle, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "scratch")
    info = json.loads(ok(handle, "volume", "inspect", "scratch"))[0]
    assert info["Options"] == {"device": "tmpfs", "o": "size=2m", "type": "tmpfs"}
    ok(handle, "volume", "create", "plain")
    (handle.data_root / "volumes/plain/_data/f").write_bytes(b"x" * 5000)
    ok(handle, "volume", "create", "-d", "dirplugin", "pluggy")
    df = ok(handle, "system", "df", "-v", "--format", "{{json .Volumes}}")
    volumes = {v["Name"]: v for v in json.loads(df)}
    assert volumes["plain"]["Size"] == "5kB" and volumes["plain"]["Links"] == "0"
    # as moby: df and prune take the local driver's volumes without mount options only
    assert "scratch" not in volumes and "pluggy" not in volumes
    pruned = ok(handle, "volume", "prune", "-f", "-a")
    assert "plain" in pruned and "scratch" not in pruned and "pluggy" not in pruned
    ok(handle, "volume", "rm", "scratch", "pluggy")


def test_plugin_volume(env):
    handle, plugins = env
    ok(handle, "volume", "create", "-d", "dirplugin", "-o", "mode=0700", "pv")
    info = json.loads(ok(handle, "volume", "inspect", "pv"))[0]
    assert info["Driver"] == "dirplugin" and info["Mountpoint"] == str(plugins / "state/volumes/pv")
    assert info["Status"] == {"backend": "directory", "mounts": 0}
    assert ok(handle, "volume", "ls", "-q", "--filter", "driver=dirplugin").split() == ["pv"]
    ok(handle, "volume", "rm", "pv")
    assert not (plugins / "state/volumes/pv").exists()


def test_persistence_across_restart(env):
    handle, _ = env
    ok(handle, "volume", "create", "--label", "keep=1", "-o", "type=tmpfs", "-o", "device=tmpfs", "kept")
    daemon_harness.stop(handle)
    daemon_harness.start(handle, ["--plugin-dir", str(env[1])])
    info = json.loads(ok(handle, "volume", "inspect", "kept"))[0]
    assert info["Labels"] == {"keep": "1"} and info["Options"]["type"] == "tmpfs"
    ok(handle, "volume", "rm", "kept")


def test_prune_all_and_events(env):
    handle, _ = env
    ok(handle, "volume", "create", "unused-named")
    assert "unused-named" not in ok(handle, "volume", "prune", "-f")
    assert "unused-named" in ok(handle, "volume", "prune", "-f", "-a")
    until = str(int(time.time()) + 1)
    out = ok(handle, "events", "--since", "0", "--until", until, "--filter", "type=volume",
             "--filter", "volume=unused-named", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")
    assert out.splitlines() == ["create unused-named local", "destroy unused-named local"]


def test_our_cli_matches_docker(env):
    handle, _ = env
    r = handle.dockyard("volume", "create", "--label", "x=1", "ours")
    assert r.returncode == 0 and r.stdout == b"ours\n", r.stderr
    ok(handle, "volume", "create", "theirs")
    for args in (["volume", "ls"], ["volume", "ls", "-q", "--filter", "label=x"],
                 ["volume", "ls", "--format", "{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Labels}}"],
                 ["volume", "inspect", "ours", "theirs"], ["volume", "inspect", "-f", "{{.Mountpoint}}", "ours"],
                 ["volume", "inspect", "ours", "ghost"], ["volume", "rm", "ghost"],
                 ["volume", "create", "bad/name"], ["volume", "create", "-d", "nope", "x1"]):
        ours, theirs = handle.dockyard(*args), handle.docker(*args)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    ok(handle, "volume", "create")  # anonymous: pruned by default
    ours = handle.dockyard("volume", "prune", "-f", "-a", "--filter", "label=x")
    assert ours.returncode == 0 and ours.stdout == b"Deleted Volumes:\nours\n\nTotal reclaimed space: 0B\n"
    ours = handle.dockyard("volume", "prune", "-f")
    assert ours.stdout.startswith(b"Deleted Volumes:\n") and b"theirs" not in ours.stdout
    ours = handle.dockyard("volume", "rm", "theirs")
    assert (ours.returncode, ours.stdout) == (0, b"theirs\n")


def test_docker_py(env):
    import docker

    handle, _ = env
    client = docker.DockerClient(base_url=handle.host, version="auto", timeout=30)
    try:
        vol = client.volumes.create(name="pyvol", driver="local", labels={"k": "v"},
                                    driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
        assert vol.name == "pyvol" and vol.attrs["Options"]["type"] == "tmpfs"
        assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
        assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nope")
        with pytest.raises(docker.errors.APIError) as e:
            client.volumes.create(name="bad/name")
        assert e.value.status_code == 400
        vol.remove()
        anon = client.volumes.create()
        assert anon.name in (client.volumes.prune().get("VolumesDeleted") or [])
    finally:
        client.close()
