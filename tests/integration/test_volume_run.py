"""Containers with volumes through the real docker CLI (and ours) against a private dockyardd:
named and anonymous volumes, copy-up, rm -v / --rm, --volumes-from, binds, tmpfs, --mount
(subpath, nocopy, readonly), a plugin volume, bad input, mount events, a daemon restart."""

from __future__ import annotations

import json
import time

import pytest

from tests import daemon_harness
from dockyard.volume.plugin import PluginClient
from tests.integration.dirplugin import daemon_with_plugin


@pytest.fixture(scope="module")
def env():
    with daemon_with_plugin("dy-vol-run-", busybox=True) as started:
        yield started


def ok(handle, *args: str) -> str:
    r = handle.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode(), handle.log()[-3000:])
    return r.stdout.decode()


def fails(handle, *args: str) -> tuple[int, str]:
    r = handle.docker(*args)
    assert r.returncode != 0, (args, r.stdout.decode())
    return r.returncode, r.stderr.decode().strip()


def volume_names(handle) -> set[str]:
    return set(ok(handle, "volume", "ls", "-q").split())


def test_named_volume_data_outlives_containers(env):
    handle, _ = env
    ok(handle, "run", "--rm", "--network", "none", "-v", "keep:/data", "busybox", "sh", "-c", "echo hi > /data/f")
    assert ok(handle, "run", "--rm", "--network", "none", "-v", "keep:/data:ro", "busybox", "cat", "/data/f") == "hi\n"
    code, err = fails(handle, "run", "--rm", "--network", "none", "-v", "keep:/data:ro", "busybox", "touch", "/data/g")
    assert "Read-only file system" in err
    cid = ok(handle, "create", "--network", "none", "-v", "keep:/data", "busybox", "true").strip()
    mounts = json.loads(ok(handle, "inspect", "-f", "{{json .Mounts}}", cid))
    assert mounts == [{"Type": "volume", "Name": "keep", "Source": str(handle.data_root / "volumes/keep/_data"),
                       "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    code, err = fails(handle, "volume", "rm", "keep")
    assert err == f"Error response from daemon: remove keep: volume is in use - [{cid}]"
    assert ok(handle, "ps", "-aq", "--filter", "volume=keep").split() == [cid[:12]]
    df = {v["Name"]: v for v in json.loads(ok(handle, "system", "df", "-v", "--format", "{{json .Volumes}}"))}
    assert df["keep"]["Links"] == "1" and df["keep"]["Size"] == "3B"
    ok(handle, "rm", cid)
    ok(handle, "volume", "rm", "keep")


def test_copy_up_and_nocopy(env):
    handle, _ = env
    out = ok(handle, "run", "--rm", "--network", "none", "-v", "etcfill:/etc", "busybox", "cat", "/etc/passwd")
    assert out.startswith("root:")
    assert (handle.data_root / "volumes/etcfill/_data/group").is_file()
    out = ok(handle, "run", "--rm", "--network", "none", "--mount", "type=volume,src=emptyvar,dst=/var,volume-nocopy",
             "busybox", "ls", "-A", "/var")
    assert out == ""
    ok(handle, "volume", "rm", "etcfill", "emptyvar")


def test_anonymous_volumes_rm_v_rm_and_volumes_from(env):
    handle, _ = env
    before = volume_names(handle)
    ok(handle, "run", "--network", "none", "-v", "/anon", "--name", "datasrc", "busybox",
       "sh", "-c", "echo shared > /anon/f")
    anon = (volume_names(handle) - before).pop()
    assert len(anon) == 64
    assert ok(handle, "run", "--rm", "--network", "none", "--volumes-from", "datasrc", "busybox", "cat", "/anon/f") == "shared\n"
    code, err = fails(handle, "run", "--rm", "--network", "none", "--volumes-from", "datasrc:ro", "busybox",
                      "touch", "/anon/x")
    assert "Read-only file system" in err
    ok(handle, "rm", "-v", "datasrc")
    assert anon not in volume_names(handle)
    ok(handle, "run", "--rm", "--network", "none", "-v", "/tmp/auto", "busybox", "true")
    assert volume_names(handle) == before  # --rm took its anonymous volume too


def test_binds_and_tmpfs(env):
    handle, _ = env
    host = handle.root / "bind-made-by-v"
    ok(handle, "run", "--rm", "--network", "none", "-v", f"{host}:/h:rw,z", "busybox", "sh", "-c", "echo b > /h/f")
    assert (host / "f").read_text() == "b\n"
    ok(handle, "run", "--rm", "--network", "none", "--mount", f"type=bind,src={host},dst=/m,readonly,bind-propagation=rslave",
       "busybox", "cat", "/m/f")
    code, err = fails(handle, "run", "--rm", "--network", "none", "--mount",
                      f"type=bind,src={handle.root}/absent,dst=/m", "busybox", "true")
    assert code == 125 and f"bind source path does not exist: {handle.root}/absent" in err
    out = ok(handle, "run", "--rm", "--network", "none", "--tmpfs", "/t1:size=1m,mode=1770",
             "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m,tmpfs-mode=0700", "busybox", "grep", "/t", "/proc/mounts")
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert "size=1024k" in lines["/t1"] and "mode=1770" in lines["/t1"]
    assert "size=2048k" in lines["/t2"] and "mode=700" in lines["/t2"]


def test_subpath_and_plugin_volume(env):
    handle, plugins = env
    ok(handle, "run", "--rm", "--network", "none", "-v", "withsub:/v", "busybox", "sh", "-c",
       "mkdir -p /v/a/b && echo deep > /v/a/b/f")
    out = ok(handle, "run", "--rm", "--network", "none", "--mount",
             "type=volume,src=withsub,dst=/s,volume-subpath=a/b,readonly", "busybox", "cat", "/s/f")
    assert out == "deep\n"
    # docker cp of a stopped container sees the subpath mount (its host path from the volume service)
    cid = ok(handle, "create", "--network", "none", "--mount",
             "type=volume,src=withsub,dst=/s,volume-subpath=a", "busybox", "true").strip()
    out = handle.root / "cp-out"
    ok(handle, "cp", f"{cid}:/s/b/f", str(out))
    assert out.read_text() == "deep\n"
    ok(handle, "rm", cid)
    ok(handle, "volume", "rm", "withsub")
    ok(handle, "run", "--rm", "--network", "none", "--mount",
       "type=volume,src=pvol,dst=/p,volume-driver=dirplugin,volume-opt=mode=0750", "busybox",
       "sh", "-c", "echo via-plugin > /p/f")
    assert (plugins / "state/volumes/pvol/f").read_text() == "via-plugin\n"
    info = json.loads(ok(handle, "volume", "inspect", "pvol"))[0]
    assert info["Driver"] == "dirplugin" and info["Status"]["mounts"] == 0
    ok(handle, "volume", "rm", "pvol")


def test_plugin_volume_made_outside_the_daemon(env):
    """docker volume ls/inspect/run/rm see a volume only the plugin knows (its List and Get)."""
    handle, plugins = env
    client = PluginClient("dirplugin", f"unix://{plugins / 'dirplugin.sock'}", timeout=5)
    assert client.call("VolumeDriver.Create", {"Name": "madeoutside", "Opts": {}}) == {"Err": ""}
    rows = ok(handle, "volume", "ls", "--format", "{{.Driver}} {{.Name}}").splitlines()
    assert "dirplugin madeoutside" in rows
    info = json.loads(ok(handle, "volume", "inspect", "madeoutside"))[0]
    assert info["Driver"] == "dirplugin" and info["Mountpoint"] == str(plugins / "state/volumes/madeoutside")
    ok(handle, "run", "--rm", "--network", "none", "-v", "madeoutside:/o", "busybox", "sh", "-c", "echo o > /o/f")
    assert (plugins / "state/volumes/madeoutside/f").read_text() == "o\n"
    ok(handle, "volume", "rm", "madeoutside")
    assert not (plugins / "state/volumes/madeoutside").exists()


def test_bad_input_creates_nothing(env):
    handle, _ = env
    before_volumes, before_containers = volume_names(handle), ok(handle, "ps", "-aq")
    for args, message in [
        (["-v", "a/b:/x"], "includes invalid characters for a local volume name"),
        (["-v", "good:rel"], "mount path must be absolute"),
        (["-v", "/tmp:/proc/x"], 'located inside "/proc"'),
        (["--mount", "type=volume,src=v1,dst=/x,volume-driver=nope"], 'plugin "nope" not found'),
        (["-v", "ok1:/x", "-v", "ok2:/x"], "Duplicate mount point: /x"),
        (["--volumes-from", "ghost"], "No such container: ghost"),
    ]:
        # --pull never: a 404 (unknown plugin or container, as Docker answers) must not start a pull
        code, err = fails(handle, "create", "--pull", "never", "--network", "none", *args, "busybox", "true")
        assert message in err, (args, err)
    assert volume_names(handle) == before_volumes and ok(handle, "ps", "-aq") == before_containers


def test_mount_events_and_restart(env):
    handle, plugins = env
    since = str(int(time.time()) - 1)
    cid = ok(handle, "run", "-d", "--network", "none", "-v", "evvol:/e", "busybox", "sleep", "60").strip()
    ok(handle, "stop", "-t", "0", cid)
    until = str(int(time.time()) + 1)
    out = ok(handle, "events", "--since", since, "--until", until, "--filter", "volume=evvol",
             "--format", "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"container\"}}")
    assert out.splitlines() == ["create evvol ", f"mount evvol {cid}", f"unmount evvol {cid}"]
    daemon_harness.stop(handle)
    daemon_harness.start(handle, ["--plugin-dir", str(plugins)])
    code, err = fails(handle, "volume", "rm", "evvol")
    assert "volume is in use" in err  # the stopped container still holds it after a restart
    ok(handle, "start", cid)
    ok(handle, "rm", "-f", cid)
    ok(handle, "volume", "rm", "evvol")


def test_our_cli_run_flags(env):
    handle, plugins = env

    def dy(*args: str) -> str:
        r = handle.dockyard(*args)
        assert r.returncode == 0, (args, r.stderr.decode(), handle.log()[-2000:])
        return r.stdout.decode()

    dy("run", "--rm", "--network", "none", "-v", "ourvol:/v", "busybox", "sh", "-c", "mkdir -p /v/s && echo o > /v/s/f")
    assert dy("run", "--rm", "--network", "none", "--mount",
              'type=volume,"src=ourvol",dst=/m,volume-subpath=s,readonly', "busybox", "cat", "/m/f") == "o\n"
    dy("run", "--name", "ourdata", "--network", "none", "-v", "/anon", "busybox", "touch", "/anon/x")
    assert dy("run", "--rm", "--network", "none", "--volumes-from", "ourdata:ro", "--tmpfs", "/t:size=1m",
              "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m", "busybox", "sh", "-c",
              "ls /anon; grep -c ' /t' /proc/mounts") == "x\n2\n"
    dy("run", "--rm", "--network", "none", "--mount", "type=volume,src=ourp,dst=/p,volume-driver=dirplugin",
       "busybox", "touch", "/p/from-our-cli")
    assert (plugins / "state/volumes/ourp/from-our-cli").exists()
    r = handle.dockyard("run", "--rm", "--mount", "type=bind,src=/tmp", "busybox", "true")
    assert r.returncode == 125 and b'for "--mount" flag: target is required' in r.stderr
    dy("rm", "-v", "ourdata")
    dy("volume", "rm", "ourvol", "ourp")
