"""The volume plugin protocol end to end: the example dirplugin as a separate process, found by
its socket or a .spec file; plugins that hang, die, or are not plugins."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig
from dockyard.apitypes.volume import CreateRequest
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.volumes import VolumesService
from dockyard.storage.metadata import Database
from dockyard.volume import plugin as plugin_mod
from tests.integration.dirplugin import start_plugin, stop
from tests.integration.tempdirs import temp_dir
from tests.unit.test_volume_service import Events



@pytest.fixture
def root():
    with temp_dir("dy-vol-plugin-") as path:
        yield path


class Plugins:
    """The dirplugin processes a test started (by PID), to stop and restart them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen] = []

    def launch(self) -> subprocess.Popen:
        proc = start_plugin(self.root / "plugins/dirplugin.sock", self.root / "plugin-state")
        self.procs.append(proc)
        return proc


@pytest.fixture
def plugin(root):
    plugins = Plugins(root)
    plugins.launch()
    try:
        yield plugins
    finally:
        for proc in plugins.procs:
            stop(proc)


def make(root: Path, timeout: float = 5.0, spec_dirs: tuple[Path, ...] = ()):
    config = DaemonConfig(data_root=root / "data", exec_root=root / "exec",
                          plugin_socket_dirs=[root / "plugins"], plugin_spec_dirs=list(spec_dirs))
    db = Database(config.db_path)
    events = Events()
    svc = VolumesService(config, db, events, plugin_timeout=timeout)
    return svc, db, events


def test_whole_flow_through_dirplugin(root, plugin):
    svc, db, events = make(root)

    async def flow():
        vol = await svc.create(CreateRequest(name="pvol", driver="dirplugin", driver_opts={"mode": "0700"}))
        assert vol.driver == "dirplugin" and vol.scope == "local"
        path = root / "plugin-state/volumes/pvol"
        assert oct(path.stat().st_mode & 0o777) == "0o700"
        info = await svc.inspect("pvol")
        assert info.mountpoint == str(path) and info.status == {"mounts": 0, "backend": "directory"}
        points = svc.resolve_mounts("c1", HostConfig(binds=["pvol:/data"]), None, [], lambda r: r)
        assert (points[0].driver, points[0].source) == ("dirplugin", str(path))
        mounts = await svc.mount("c1")
        assert mounts[0].source == str(path)
        assert (await svc.inspect("pvol")).status["mounts"] == 1
        with pytest.raises(errdefs.Conflict):
            await svc.remove("pvol")
        await svc.unmount("c1")
        assert (await svc.inspect("pvol")).status["mounts"] == 0
        # an anonymous volume through the container's VolumeDriver, removed with the container
        points = svc.resolve_mounts("c2", HostConfig(volume_driver="dirplugin"), {"/anon": {}}, [],
                                          lambda r: r)
        anon = points[0].name
        assert (root / "plugin-state/volumes" / anon).is_dir()
        await svc.release("c2", remove_anonymous=True)
        assert not (root / "plugin-state/volumes" / anon).exists()
        await svc.release("c1", remove_anonymous=True)
        await svc.remove("pvol")
        assert not path.exists()

    try:
        asyncio.run(flow())
    finally:
        db.close()
    assert [a for _, a, n, _ in events.events if n == "pvol"] == ["create", "mount", "unmount", "destroy"]


def test_plugin_dies_and_comes_back(root, plugin):
    svc, db, _ = make(root)

    async def flow():
        await svc.create(CreateRequest(name="pvol", driver="dirplugin"))
        svc.resolve_mounts("c1", HostConfig(binds=["pvol:/data"]), None, [], lambda r: r)
        stop(plugin.procs[0])
        with pytest.raises(errdefs.DockyardError, match="volume plugin dirplugin") as e:
            await svc.mount("c1")
        assert isinstance(e.value, errdefs.Unavailable)
        assert [v.name for v in (await svc.list({})).volumes] == ["pvol"]  # the daemon still answers
        with pytest.raises(errdefs.Unavailable):
            await svc.create(CreateRequest(name="other", driver="dirplugin"))
        assert [v.name for v in (await svc.list({})).volumes] == ["pvol"]
        plugin.launch()  # restarted: its state survived, and it is activated again
        mounts = await svc.mount("c1")
        assert mounts[0].source.endswith("plugin-state/volumes/pvol")

    try:
        asyncio.run(flow())
    finally:
        db.close()


