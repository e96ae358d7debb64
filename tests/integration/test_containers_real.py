"""ContainerService with the real image store, network service (none/host modes), zygote shims
and our runtime: run busybox, attach before start, exit codes, stop, start failures, restore.
Root only; every test removes its containers, cgroups, mounts and processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import CreateRequest, HostConfig
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers.service import ContainerService
from dockyard.daemon.images.service import ImageService
from dockyard.daemon.networks import NetworkService
from dockyard.daemon.volumes import VolumesService
from dockyard.shim.manager import ZygoteShimManager
from dockyard.storage.content import ContentStore
from dockyard.storage.layers import LayerStore
from dockyard.storage.metadata import Database
from dockyard.storage.snapshotter import OverlaySnapshotter
from tests.daemon_harness import remove_cgroups

FIXTURE = Path("/work/shared/fixtures/busybox-docker-save.tar")
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not FIXTURE.exists(), reason="busybox fixture missing")]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict]] = []

    def emit(self, type, action, actor_id, attributes=None, scope="local") -> None:
        self.seen.append((action, actor_id, dict(attributes or {})))


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = DaemonConfig(data_root=root / "data", exec_root=root / "r", bridge="none",
                                   cgroup_parent=f"/dyctest-{secrets.token_hex(4)}")
        self.db = Database(self.config.db_path)
        self.events = Events()
        content = ContentStore(self.config.image_root / "content")
        layers = LayerStore(self.config.image_root / "layers", content, self.db)
        snapshotter = OverlaySnapshotter(self.config.snapshot_root, layers)
        self.containers: ContainerService | None = None
        self.images = ImageService(self.config, self.db, content, layers, snapshotter, self.events, self)
        self.networks = NetworkService(self.config, self.db, self.events)
        self.volumes = VolumesService(self.config, self.db, self.events)
        self.shims = ZygoteShimManager(self.config.zygote_socket)

    def containers_using_image(self, image_id):
        return self.containers.containers_using_image(image_id) if self.containers else []

    async def start(self) -> ContainerService:
        with open(FIXTURE, "rb") as f:
            list(self.images.load(f))
        await self.networks.start()
        await self.shims.start()
        self.containers = ContainerService(self.config, self.db, self.images, self.networks, self.shims,
                                           self.events, self.volumes)
        return self.containers

    async def cleanup(self) -> None:
        if self.containers is not None:
            for rec in list(self.containers._store.all()):
                try:
                    await asyncio.wait_for(self.containers.remove(rec.id, force=True), 10)
                except Exception:
                    pass
            await self.containers.close()
        # Whatever a failed test left: the shims and inits recorded in the state dirs.
        for pid_file in (self.config.exec_root / "containers").glob("*/*.pid"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        await self.shims.close()
        await self.networks.stop()
        remove_cgroups(self.config.cgroup_parent)
        os.system(f"grep -o ' {self.root}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null")
        self.db.close()


def run(body) -> None:
    root = Path(tempfile.mkdtemp(prefix="dy"))  # short: shim.sock paths must fit AF_UNIX

    async def main() -> None:
        stack = Stack(root)
        try:
            svc = await stack.start()
            await body(svc, stack)
        finally:
            await stack.cleanup()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def req(cmd: list[str], **kw) -> CreateRequest:
    hc = kw.pop("host_config", None) or HostConfig(network_mode="none")
    return CreateRequest(image="busybox", cmd=cmd, host_config=hc, **kw)


async def collect(session) -> list[tuple[int, bytes]]:
    return [item async for item in session.output()]


def test_run_output_and_exit_code():
    async def body(svc: ContainerService, stack: Stack) -> None:
        cid = svc.create(req(["sh", "-c", "echo out; echo err >&2; id; exit 3"])).id
        session = await svc.attach(cid, stdin=False, stdout=True, stderr=True)
        waiter = svc.wait(cid, "next-exit")
        await svc.start(cid)
        out = await asyncio.wait_for(collect(session), 10)
        result = await asyncio.wait_for(waiter, 10)
        await svc.detach(session)
        text = b"".join(d for s, d in out if s == 1)
        assert b"out\n" in text and b"uid=0(root) gid=0(root)" in text
        assert (2, b"err\n") in out
        assert result.status_code == 3
        info = svc.inspect(cid)
        assert info.state.status == "exited" and info.state.exit_code == 3
        logs = [item async for item in svc.logs(cid, stdout=True, stderr=True)]
        # Lines of one stream may come in one chunk (docker logs sends up to 64 KB a frame).
        by_stream = {s: b"".join(d for k, d in logs if k == s) for s in (1, 2)}
        assert by_stream == {1: b"out\nuid=0(root) gid=0(root)\n", 2: b"err\n"}
        await svc.remove(cid)

    run(body)


def test_stdin_tty_stop_and_restart():
    async def body(svc: ContainerService, stack: Stack) -> None:
        cid = svc.create(req(["cat"], open_stdin=True, stdin_once=True)).id
        session = await svc.attach(cid, stdin=True, stdout=True, stderr=True)
        await svc.start(cid)
        await session.write_stdin(b"piped\n")
        await session.stdin_closed()
        out = await asyncio.wait_for(collect(session), 10)
        assert b"".join(d for _, d in out) == b"piped\n"
        assert (await asyncio.wait_for(svc.wait(cid), 10)).status_code == 0

        sleeper = svc.create(req(["sleep", "60"], tty=True), name="sleeper").id
        await svc.start(sleeper)
        info = svc.inspect(sleeper)
        assert info.state.running and info.state.pid > 0
        listing = await svc.top(sleeper, "-eo pid,args")  # -e: the container's pty is not ours
        docs = [d async for d in await svc.stats(sleeper, stream=False, one_shot=True)]
        assert docs[0]["pids_stats"]["current"] == 1 and docs[0]["memory_stats"]["usage"] > 0
        assert docs[0]["cpu_stats"]["system_cpu_usage"] > 0 and docs[0]["name"] == "/sleeper"
        assert listing.titles == ["PID", "COMMAND"] and listing.processes == [[str(info.state.pid), "sleep 60"]]
        assert svc.list()[0].status.startswith("Up ")
        await svc.pause(sleeper)
        await svc.unpause(sleeper)
        await asyncio.wait_for(svc.stop(sleeper, timeout=1), 10)  # sleep ignores TERM as pid 1
        assert svc.inspect(sleeper).state.exit_code == 137
        await svc.start(sleeper)
        assert svc.inspect(sleeper).state.running
        await asyncio.wait_for(svc.remove(sleeper, force=True), 10)
        actions = [a for a, i, _ in stack.events.seen if i == sleeper]
        assert actions[:6] == ["create", "start", "top", "pause", "unpause", "kill"]
        assert actions[-1] == "destroy"

    run(body)


def test_start_failure_and_autoremove():
    async def body(svc: ContainerService, stack: Stack) -> None:
        cid = svc.create(req(["nope"])).id
        with pytest.raises(errdefs.InvalidParameter) as err:
            await svc.start(cid)
        assert 'exec: "nope": executable file not found in $PATH' in str(err.value)
        assert str(err.value).startswith("failed to create task for container: ")
        state = svc.inspect(cid).state
        assert state.exit_code == 127 and "nope" in state.error and state.status == "created"
        await svc.remove(cid)

        auto = svc.create(req(["true"], host_config=HostConfig(network_mode="none", auto_remove=True))).id
        removed = svc.wait(auto, "removed")
        await svc.start(auto)
        assert (await asyncio.wait_for(removed, 10)).status_code == 0
        with pytest.raises(errdefs.NotFound):
            svc.inspect(auto)

    run(body)


def test_restore_after_daemon_restart():
    async def body(svc: ContainerService, stack: Stack) -> None:
        cid = svc.create(req(["sleep", "60"])).id
        await svc.start(cid)
        pid = svc.inspect(cid).state.pid
        await svc.close()
        again = ContainerService(stack.config, stack.db, stack.images, stack.networks, stack.shims,
                                 stack.events, stack.volumes)
        stack.containers = again
        await again.restore()
        assert again.inspect(cid).state.running and again.inspect(cid).state.pid == pid
        await asyncio.wait_for(again.kill(cid, "KILL"), 5)
        assert (await asyncio.wait_for(again.wait(cid), 10)).status_code == 137

    run(body)


def test_bind_and_named_volume():
    async def body(svc: ContainerService, stack: Stack) -> None:
        host_dir = stack.root / "hostdir"
        host_dir.mkdir()
        (host_dir / "f").write_text("from-host")
        hc = HostConfig(network_mode="none", binds=[f"{host_dir}:/h:ro", "dyvol:/v"])
        cid = svc.create(req(["sh", "-c", "cat /h/f; echo saved > /v/x; touch /h/nope"], host_config=hc)).id
        session = await svc.attach(cid, stdin=False, stdout=True, stderr=True)
        await svc.start(cid)
        out = b"".join(d for _, d in await asyncio.wait_for(collect(session), 10))
        assert b"from-host" in out and b"Read-only file system" in out
        assert {m.type for m in svc.inspect(cid).mounts} == {"bind", "volume"}
        await asyncio.wait_for(svc.wait(cid), 10)
        await svc.remove(cid)
        again = svc.create(req(["cat", "/v/x"], host_config=HostConfig(network_mode="none", binds=["dyvol:/v"]))).id
        session = await svc.attach(again, stdin=False, stdout=True, stderr=True)
        await svc.start(again)
        assert b"".join(d for _, d in await asyncio.wait_for(collect(session), 10)) == b"saved\n"
        await asyncio.wait_for(svc.wait(again), 10)
        await svc.remove(again)
        await stack.volumes.remove("dyvol")

    run(body)


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_runc_runtime():
    async def body(svc: ContainerService, stack: Stack) -> None:
        cid = svc.create(req(["sh", "-c", "echo via-runc; exit 4"],
                             host_config=HostConfig(network_mode="none", runtime="runc"))).id
        assert svc.inspect(cid).host_config.runtime == "runc"
        session = await svc.attach(cid, stdin=False, stdout=True, stderr=True)
        await svc.start(cid)
        out = await asyncio.wait_for(collect(session), 10)
        assert b"".join(d for _, d in out) == b"via-runc\n"
        assert (await asyncio.wait_for(svc.wait(cid), 10)).status_code == 4
        await svc.remove(cid)

    run(body)
