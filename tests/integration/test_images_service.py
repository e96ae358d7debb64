"""ImageService against real storage: load the fixtures, inspect, tag/rm, prune, import, save."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import msgspec
import pytest

from dockyard import errdefs
from dockyard.daemon.images.archive_read import read_archive
from dockyard.storage.layers import chain_id_of
from tests.integration.image_harness import BUSYBOX_ID, FIXTURES, Harness

WHITEOUTS_ID = "sha256:ae5c5a80006ab77c64baade1da72502325bbb51767844c3961c67336497f242c"
WHITEOUTS_OCI_ID = "sha256:71b73dccfd143993745604a13d293a169bcfa2ac216fbd7035b34e7774473b43"


def test_load_docker_archive_and_inspect(h):
    assert h.load("busybox-docker-save.tar") == ["Loaded image: busybox:latest\n"]
    info = h.service.resolve("busybox")
    assert info.id == BUSYBOX_ID
    assert info.config["Cmd"] == ["sh"]
    assert info.repo_tags == ["busybox:latest"]
    assert (h.service.layer_dirs(info)[0] / "bin" / "busybox").is_file()
    body = msgspec.to_builtins(h.service.inspect("busybox:latest"))
    assert body["Id"] == BUSYBOX_ID
    assert body["RepoTags"] == ["busybox:latest"] and body["RepoDigests"] == []
    assert body["Created"] == "2026-11-29T00:14:42.968866867Z"
    assert body["Comment"] == "Imported from -" and body["Os"] == "linux" and body["Architecture"] == "amd64"
    assert body["RootFS"] == {"Type": "layers", "Layers": [
        "sha256:c4cbd0b9ace2924e28ff24fbcdef3fe07127a75ed530eb67f3e2ef25cd3e1bfb"]}
    assert body["GraphDriver"]["Name"] == "overlay2"
    assert Path(body["GraphDriver"]["Data"]["UpperDir"]).is_dir()
    assert body["Size"] > 1_000_000
    assert ("image", "load", BUSYBOX_ID, {"name": BUSYBOX_ID}) in h.events.seen


def test_resolve_forms(h):
    h.load("busybox-docker-save.tar")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", BUSYBOX_ID,
                BUSYBOX_ID[7:], "d7cd", "sha256:d7c", "d"):
        assert h.service.resolve(ref).id == BUSYBOX_ID, ref
    for missing in ("busybox:2", "nope", "e3"):
        with pytest.raises(errdefs.NotFound, match=f"No such image: {missing}"):
            h.service.resolve(missing)
    with pytest.raises(errdefs.InvalidParameter, match="must be lowercase"):
        h.service.resolve("Busybox")


def test_load_whiteouts_both_formats_same_tree(h):
    assert h.load("whiteouts-docker-save.tar") == ["Loaded image: fixture/whiteouts:1\n"]
    out = h.load("whiteouts-oci.tar")
    # skopeo rewrote the config: another image ID, so the tag moves, as Docker reports it
    assert out[-1] == "Loaded image: fixture/whiteouts:1\n"
    assert f"renaming the old one with ID {WHITEOUTS_ID}" in out[0]
    assert h.service.resolve("fixture/whiteouts:1").id == WHITEOUTS_OCI_ID
    # the same diff IDs: the layers are shared, unpacked once
    assert h.rows("layers") == 5
    top = h.service.layer_dirs(h.service.resolve("fixture/whiteouts:1"))
    assert len(top) == 5
    assert (top[0] / "opaque").is_dir() and os.getxattr(top[0] / "opaque", "trusted.overlay.opaque") == b"y"
    dangling = [s for s in h.service.list() if not s.repo_tags]
    assert [s.id for s in dangling] == [WHITEOUTS_ID]


def test_history_shape(h):
    h.load("whiteouts-docker-save.tar")
    items = msgspec.to_builtins(h.service.history("fixture/whiteouts:1"))
    assert len(items) == 8
    assert items[0]["Id"] == WHITEOUTS_ID and items[0]["Tags"] == ["fixture/whiteouts:1"]
    assert all(item["Id"] == "<missing>" and item["Tags"] is None for item in items[1:])
    assert items[0]["Size"] == 0 and items[-1]["Comment"] == "Imported from -"
    assert items[-1]["Size"] > 1_000_000
    assert items[3]["CreatedBy"].startswith("/bin/sh -c rm /etc/removed-later")
    assert set(items[0]) == {"Id", "Created", "CreatedBy", "Tags", "Size", "Comment"}


def test_list_filters_and_shapes(h):
    h.load("busybox-docker-save.tar")
    h.load("whiteouts-docker-save.tar")
    listed = [msgspec.to_builtins(s) for s in h.service.list()]
    assert [s["RepoTags"] for s in listed] == [["fixture/whiteouts:1"], ["busybox:latest"]]  # newest first
    assert set(listed[0]) == {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
                              "Labels", "Containers"}
    assert listed[0]["Labels"] == {"org.example.fixture": "whiteouts"} and listed[1]["Labels"] == {}
    assert listed[0]["SharedSize"] == -1 and listed[0]["Containers"] == -1
    assert [s.id for s in h.service.list(filters={"reference": ["busy*"]})] == [BUSYBOX_ID]
    assert [s.id for s in h.service.list(filters={"reference": ["fixture/*:1"]})] == [WHITEOUTS_ID]
    assert [s.id for s in h.service.list(filters={"label": ["org.example.fixture=whiteouts"]})] == [WHITEOUTS_ID]
    assert [s.id for s in h.service.list(filters={"since": ["busybox"]})] == [WHITEOUTS_ID]
    assert [s.id for s in h.service.list(filters={"before": ["fixture/whiteouts:1"]})] == [BUSYBOX_ID]
    assert h.service.list(filters={"dangling": ["true"]}) == []
    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'nope'"):
        h.service.list(filters={"nope": ["x"]})
    h.usage.by_image[BUSYBOX_ID] = [("c" * 64, False)]
    shared = {s.id: s for s in h.service.list(shared_size=True)}
    assert shared[BUSYBOX_ID].containers == 1 and shared[WHITEOUTS_ID].containers == 0
    assert shared[BUSYBOX_ID].shared_size == shared[BUSYBOX_ID].size  # its one layer is the base of both
    df = h.service.disk_usage()
    assert df["LayersSize"] == shared[WHITEOUTS_ID].size and len(df["Images"]) == 2
    assert h.service.count() == 2


def test_tag_untag_remove(h):
    h.load("busybox-docker-save.tar")
    h.service.tag("busybox", "localhost:5000/me/box", "v1")
    h.service.tag(BUSYBOX_ID[7:19], "other", "")
    assert sorted(h.service.resolve("busybox").repo_tags) == ["busybox:latest", "localhost:5000/me/box:v1",
                                                               "other:latest"]
    assert ("image", "tag", BUSYBOX_ID, {"name": "localhost:5000/me/box:v1"}) in h.events.seen
    with pytest.raises(errdefs.InvalidParameter, match="invalid reference format"):
        h.service.tag("busybox", "Bad/Name", "x")
    # by ID with several tags: a soft conflict
    with pytest.raises(errdefs.Conflict, match=r"conflict: unable to delete d7cd88ae9820 \(must be forced\) - "
                                               "image is referenced in multiple repositories"):
        h.service.remove(BUSYBOX_ID[7:19])
    # one of several tags: only untagged
    out = msgspec.to_builtins(h.service.remove("other"))
    assert out == [{"Untagged": "other:latest"}]
    out = msgspec.to_builtins(h.service.remove("localhost:5000/me/box:v1"))
    assert out == [{"Untagged": "localhost:5000/me/box:v1"}]
    layer_dirs = h.layer_dirs()
    out = msgspec.to_builtins(h.service.remove("busybox"))
    assert out[0] == {"Untagged": "busybox:latest"} and out[1] == {"Deleted": BUSYBOX_ID}
    assert {"Deleted": "sha256:c4cbd0b9ace2924e28ff24fbcdef3fe07127a75ed530eb67f3e2ef25cd3e1bfb"} in out
    assert h.rows("images") == 0 and h.rows("layers") == 0 and h.rows("refs") == 0
    assert len(layer_dirs) == 1 and h.layer_dirs() == []
    assert h.events.actions()[-2:] == ["untag", "delete"]
    with pytest.raises(errdefs.NotFound, match="No such image: busybox"):
        h.service.remove("busybox")


def test_remove_conflicts_with_containers(h):
    h.load("busybox-docker-save.tar")
    h.usage.by_image[BUSYBOX_ID] = [("abc123" + "0" * 58, True)]
    with pytest.raises(errdefs.Conflict) as err:
        h.service.remove("busybox")
    assert str(err.value) == ('conflict: unable to remove repository reference "busybox" (must force) - '
                              "container abc123000000 is using its referenced image d7cd88ae9820")
    with pytest.raises(errdefs.Conflict) as err:
        h.service.remove(BUSYBOX_ID, force=True)
    assert str(err.value) == ("conflict: unable to delete d7cd88ae9820 (cannot be forced) - "
                              "image is being used by running container abc123000000")
    # forcing a reference away from a used image only untags it
    assert msgspec.to_builtins(h.service.remove("busybox", force=True)) == [{"Untagged": "busybox:latest"}]
    assert h.rows("images") == 1
    h.usage.by_image[BUSYBOX_ID] = [("abc123" + "0" * 58, False)]
    with pytest.raises(errdefs.Conflict, match=r"\(must be forced\) - image is being used by stopped container"):
        h.service.remove(BUSYBOX_ID)
    out = msgspec.to_builtins(h.service.remove(BUSYBOX_ID, force=True))
    assert out[0] == {"Deleted": BUSYBOX_ID}


def test_prune(h):
    h.load("whiteouts-docker-save.tar")
    h.load("whiteouts-oci.tar")  # leaves the docker-archive image dangling
    h.load("busybox-docker-save.tar")
    report = msgspec.to_builtins(h.service.prune())
    assert report["ImagesDeleted"] == [{"Deleted": WHITEOUTS_ID}]  # its layers are shared: none freed
    assert report["SpaceReclaimed"] == 0
    assert h.service.prune().images_deleted is None
    report = h.service.prune({"dangling": ["false"], "label": ["org.example.fixture"]})
    deleted = [r.deleted for r in report.images_deleted if r.deleted]
    assert WHITEOUTS_OCI_ID in deleted and report.space_reclaimed > 0
    assert h.rows("images") == 1 and h.rows("layers") == 1
    assert h.events.seen[-1][:2] == ("image", "prune")


def _rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("hello.txt", b"hi\n"), ("etc/motd", b"motd\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_import_with_changes(h):
    out = h.service.import_image(io.BytesIO(_rootfs_tar()), repo="imported", tag_name="v1", message="from test",
                                 changes=['CMD ["/bin/app", "-x"]', "ENV A=1 B=two", "EXPOSE 80 53/udp",
                                          'LABEL x=y "z w"=v', "USER nobody", "VOLUME /data",
                                          "WORKDIR /srv", "STOPSIGNAL SIGINT", "ENTRYPOINT /init"])
    image_id = out[0].status
    assert image_id.startswith("sha256:")
    body = msgspec.to_builtins(h.service.inspect("imported:v1"))
    config = body["Config"]
    assert config["Cmd"] == ["/bin/app", "-x"]  # CMD set in the same changes survives ENTRYPOINT
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/init"]
    assert config["Env"] == ["A=1", "B=two"] and config["User"] == "nobody"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"x": "y", "z w": "v"} and config["Volumes"] == {"/data": {}}
    assert config["WorkingDir"] == "/srv" and config["StopSignal"] == "SIGINT"
    assert body["Comment"] == "from test" and len(body["RootFS"]["Layers"]) == 1
    raw = h.db.query("SELECT config FROM images WHERE id = ?", (image_id,))[0][0]
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image_id
    assert h.events.actions()[-2:] == ["import", "tag"]
    with pytest.raises(errdefs.InvalidParameter, match="RUN is not a valid change command"):
        h.service.import_image(io.BytesIO(_rootfs_tar()), changes=["RUN true"])


def test_save_load_round_trip(h, tmp_path):
    h.load("whiteouts-docker-save.tar")
    h.load("busybox-docker-save.tar")
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as f:
        for chunk in h.service.save(["busybox", "fixture/whiteouts:1"]):
            f.write(chunk)
    with tarfile.open(saved) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert [m["RepoTags"] for m in manifest] == [["busybox:latest"], ["fixture/whiteouts:1"]]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    other = Harness(tmp_path / "other")
    try:
        with open(saved, "rb") as f:
            assert [m.stream for m in other.service.load(f)] == [
                "Loaded image: busybox:latest\n", "Loaded image: fixture/whiteouts:1\n"]
        assert other.service.resolve("busybox").id == BUSYBOX_ID
        assert other.service.resolve("fixture/whiteouts:1").id == WHITEOUTS_ID
    finally:
        other.db.close()
    with pytest.raises(errdefs.NotFound):
        h.service.save(["nope"])


def _evil(tmp_path: Path, how: str) -> Path:
    """A docker-archive made from the busybox fixture, then broken in one way."""
    src = tarfile.open(FIXTURES / "whiteouts-docker-save.tar")
    out = tmp_path / f"{how}.tar"
    with tarfile.open(out, "w") as tar:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if how == "escape-layer" and member.name.endswith("layer.tar") and member.size == 6656:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as layer:
                    info = tarfile.TarInfo("../../escaped")
                    info.size = 3
                    layer.addfile(info, io.BytesIO(b"bad"))
                data = buf.getvalue()
                member.size = len(data)
            if how == "escape-manifest" and member.name == "manifest.json":
                entries = json.loads(data)
                entries[0]["Layers"][-1] = "../../../etc/passwd"
                data = json.dumps(entries).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    if how == "truncated":
        with open(out, "r+b") as f:
            f.truncate(os.path.getsize(out) - 700_000)
    return out


@pytest.mark.parametrize("how", ["escape-layer", "escape-manifest", "truncated"])
def test_evil_archives_leave_nothing(h, tmp_path, how):
    archive = _evil(tmp_path, how)
    with open(archive, "rb") as f, pytest.raises(errdefs.InvalidParameter):
        h.service.load(f)
    assert h.rows("images") == 0 and h.rows("refs") == 0 and h.rows("layers") == 0
    assert h.layer_dirs() == []
    assert not (tmp_path.parent / "escaped").exists()
    # the store still works afterwards
    assert h.load("whiteouts-docker-save.tar") == ["Loaded image: fixture/whiteouts:1\n"]


def test_recover_releases_layers_of_an_image_never_added(h):
    h.load("busybox-docker-save.tar")
    with open(FIXTURES / "whiteouts-oci.tar", "rb") as f:  # as if the daemon died before the image row
        image = read_archive(f)[0]
        parent = None
        for index, layer in enumerate(image.layers):
            diff_id = msgspec.json.decode(image.config)["rootfs"]["diff_ids"][index]
            chain = chain_id_of(parent, diff_id)
            if not h.layers.exists(chain):
                h.layers.register(layer.open(), parent, expected_diff_id=diff_id)
            parent = chain
    assert h.rows("layers") == 5
    removed = h.service.recover()
    assert len(removed) == 4 and h.rows("layers") == 1  # busybox's base layer stays
    assert h.service.resolve("busybox").top_chain_id == h.db.query("SELECT chain_id FROM layers")[0][0]
