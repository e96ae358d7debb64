"""VolumesService with the local driver on a temp data root (real mounts for driver options)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig
from dockyard.apitypes.volume import CreateRequest
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.volumes import VolumesService
from dockyard.storage.metadata import Database
from dockyard.volume import kernel


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict]] = []

    def emit(self, type, action, actor_id, attributes=None, scope="local") -> None:
        self.events.append((type, action, actor_id, dict(attributes or {})))

    def actions(self, name: str | None = None) -> list[str]:
        return [a for _, a, n, _ in self.events if name is None or n == name]


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="dy-vol-svc-"))
    try:
        yield path
    finally:
        subprocess.run(["sh", "-c", f"grep -o ' {path}[^ ]*' /proc/self/mountinfo | sort -r | "
                                    "xargs -r -n1 umount -l"], check=False)
        shutil.rmtree(path, ignore_errors=True)


def make(root: Path) -> tuple[VolumesService, Database, Events]:
    config = DaemonConfig(data_root=root / "data", exec_root=root / "exec",
                          plugin_socket_dirs=[root / "plugins"], plugin_spec_dirs=[])
    db = Database(config.db_path)
    events = Events()
    return VolumesService(config, db, events), db, events


def run(coro):
    return asyncio.run(coro)


def no_lookup(ref: str) -> str:
    raise errdefs.no_such_container(ref)


def test_create_inspect_list_remove(root):
    svc, db, events = make(root)
    vol = run(svc.create(CreateRequest(name="data", labels={"team": "a"})))
    assert vol.mountpoint == str(root / "data/volumes/data/_data") and os.path.isdir(vol.mountpoint)
    assert vol.driver == "local" and vol.scope == "local" and vol.created_at.endswith("Z")
    again = run(svc.create(CreateRequest(name="data")))  # idempotent, as Docker
    assert again.created_at == vol.created_at
    anon = run(svc.create(CreateRequest()))
    assert len(anon.name) == 64 and anon.labels == {"com.docker.volume.anonymous": ""}
    names = lambda f: [v.name for v in run(svc.list(f)).volumes]  # noqa: E731
    assert names({"label": ["team=a"]}) == ["data"]
    assert names({"label": ["team=b"]}) == []
    assert names({"name": ["dat"]}) == ["data"]
    assert sorted(names({"dangling": ["true"]})) == sorted(["data", anon.name])
    assert names({"driver": ["other"]}) == []
    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'bogus'"):
        run(svc.list({"bogus": ["x"]}))
    with pytest.raises(errdefs.InvalidParameter):
        run(svc.list({"dangling": ["maybe"]}))
    run(svc.remove("data"))
    assert not (root / "data/volumes/data").exists()
    with pytest.raises(errdefs.NotFound, match="get data: no such volume"):
        run(svc.inspect("data"))
    with pytest.raises(errdefs.NotFound):
        run(svc.remove("data"))
    run(svc.remove("data", force=True))
    assert events.actions("data") == ["create", "destroy"]


@pytest.mark.parametrize("name", ["a/b", "..", "../x", ".hidden", "x"])
def test_bad_names(root, name):
    svc, _, _ = make(root)
    with pytest.raises(errdefs.InvalidParameter, match="includes invalid characters"):
        run(svc.create(CreateRequest(name=name)))
    assert run(svc.list({})).volumes == []


def test_bad_driver_and_options(root):
    svc, _, _ = make(root)
    with pytest.raises(errdefs.NotFound, match='create vol: error looking up volume plugin nope: plugin "nope" not found'):
        run(svc.create(CreateRequest(name="vol", driver="nope")))
    with pytest.raises(errdefs.InvalidParameter, match='invalid option: "bogus"'):
        run(svc.create(CreateRequest(name="vol", driver_opts={"bogus": "1"})))
    with pytest.raises(errdefs.InvalidParameter, match='missing required option: "device"'):
        run(svc.create(CreateRequest(name="vol", driver_opts={"type": "tmpfs"})))
    assert run(svc.list({})).volumes == [] and os.listdir(root / "data/volumes") == []


def test_remove_never_follows_symlinks(root):
    svc, _, _ = make(root)
    outside = root / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    run(svc.create(CreateRequest(name="vol")))
    os.symlink(outside, root / "data/volumes/vol/_data/link")
    run(svc.remove("vol"))
    assert (outside / "precious").read_text() == "keep"
    # a volume directory replaced by a symlink to elsewhere: only the link goes
    run(svc.create(CreateRequest(name="wol")))
    shutil.rmtree(root / "data/volumes/wol")
    os.symlink(outside, root / "data/volumes/wol")
    run(svc.remove("wol"))
    assert (outside / "precious").read_text() == "keep" and not os.path.lexists(root / "data/volumes/wol")


def test_tmpfs_and_bind_options(root):
    svc, _, events = make(root)
    host = root / "hostdir"
    host.mkdir()
    (host / "f").write_text("from host")
    run(svc.create(CreateRequest(name="tv", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"})))
    run(svc.create(CreateRequest(name="bv", driver_opts={"type": "none", "device": str(host), "o": "bind"})))
    hc = HostConfig(binds=["tv:/t", "bv:/b:ro"])
    points = svc.resolve_mounts("c1", hc, None, [], no_lookup)
    assert [(p.name, p.destination, p.rw, p.mode) for p in points] == [("bv", "/b", False, "ro"), ("tv", "/t", True, "z")]
    mounts = run(svc.mount("c1"))
    t_path = str(root / "data/volumes/tv/_data")
    assert kernel.is_mountpoint(t_path)
    with open("/proc/self/mountinfo") as f:
        line = next(line for line in f if f" {t_path} " in line)
    assert "tmpfs" in line and "size=1024k" in line
    assert (root / "data/volumes/bv/_data/f").read_text() == "from host"
    assert [(m.destination, m.options) for m in mounts] == [("/b", ["rbind", "rprivate", "rro"]),
                                                           ("/t", ["rbind", "rprivate", "rw"])]
    # a second user shares the device mount; the last unmount takes it down
    svc.resolve_mounts("c2", HostConfig(binds=["tv:/x"]), None, [], no_lookup)
    run(svc.mount("c2"))
    run(svc.unmount("c1"))
    assert kernel.is_mountpoint(t_path)
    with pytest.raises(errdefs.Conflict, match=r"remove tv: volume is in use - \[c1 c2\]"):
        run(svc.remove("tv"))
    with pytest.raises(errdefs.Conflict):
        run(svc.remove("tv", force=True))
    run(svc.release("c2", remove_anonymous=True))
    assert not kernel.is_mountpoint(t_path)
    run(svc.release("c1", remove_anonymous=True))
    run(svc.remove("bv"))
    assert (host / "f").read_text() == "from host"  # removing a bind volume leaves the host dir alone
    assert [a for _, a, n, _ in events.events if n == "tv"] == ["create", "mount", "mount", "unmount", "unmount"]


def test_resolve_anonymous_copyup_release(root):
    svc, _, events = make(root)
    layer = root / "layer"
    (layer / "etc/conf").mkdir(parents=True)
    (layer / "etc/conf/app.ini").write_text("image content")
    hc = HostConfig(binds=["named:/etc/conf"], mounts=[{"Type": "tmpfs", "Target": "/scratch",
                                                         "TmpfsOptions": {"SizeBytes": 4096}}])
    points = svc.resolve_mounts("c1", hc, {"/etc/conf": {}, "/anon": {}}, [layer], no_lookup)
    kinds = {p.destination: (p.type, p.name) for p in points}
    assert kinds["/etc/conf"] == ("volume", "named") and kinds["/scratch"] == ("tmpfs", "")
    anon = kinds["/anon"][1]
    assert len(anon) == 64
    assert (root / "data/volumes/named/_data/app.ini").read_text() == "image content"
    mounts = run(svc.mount("c1"))
    tmpfs = next(m for m in mounts if m.destination == "/scratch")
    assert tmpfs.type == "tmpfs" and "size=4096" in tmpfs.options
    assert run(svc.list({"dangling": ["false"]})).volumes[0].name in ("named", anon)
    # a second container takes c1's volumes read-only
    points2 = svc.resolve_mounts("c2", HostConfig(volumes_from=["c1:ro"]), None, [], lambda ref: "c1")
    assert {(p.destination, p.rw) for p in points2} == {("/etc/conf", False), ("/anon", False)}
    run(svc.release("c1", remove_anonymous=True))
    assert {v.name for v in run(svc.list({})).volumes} == {"named", anon}  # c2 still uses the anonymous one
    run(svc.release("c2", remove_anonymous=True))
    assert {v.name for v in run(svc.list({})).volumes} == {"named"}
    pruned = run(svc.prune({}))
    assert pruned.volumes_deleted is None
    pruned = run(svc.prune({"all": ["true"]}))
    assert pruned.volumes_deleted == ["named"] and pruned.space_reclaimed == len("image content")


def test_resolve_errors_leave_nothing(root):
    svc, _, _ = make(root)
    for hc, cls, message in [
        (HostConfig(binds=["ok:/a", "bad/name:/b"]), errdefs.InvalidParameter, "invalid characters"),
        (HostConfig(binds=["ok:/a"], mounts=[{"Type": "bind", "Source": "/no/such/xyz", "Target": "/b"}]),
         errdefs.InvalidParameter, "bind source path does not exist"),
        (HostConfig(binds=["ok:/a", "ok2:/a"]), errdefs.InvalidParameter, "Duplicate mount point: /a"),
        (HostConfig(binds=["ok:/a"], volumes_from=["ghost"]), errdefs.NotFound, "No such container: ghost"),
        (HostConfig(binds=["ok:/a", "other:/b"], volume_driver="nope"), errdefs.NotFound, "plugin \"nope\" not found"),
    ]:
        with pytest.raises(cls, match=message):
            svc.resolve_mounts("c1", hc, {"/anon": {}}, [], no_lookup)
        assert run(svc.list({})).volumes == [], hc
    assert svc.mount_points("c1") == []


def test_prune_filters_and_persistence(root):
    svc, db, _ = make(root)
    run(svc.create(CreateRequest(labels={"keep": "1"})))
    gone = run(svc.create(CreateRequest()))
    run(svc.create(CreateRequest(name="named")))
    svc.resolve_mounts("c1", HostConfig(binds=["named:/n"]), None, [], no_lookup)
    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'until'"):
        run(svc.prune({"until": ["1h"]}))
    pruned = run(svc.prune({"label!": ["keep"]}))
    assert pruned.volumes_deleted == [gone.name]
    db.close()
    svc2, db2, _ = make(root)  # a daemon restart: users and options survive
    try:
        vols = {v.name: v for v in run(svc2.list({})).volumes}
        assert set(vols) == {"named", next(n for n in vols if n != "named")}
        with pytest.raises(errdefs.Conflict):
            run(svc2.remove("named"))
        assert [p.name for p in svc2.mount_points("c1")] == ["named"]
        assert [v.name for v in svc2.disk_usage() if v.usage_data.ref_count == 1] == ["named"]
    finally:
        db2.close()


def test_forget_missing_containers(root):
    svc, db, _ = make(root)
    svc.resolve_mounts("gone", HostConfig(binds=["shared:/s"]), None, [], no_lookup)
    svc.resolve_mounts("alive", HostConfig(binds=["shared:/s"]), None, [], no_lookup)
    svc.forget_missing({"alive"})
    with pytest.raises(errdefs.Conflict, match=r"in use - \[alive\]"):
        run(svc.remove("shared"))
    assert svc.mount_points("gone") == [] and len(svc.mount_points("alive")) == 1


def test_read_only_binds_are_recursive_where_the_kernel_can(root, monkeypatch):
    """Docker 25+: readonly is rro if possible; bind-recursive=writable is ro; =readonly is rro or an error."""
    svc, _, _ = make(root)
    src = root / "src"
    src.mkdir()
    mounts = [{"Type": "bind", "Source": str(src), "Target": f"/{mode}", "ReadOnly": True,
               "BindOptions": {"Propagation": "rprivate", **options}}
              for mode, options in (("default", {}), ("writable", {"ReadOnlyNonRecursive": True}),
                                    ("readonly", {"ReadOnlyForceRecursive": True}),
                                    ("disabled", {"NonRecursive": True}))]
    svc.resolve_mounts("c1", HostConfig(mounts=mounts, binds=[f"{src}:/v:ro"]), None, [], no_lookup)
    got = {m.destination: m.options for m in run(svc.mount("c1"))}
    assert got == {"/default": ["rbind", "rprivate", "rro"], "/writable": ["rbind", "rprivate", "ro"],
                   "/readonly": ["rbind", "rprivate", "rro"], "/disabled": ["bind", "rprivate", "ro"],
                   "/v": ["rbind", "rprivate", "rro"]}
    monkeypatch.setattr(kernel, "supports_recursive_readonly", lambda: "needs Linux 5.12, this is 5.10")
    with pytest.raises(errdefs.InvalidParameter, match=r"needs Linux 5.12.*at /readonly \(bind-recursive=readonly\)"):
        run(svc.mount("c1"))
    svc.resolve_mounts("c2", HostConfig(mounts=mounts[:2]), None, [], no_lookup)
    assert [m.options[-1] for m in run(svc.mount("c2"))] == ["ro", "ro"]  # falls back, as Docker


def test_kernel_option_words():
    flags, propagation, data = kernel.parse_options("ro,nosuid,size=1m,rshared,mode=0700,defaults")
    assert flags == kernel.MS_RDONLY | kernel.MS_NOSUID
    assert propagation == kernel.MS_SHARED | kernel.MS_REC and data == "size=1m,mode=0700"
    assert kernel.parse_options("bind,rw")[0] == kernel.MS_BIND


def test_local_bind_volume_read_only(root):
    svc, _, _ = make(root)
    host = root / "ro-src"
    host.mkdir()
    run(svc.create(CreateRequest(name="robind", driver_opts={"type": "none", "device": str(host), "o": "bind,ro"})))
    svc.resolve_mounts("c1", HostConfig(binds=["robind:/r"]), None, [], no_lookup)
    run(svc.mount("c1"))
    try:
        with pytest.raises(OSError) as e:
            (root / "data/volumes/robind/_data/x").write_text("no")
        assert e.value.errno == 30  # EROFS
    finally:
        run(svc.release("c1", remove_anonymous=False))
    assert not kernel.is_mountpoint(str(root / "data/volumes/robind/_data"))


def test_restore_adopts_volume_dirs_on_disk(root):
    svc, db, _ = make(root)
    run(svc.create(CreateRequest(name="known")))
    db.close()
    (root / "data/volumes/orphan/_data").mkdir(parents=True)
    (root / "data/volumes/orphan/opts.json").write_text('{"type": "tmpfs", "device": "tmpfs"}')
    (root / "data/volumes/bad..name").mkdir()
    os.symlink("/etc", root / "data/volumes/linked")
    svc2, db2, _ = make(root)
    try:
        svc2.restore()
        vols = {v.name: v for v in run(svc2.list({})).volumes}
        assert set(vols) == {"known", "orphan", "bad..name"}
        assert vols["orphan"].options == {"type": "tmpfs", "device": "tmpfs"}
    finally:
        db2.close()


def test_subpath_is_pinned_and_never_follows_symlinks(root):
    svc, _, _ = make(root)
    run(svc.create(CreateRequest(name="sub")))
    data = root / "data/volumes/sub/_data"
    (data / "a/b").mkdir(parents=True)
    (data / "a/b/f").write_text("inside")
    os.symlink("/etc", data / "escape")
    (data / "a/link").symlink_to("../../../../..")

    def spec(subpath: str) -> HostConfig:
        return HostConfig(mounts=[{"Type": "volume", "Source": "sub", "Target": "/s",
                                   "VolumeOptions": {"Subpath": subpath}}])

    svc.resolve_mounts("c1", spec("a/b"), None, [], no_lookup)
    mounts = run(svc.mount("c1"))
    pin = mounts[0].source
    assert pin.startswith(str(root / "exec/volume-subpaths/c1/")) and kernel.is_mountpoint(pin)
    assert open(os.path.join(pin, "f")).read() == "inside"
    run(svc.unmount("c1"))
    assert not os.path.exists(pin)
    for cid, subpath, message in [("c2", "escape", "symbolic link"), ("c3", "a/link/etc", "symbolic link"),
                                  ("c4", "nope", "no such file or directory")]:
        svc.resolve_mounts(cid, spec(subpath), None, [], no_lookup)
        with pytest.raises(errdefs.InvalidParameter, match=message):
            run(svc.mount(cid))
        assert not os.path.exists(root / "exec/volume-subpaths" / cid)
    for cid in ("c1", "c2", "c3", "c4"):
        run(svc.release(cid, remove_anonymous=False))
    run(svc.remove("sub"))


def test_prune_and_df_take_plain_local_volumes_only(root):
    """moby's prune and df: the local driver's volumes without mount options (a tmpfs volume's
    size is not this disk's); ``all`` is one Go boolean."""
    svc, db, _ = make(root)
    try:
        run(svc.create(CreateRequest(name="plain")))
        run(svc.create(CreateRequest(name="scratch", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})))
        (root / "data/volumes/plain/_data/f").write_bytes(b"12345")
        assert {v.name: v.usage_data.size for v in svc.disk_usage()} == {"plain": 5}
        for bad, message in [(["true", "false"], r"invalid filter 'all=\[true false\]': only one value is expected"),
                             (["yes"], r'invalid filter \'all\': strconv.ParseBool: parsing "yes": invalid syntax')]:
            with pytest.raises(errdefs.InvalidParameter, match=message):
                run(svc.prune({"all": bad}))
        assert run(svc.prune({"all": ["False"]})).volumes_deleted is None  # named volumes stay
        pruned = run(svc.prune({"all": ["T"]}))
        assert pruned.volumes_deleted == ["plain"] and pruned.space_reclaimed == 5
        assert [v.name for v in run(svc.list({})).volumes] == ["scratch"]
        run(svc.remove("scratch"))
    finally:
        db.close()