class _HangingServer:
    """Accepts connections and reads requests but never answers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_hanging_plugin_times_out_and_loop_keeps_working(root):
    server = _HangingServer(root / "plugins/hang.sock")
    svc, db, _ = make(root, timeout=0.5)

    async def flow():
        started = time.monotonic()
        task = asyncio.ensure_future(svc.create(CreateRequest(name="hv", driver="hang")))
        await asyncio.sleep(0.1)
        assert not task.done()
        await svc.create(CreateRequest(name="localvol"))  # other work goes on meanwhile
        with pytest.raises(errdefs.DockyardError) as e:
            await task
        assert "no answer within 0.5s" in str(e.value) and "hang" in str(e.value)
        assert time.monotonic() - started < 3
        assert [v.name for v in (await svc.list({})).volumes] == ["localvol"]

    try:
        asyncio.run(flow())
    finally:
        server.close()
        db.close()


def test_socket_that_is_not_a_plugin(root):
    sock_path = root / "plugins/notaplugin.sock"
    sock_path.parent.mkdir(parents=True)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(sock_path))
    srv.listen(4)

    def answer() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    svc, db, _ = make(root, timeout=2)
    try:
        with pytest.raises(errdefs.InvalidParameter, match="is not a volume plugin"):
            asyncio.run(svc.create(CreateRequest(name="vx", driver="notaplugin")))
        assert asyncio.run(svc.list({})).volumes == []
    finally:
        srv.close()
        db.close()


def test_spec_file_discovery(root, plugin):
    spec_dir = root / "specs"
    spec_dir.mkdir()
    (spec_dir / "viaspec.spec").write_text(f"unix://{root / 'plugins/dirplugin.sock'}\n")
    svc, db, _ = make(root, spec_dirs=(spec_dir,))
    try:
        vol = asyncio.run(svc.create(CreateRequest(name="sv", driver="viaspec")))
        assert vol.driver == "viaspec"
        assert (root / "plugin-state/volumes/sv").is_dir()
        asyncio.run(svc.remove("sv"))
    finally:
        db.close()


def _create_behind_our_back(root: Path, name: str) -> None:
    """A volume made in the plugin by someone else (another daemon, the plugin's own tool)."""
    client = plugin_mod.PluginClient("dirplugin", f"unix://{root / 'plugins/dirplugin.sock'}", timeout=5)
    assert client.call("VolumeDriver.Create", {"Name": name, "Opts": {}}) == {"Err": ""}


def test_volumes_only_the_plugin_knows(root, plugin):
    """Listed, inspected, used by a -v without a driver and removed, as Docker does through the
    plugin's List and Get; a socket that is no plugin adds nothing, a hanging plugin a warning."""
    _create_behind_our_back(root, "outside")
    _create_behind_our_back(root, "outside2")
    hang = _HangingServer(root / "plugins/hang.sock")
    svc, db, events = make(root, timeout=0.5)

    async def flow():
        await svc.create(CreateRequest(name="ours"))
        listed = await svc.list({})
        assert [(v.name, v.driver) for v in listed.volumes] == [
            ("ours", "local"), ("outside", "dirplugin"), ("outside2", "dirplugin")]
        assert listed.warnings and "hang" in listed.warnings[0] and "no answer within 0.5s" in listed.warnings[0]
        assert [v.name for v in (await svc.list({"driver": ["dirplugin"], "dangling": ["true"]})).volumes] == [
            "outside", "outside2"]
        info = await svc.inspect("outside")
        assert (info.driver, info.mountpoint, info.scope) == (
            "dirplugin", str(root / "plugin-state/volumes/outside"), "local")
        assert info.status == {"mounts": 0, "backend": "directory"}
        with pytest.raises(errdefs.NotFound, match="get nowhere: no such volume"):
            await svc.inspect("nowhere")
        points = svc.resolve_mounts("c1", HostConfig(binds=["outside:/d"]), None, [], lambda r: r)
        assert (points[0].name, points[0].driver) == ("outside", "dirplugin")
        assert (await svc.mount("c1"))[0].source == str(root / "plugin-state/volumes/outside")
        await svc.release("c1", remove_anonymous=True)
        await svc.remove("outside2")
        assert not (root / "plugin-state/volumes/outside2").exists()
        assert [v.name for v in (await svc.list({"name": ["outside"]})).volumes] == ["outside"]

    try:
        asyncio.run(flow())
    finally:
        hang.close()
        db.close()
    assert ("volume", "destroy", "outside2", {"driver": "dirplugin"}) in events.events


def test_prune_and_df_leave_plugin_volumes(root, plugin):
    """As moby's prune and df (local driver only): a plugin's volumes, recorded or only in the
    plugin, unused and anonymous or not, are neither pruned nor counted."""
    _create_behind_our_back(root, "outside")
    svc, db, _ = make(root)

    async def flow():
        await svc.create(CreateRequest(name="pnamed", driver="dirplugin"))
        await svc.create(CreateRequest(driver="dirplugin", labels={}))  # anonymous, in the plugin
        anon = await svc.create(CreateRequest())  # anonymous, local
        assert [v.name for v in svc.disk_usage()] == [anon.name]
        pruned = await svc.prune({"all": ["true"]})
        assert pruned.volumes_deleted == [anon.name]
        left = await svc.list({"driver": ["dirplugin"]})
        assert len(left.volumes) == 3 and "outside" in {v.name for v in left.volumes}
        assert sorted(p.name for p in (root / "plugin-state/volumes").iterdir()) == sorted(
            v.name for v in left.volumes)
        for vol in left.volumes:
            await svc.remove(vol.name)

    try:
        asyncio.run(flow())
    finally:
        db.close()
