"""ContainerService against fakes of images, networks, shims and events."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import msgspec
import pytest

from dockyard import errdefs
from dockyard.apitypes.container import CreateRequest, HostConfig
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers.service import ContainerService
from dockyard.daemon.containers.signals import parse_signal
from dockyard.storage.metadata import Database
from tests.unit.containers_fakes import IMAGE_ID, FakeEvents, FakeImages, FakeNetworks, FakeShims, FakeVolumes


@pytest.fixture
def env():
    root = Path(tempfile.mkdtemp(prefix="dy-ctr-"))
    config = DaemonConfig(data_root=root / "data", exec_root=root / "exec")
    db = Database(config.db_path)
    parts = dict(images=FakeImages(root / "img"), networks=FakeNetworks(), shims=FakeShims(),
                 events=FakeEvents(), volumes=FakeVolumes())
    try:
        yield config, db, parts
    finally:
        db.close()
        shutil.rmtree(root, ignore_errors=True)


def service(env) -> ContainerService:
    config, db, parts = env
    return ContainerService(config, db, **parts)


def body(**kw) -> CreateRequest:
    hc = kw.pop("host_config", None)
    return CreateRequest(image=kw.pop("image", "busybox"), host_config=hc, **kw)


def run(coro):
    return asyncio.run(coro)


def test_create_merges_image_and_inspect_shape(env):
    svc = service(env)
    resp = svc.create(body(env=["A=1"], labels={"l": "v"}), name="web")
    info = svc.inspect("web")
    assert info.id == resp.id and info.name == "/web"
    assert info.path == "sh" and info.args == []
    assert info.config.env == ["A=1", "PATH=/bin"]
    assert info.config.hostname == resp.id[:12]
    assert info.host_config.network_mode == "bridge"
    assert info.host_config.log_config.type == "json-file"
    assert info.state.status == "created"
    assert info.image == IMAGE_ID
    doc = msgspec.json.decode(msgspec.json.encode(info))
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath",
                "HostsPath", "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel",
                "ProcessLabel", "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts",
                "Config", "NetworkSettings"):
        assert key in doc
    assert doc["State"]["OOMKilled"] is False
    assert env[2]["events"].actions() == ["create"]


def test_create_errors_leave_nothing(env):
    svc = service(env)
    with pytest.raises(errdefs.NotFound, match=r"No such image: nope:latest"):
        svc.create(body(image="nope"))
    with pytest.raises(errdefs.InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        svc.create(body(host_config=HostConfig(memory=1024)))
    with pytest.raises(errdefs.InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        svc.create(body(host_config=HostConfig(memory=-1)))
    with pytest.raises(errdefs.InvalidParameter, match=r"Range of CPUs is from 0.01 to \d+.00, as there are only"):
        svc.create(body(host_config=HostConfig(nano_cpus=100 * 10**9)))
    with pytest.raises(errdefs.InvalidParameter, match='invalid CapAdd: unknown capability: "CAP_FOO"'):
        svc.create(body(host_config=HostConfig(cap_add=["foo"])))
    with pytest.raises(errdefs.InvalidParameter, match="invalid restart policy: unknown policy 'sometimes'"):
        svc.create(body(host_config=msgspec.convert({"RestartPolicy": {"Name": "sometimes"}}, HostConfig)))
    with pytest.raises(errdefs.InvalidParameter, match=r"Invalid container name \(-x\)"):
        svc.create(body(), name="-x")
    with pytest.raises(errdefs.InvalidParameter, match="unknown or invalid runtime name: nope"):
        svc.create(body(host_config=HostConfig(runtime="nope")))
    assert svc.list(all=True) == []
    assert env[2]["images"].rootfs == set()


def test_name_conflict(env):
    svc = service(env)
    first = svc.create(body(), name="xy")
    with pytest.raises(errdefs.Conflict) as err:
        svc.create(body(), name="/xy")
    assert str(err.value) == (
        f'Conflict. The container name "/xy" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def test_lookup_by_prefix_and_name(env):
    svc = service(env)
    cid = svc.create(body(), name="alpha").id
    assert svc.inspect(cid[:5]).id == cid
    assert svc.inspect("/alpha").id == cid
    with pytest.raises(errdefs.NotFound, match="No such container: zzz"):
        svc.inspect("zzz")


def test_run_flow_attach_before_start(env):
    svc = service(env)

    async def flow():
        cid = svc.create(body(attach_stdout=True, attach_stderr=True), name="rr").id
        session = await svc.attach(cid, stdin=False, stdout=True, stderr=True)
        waiter = svc.wait(cid, "next-exit")
        await svc.start(cid)
        out = [item async for item in session.output()]
        result = await waiter
        await svc.detach(session)
        return cid, out, result

    cid, out, result = run(flow())
    assert out == [(1, b"hello\n"), (2, b"oops\n")]
    assert result.status_code == 0
    info = svc.inspect(cid)
    assert info.state.status == "exited" and info.state.exit_code == 0
    assert info.state.finished_at.startswith("2026-11-29T01:00:00")
    actions = env[2]["events"].actions()
    assert actions[:3] == ["create", "attach", "start"] and "die" in actions
    assert env[2]["shims"].handles[cid].shut_down
    assert cid not in env[2]["networks"].sandboxes
    spec = json.loads((env[0].container_exec_dir(cid) / "config.json").read_bytes())
    assert spec["ociVersion"] and spec["process"]["args"] == ["sh"]
    assert spec["linux"]["cgroupsPath"] == f"/dockyard/{cid}"
    assert "HOSTNAME=" + cid[:12] in spec["process"]["env"]
    ns = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert ns["network"] == f"/run/fake/netns/{cid}"
    assert {"destination": "/etc/hosts", "type": "bind",
            "source": str(env[0].container_data_dir(cid) / "hosts"),
            "options": ["rbind", "rprivate", "rw"]} in spec["mounts"]


def test_stdin_once_half_close(env):
    env[2]["shims"].echo = True
    env[2]["shims"].output = []
    env[2]["shims"].exit_code = None
    svc = service(env)

    async def flow():
        cid = svc.create(body(open_stdin=True, stdin_once=True, attach_stdin=True)).id
        session = await svc.attach(cid, stdin=True, stdout=True, stderr=True)
        await svc.start(cid)
        await session.write_stdin(b"hi\n")
        await session.stdin_closed()
        out = [item async for item in session.output()]
        code = await svc.wait(cid, "not-running")
        return out, code

    out, code = run(flow())
    assert out == [(1, b"hi\n")]
    assert code.status_code == 0


def test_start_failure_records_error_and_undoes(env):
    env[2]["shims"].fail = 'runc create failed: exec: "nope": executable file not found in $PATH'
    svc = service(env)
    cid = svc.create(body(cmd=["nope"])).id
    with pytest.raises(errdefs.InvalidParameter, match=r'^failed to create task for container: .*exec: "nope"'):
        run(svc.start(cid))
    info = svc.inspect(cid)
    assert info.state.status == "created"
    assert info.state.exit_code == 127 and "executable file not found" in info.state.error
    assert cid not in env[2]["networks"].sandboxes


def test_stop_kill_pause_and_remove(env):
    env[2]["shims"].exit_code = None
    svc = service(env)

    async def flow():
        cid = svc.create(body(), name="ss").id
        await svc.start(cid)
        with pytest.raises(errdefs.NotModified):
            await svc.start(cid)
        with pytest.raises(errdefs.Conflict, match="container is running: stop the container before removing"):
            await svc.remove(cid)
        await svc.pause(cid)
        with pytest.raises(errdefs.Conflict, match="is already paused"):
            await svc.pause(cid)
        with pytest.raises(errdefs.Conflict, match="cannot start a paused container"):
            await svc.start(cid)
        assert svc.list()[0].status.endswith("(Paused)")
        await svc.unpause(cid)
        await svc.stop(cid, timeout=1)
        with pytest.raises(errdefs.NotModified):
            await svc.stop(cid)
        with pytest.raises(errdefs.Conflict, match=f"Container {cid} is not running"):
            await svc.kill(cid)
        assert svc.inspect(cid).state.exit_code == 143
        assert svc.list() == [] and svc.list(all=True)[0].status.startswith("Exited (143)")
        removed = svc.wait(cid, "removed")
        await svc.remove(cid)
        await removed
        return cid

    cid = run(flow())
    assert env[2]["events"].actions()[-4:] == ["kill", "die", "stop", "destroy"]
    with pytest.raises(errdefs.NotFound):
        svc.inspect(cid)
    assert env[2]["images"].rootfs == set()


def test_force_remove_and_autoremove(env):
    env[2]["shims"].exit_code = None
    svc = service(env)

    async def flow():
        cid = svc.create(body()).id
        await svc.start(cid)
        await svc.remove(cid, force=True)
        auto = svc.create(body(host_config=HostConfig(auto_remove=True))).id
        removed = svc.wait(auto, "removed")
        await svc.start(auto)
        await svc.kill(auto, "SIGKILL")
        await asyncio.wait_for(removed, 2)
        return cid, auto

    cid, auto = run(flow())
    assert svc.list(all=True) == []


def test_rename_and_filters(env):
    svc = service(env)
    a = svc.create(body(labels={"app": "x"}), name="aa").id
    b = svc.create(body(), name="bb").id
    svc.rename("aa", "cc")
    assert svc.inspect(a).name == "/cc"
    assert ("rename", a, {"app": "x", "image": "busybox", "name": "cc", "oldName": "/aa"}) in env[2]["events"].events
    with pytest.raises(errdefs.Conflict):
        svc.rename("cc", "bb")
    assert [s.id for s in svc.list(all=True, filters={"label": ["app=x"]})] == [a]
    assert [s.id for s in svc.list(all=True, filters={"name": ["bb"]})] == [b]
    assert [s.id for s in svc.list(filters={"status": ["created"]})] == [b, a]
    assert [s.id for s in svc.list(all=True, filters={"ancestor": ["busybox"]})] == [b, a]
    assert [s.id for s in svc.list(all=True, filters={"before": ["bb"]})] == [a]
    summary = msgspec.json.decode(msgspec.json.encode(svc.list(all=True)[0]))
    assert summary["Names"] == ["/bb"] and summary["Status"] == "Created" and summary["Command"] == "sh"
    assert summary["HostConfig"] == {"NetworkMode": "bridge", "Annotations": None}
    with pytest.raises(errdefs.InvalidParameter):
        svc.list(filters={"bogus": ["1"]})


def test_prune_and_usage(env):
    svc = service(env)
    a = svc.create(body()).id
    result = run(svc.prune({}))
    assert result.containers_deleted == [a]
    assert svc.containers_using_image(IMAGE_ID) == []


def test_restore(env):
    config, db, parts = env
    parts["shims"].exit_code = None
    svc = ContainerService(config, db, **parts)

    async def first():
        alive = svc.create(body()).id
        dead = svc.create(body()).id
        exited = svc.create(body()).id
        for cid in (alive, dead, exited):
            await svc.start(cid)
        await svc.close()
        return alive, dead, exited

    alive, dead, exited = run(first())
    (config.container_exec_dir(exited) / "exit.json").write_text(
        json.dumps({"exit_code": 3, "finished_at": "2026-11-29T01:02:03Z", "oom_killed": False, "error": ""}))
    parts["shims"].alive = {alive}
    svc2 = ContainerService(config, db, **parts)

    async def second():
        await svc2.restore()
        states = {cid: svc2.inspect(cid).state for cid in (alive, dead, exited)}
        await svc2.close()
        return states

    states = run(second())
    assert states[alive].status == "running"
    assert states[exited].status == "exited" and states[exited].exit_code == 3
    assert states[dead].status == "exited" and states[dead].error == "shim died"


def test_restore_removes_stopped_auto_remove_containers(env):
    """moby's restore: an auto-remove container found not running goes (an auto-remove's delete
    is not fsynced: a power loss may bring it back as created or exited); a running one stays."""
    config, db, parts = env
    parts["shims"].exit_code = None
    svc = ContainerService(config, db, **parts)

    async def first():
        created = svc.create(body(host_config=HostConfig(auto_remove=True))).id
        running = svc.create(body(host_config=HostConfig(auto_remove=True))).id
        # its exit is not saved before its row goes: a daemon that died in between finds it
        # running without its shim
        exited = svc.create(body(host_config=HostConfig(auto_remove=True))).id
        kept = svc.create(body()).id
        await svc.start(running)
        await svc.start(exited)
        await svc.close()
        return created, running, exited, kept

    created, running, exited, kept = run(first())
    parts["shims"].alive = {running}
    svc2 = ContainerService(config, db, **parts)

    async def second():
        await svc2.restore()
        ids = {c.id for c in svc2.list(all=True)}
        await svc2.close()
        return ids

    assert run(second()) == {running, kept}
    assert created not in parts["images"].rootfs and kept in parts["images"].rootfs
    assert exited not in parts["images"].rootfs


def test_parse_signal():
    assert parse_signal("SIGKILL") == 9 and parse_signal("kill") == 9 and parse_signal("15") == 15
    assert parse_signal(None, default="SIGTERM") == 15
    with pytest.raises(errdefs.InvalidParameter, match="Invalid signal: FOO"):
        parse_signal("FOO")


def test_attach_logs_replay_without_stream(env):
    svc = service(env)

    async def flow():
        cid = svc.create(body()).id
        rec = svc.get(cid)
        Path(rec.log_path).write_text(
            '{"log":"past\\n","stream":"stdout","time":"2026-11-29T00:00:00.1Z"}\n'
            '{"log":"err\\n","stream":"stderr","time":"2026-11-29T00:00:00.2Z"}\n')
        session = await svc.attach(cid, stdin=False, stdout=True, stderr=False, logs=True, stream=False)
        return [item async for item in session.output()]

    assert run(flow()) == [(1, b"past\n")]


def test_failed_start_removes_an_autoremove_container(env):
    env[2]["shims"].fail = 'exec: "nope": executable file not found in $PATH'
    svc = service(env)

    async def flow():
        cid = svc.create(body(host_config=HostConfig(auto_remove=True))).id
        removed = svc.wait(cid, "removed")
        with pytest.raises(errdefs.InvalidParameter):
            await svc.start(cid)
        return (await asyncio.wait_for(removed, 2)).status_code

    assert run(flow()) == 127
    assert svc.list(all=True) == []


def test_mounts_come_from_the_volume_service(env):
    svc = service(env)
    volumes = env[2]["volumes"]

    async def flow():
        cid = svc.create(body(host_config=HostConfig(binds=["/srv/x:/data:ro"]))).id
        assert [(m.source, m.destination, m.rw) for m in svc.inspect(cid).mounts] == [("/srv/x", "/data", False)]
        await svc.start(cid)
        spec = json.loads((env[0].container_exec_dir(cid) / "config.json").read_bytes())
        assert {"destination": "/data", "type": "bind", "source": "/srv/x",
                "options": ["rbind", "rprivate", "ro"]} in spec["mounts"]
        await svc.wait(cid, "not-running")
        assert cid not in volumes.mounted
        await svc.remove(cid)
        return cid

    cid = run(flow())
    assert cid not in volumes.plans


def test_update_created_container(env):
    from dockyard.apitypes.container import UpdateRequest
    svc = service(env)
    cid = svc.create(body(host_config=HostConfig(memory=64 << 20))).id
    req = msgspec.convert({"Memory": 100 << 20, "MemorySwap": 200 << 20, "NanoCpus": 10**9,
                           "RestartPolicy": {"Name": "always"}}, UpdateRequest)
    assert run(svc.update(cid, req)) == {"Warnings": []}
    hc = svc.inspect(cid).host_config
    assert (hc.memory, hc.memory_swap, hc.nano_cpus, hc.restart_policy.name) == (100 << 20, 200 << 20, 10**9, "always")
    with pytest.raises(errdefs.InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        run(svc.update(cid, UpdateRequest(memory=1)))
    with pytest.raises(errdefs.InvalidParameter, match="update the memoryswap at the same time"):
        run(svc.update(cid, UpdateRequest(memory=300 << 20)))
    assert svc.inspect(cid).host_config.memory == 100 << 20
    assert "update" in env[2]["events"].actions()


def test_create_prepares_the_start_and_remove_waits_for_it(env):
    svc = service(env)
    config = env[0]

    async def flow():
        cid = (await svc.create_async(body(host_config=HostConfig(network_mode="host")))).id
        await svc.start(cid)  # waits for the preparation if it still runs
        early = (await svc.create_async(body())).id
        await svc.remove(early)  # right after the create: nothing is made after the removal
        await asyncio.sleep(0.05)
        return cid, early

    cid, early = run(flow())
    assert [p[:2] for p in env[2]["networks"].prepared] == [(cid, "host"), (early, "bridge")]
    assert json.loads((config.container_exec_dir(cid) / "config.json").read_bytes())["process"]["args"] == ["sh"]
    assert (config.container_exec_dir(cid) / "rootfs").is_dir()
    assert not config.container_exec_dir(early).exists() and not config.container_data_dir(early).exists()


def test_image_layers_come_from_the_rootfs_mount(env):
    from dockyard.daemon.containers import startup
    from dockyard.daemon.containers.record import RootfsMount
    svc = service(env)
    rec = svc.get(svc.create(body()).id)
    assert startup.image_layer_dirs(rec, env[2]["images"]) == [Path(env[2]["images"].layer)]
    # a rootfs that is not an overlay: the image's layers
    rec.rootfs_mounts = [RootfsMount(type="bind", source="/somewhere", options=["rbind"])]
    assert startup.image_layer_dirs(rec, env[2]["images"]) == env[2]["images"].layer_dirs(
        env[2]["images"].resolve(rec.image_id))


def test_exit_handling_survives_a_garbage_collection(env):
    """The task handling an exit is held until it ends: awaiting something only it reaches
    (a shim connection's reader, which its protocol holds weakly), it would be collected and
    the exit never recorded nor its waiters answered."""
    import gc
    import weakref

    env[2]["shims"].exit_code = None
    svc = service(env)

    async def flow():
        cid = svc.create(body()).id
        await svc.start(cid)
        handle = env[2]["shims"].handles[cid]
        awaited: list[weakref.ref] = []

        async def shutdown() -> None:  # an answer nothing else holds on to
            future = asyncio.get_running_loop().create_future()
            awaited.append(weakref.ref(future))
            await future

        handle.shutdown = shutdown
        waiter = svc.wait(cid, "not-running")
        await svc.kill(cid, "SIGKILL")
        while not awaited:
            await asyncio.sleep(0)
        for _ in range(5):  # the rest of the exit's handling to its wait for that answer
            await asyncio.sleep(0)
        gc.collect()
        future = awaited[0]()
        assert future is not None
        future.set_result(None)
        return (await asyncio.wait_for(waiter, 5)).status_code

    assert run(flow()) == 137