def test_read_only_bind_modes_by_api_version_and_runtime(root):
    """A read-only bind is "rro" where the kernel and the runtime can (runc: its ``features``),
    else quietly "ro"; bind-recursive=readonly refuses a runtime without it; a client before API
    1.44 gets non-recursive read-only binds and may not force recursion."""
    from tests.unit.test_volume_rro import _fake_runc

    if kernel.supports_recursive_readonly():
        pytest.skip("this kernel has no mount_setattr")
    svc, db, _ = make(root)
    src = root / "src"
    src.mkdir()
    forced = {"Type": "bind", "Source": str(src), "Target": "/f", "ReadOnly": True,
              "BindOptions": {"ReadOnlyForceRecursive": True}}
    try:
        norro = _fake_runc(str(root), '{"mountOptions": ["rbind", "ro"]}', "norro")
        withrro = _fake_runc(str(root), '{"mountOptions": ["rbind", "ro", "rro"]}', "withrro")
        svc.resolve_mounts("c1", HostConfig(binds=[f"{src}:/m:ro"]), None, [], no_lookup)
        modes = lambda cid, runtime: [m.options[-1] for m in run(svc.mount(cid, runtime))]  # noqa: E731
        assert modes("c1", "dockyard") == ["rro"] and modes("c1", withrro) == ["rro"]
        assert modes("c1", norro) == ["ro"]
        svc.resolve_mounts("c2", HostConfig(mounts=[forced]), None, [], no_lookup)
        assert modes("c2", withrro) == ["rro"]
        with pytest.raises(errdefs.InvalidParameter, match='rro is not supported by runtime "norro"'):
            run(svc.mount("c2", norro))
        # API < 1.44: -v ...:ro and --mount readonly stay non-recursive; forcing is refused
        svc.resolve_mounts("c3", HostConfig(binds=[f"{src}:/m:ro"], mounts=[
            {"Type": "bind", "Source": str(src), "Target": "/n", "ReadOnly": True}]), None, [], no_lookup,
            default_read_only_non_recursive=True)
        assert modes("c3", "dockyard") == ["ro", "ro"]
        with pytest.raises(errdefs.InvalidParameter, match="BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"):
            svc.resolve_mounts("c4", HostConfig(mounts=[forced]), None, [], no_lookup,
                               default_read_only_non_recursive=True)
        assert svc.mount_points("c4") == []
        for cid in ("c1", "c2", "c3"):
            run(svc.release(cid, remove_anonymous=True))
    finally:
        db.close()
