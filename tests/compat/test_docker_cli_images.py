"""The real docker CLI 28 driving dockyardd: images, archives made by Docker and skopeo."""

import json
import subprocess
import tarfile
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
if not FIXTURES.exists():
    FIXTURES = Path("/work/shared/fixtures")


def ok(d, *args, input=None, timeout=120):
    r = d.docker(*args, input=input, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def test_images_lists_busybox(dockyardd):
    out = ok(dockyardd, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")
    assert any(line.startswith("busybox:latest ") for line in out.splitlines())
    table = ok(dockyardd, "images").splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]


def _check_whiteouts_image(d, ref):
    assert ok(d, "run", "--rm", ref) == "layer two\n"
    script = ("ls /opaque; test -e /etc/removed-later && echo present; stat -c %h /keep; "
              "readlink /symlink; test -p /fifo && echo fifo; cat /dir/sub/f; echo $FIXTURE")
    out = ok(d, "run", "--rm", ref, "sh", "-c", script).split()
    assert out == ["new", "2", "/keep", "fifo", "deep", "1"]
    labels = json.loads(ok(d, "image", "inspect", "-f", "{{json .Config.Labels}}", ref))
    assert labels == {"org.example.fixture": "whiteouts"}


def test_load_docker_archive_made_by_docker(dockyardd):
    out = ok(dockyardd, "load", "-i", str(FIXTURES / "whiteouts-docker-save.tar"))
    assert "Loaded image: fixture/whiteouts:1" in out
    _check_whiteouts_image(dockyardd, "fixture/whiteouts:1")


def test_load_oci_archive_made_by_skopeo(dockyardd):
    ok(dockyardd, "load", "-i", str(FIXTURES / "whiteouts-oci.tar"))
    ok(dockyardd, "tag", "fixture/whiteouts:1", "fixture/whiteouts:oci")
    _check_whiteouts_image(dockyardd, "fixture/whiteouts:oci")


def test_save_load_round_trip_keeps_the_id(dockyardd, tmp_path):
    image_id = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    out = tmp_path / "bb.tar"
    ok(dockyardd, "save", "-o", str(out), "busybox:latest")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    ok(dockyardd, "tag", "busybox", "roundtrip:1")
    ok(dockyardd, "rmi", "roundtrip:1")
    loaded = ok(dockyardd, "load", "-i", str(out))
    assert "busybox:latest" in loaded
    assert ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", "busybox").strip() == image_id


def test_tag_rmi_untag_semantics_and_conflict(dockyardd):
    ok(dockyardd, "tag", "busybox", "mytag:1")
    out = ok(dockyardd, "rmi", "mytag:1")
    assert out.strip() == "Untagged: mytag:1"
    name = "user-%d" % time.monotonic_ns()
    ok(dockyardd, "tag", "busybox", "inuse:1")
    ok(dockyardd, "create", "--name", name, "inuse:1", "true")
    try:
        # another tag still points at the image: removing this one only untags
        assert ok(dockyardd, "rmi", "inuse:1").strip() == "Untagged: inuse:1"
        image_id = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
        r = dockyardd.docker("rmi", image_id)
        assert r.returncode == 1 and b"conflict" in r.stderr.lower()
    finally:
        ok(dockyardd, "rm", name)


def test_history_and_inspect_shape(dockyardd):
    info = json.loads(ok(dockyardd, "image", "inspect", "busybox"))[0]
    for key in ("Id", "RepoTags", "Created", "Config", "Architecture", "Os", "Size", "RootFS", "GraphDriver"):
        assert key in info
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) >= 1
    assert info["Config"]["Cmd"] == ["sh"]
    hist = ok(dockyardd, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "fixture/whiteouts:1"
              ) if ok(dockyardd, "images", "-q", "fixture/whiteouts:1").strip() else ""
    if hist:
        assert "cat /two.txt" in hist


def test_import_with_change_and_export(dockyardd, tmp_path):
    rootfs = tmp_path / "r"
    (rootfs / "bin").mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(rootfs / "bin/busybox")], check=True)
    (rootfs / "bin/sh").symlink_to("busybox")
    (rootfs / "hello.txt").write_text("imported\n")
    tarball = tmp_path / "r.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    out = ok(dockyardd, "import", "-c", 'CMD ["/bin/sh", "-c", "/bin/busybox cat /hello.txt"]',
             str(tarball), "imported:1")
    assert out.startswith("sha256:")
    assert ok(dockyardd, "run", "--rm", "imported:1") == "imported\n"
    name = "exp-%d" % time.monotonic_ns()
    ok(dockyardd, "create", "--name", name, "imported:1")
    try:
        exported = tmp_path / "e.tar"
        ok(dockyardd, "export", "-o", str(exported), name)
        with tarfile.open(exported) as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert "hello.txt" in names and "bin/busybox" in names
    finally:
        ok(dockyardd, "rm", name)


def test_commit_makes_a_new_layer(dockyardd):
    name = "cm-%d" % time.monotonic_ns()
    ok(dockyardd, "run", "--name", name, "busybox", "sh", "-c", "echo committed > /c.txt")
    try:
        ok(dockyardd, "commit", "-c", "ENV COMMITTED=yes", name, "committed:1")
        out = ok(dockyardd, "run", "--rm", "committed:1", "sh", "-c", "cat /c.txt; echo $COMMITTED")
        assert out == "committed\nyes\n"
    finally:
        dockyardd.docker("rm", "-f", name)


def test_corrupt_archive_is_refused_and_leaves_nothing(dockyardd, tmp_path):
    before = ok(dockyardd, "images", "-aq", "--no-trunc")
    good = (FIXTURES / "busybox-docker-save.tar").read_bytes()
    bad = tmp_path / "trunc.tar"
    bad.write_bytes(good[: len(good) // 2])
    r = dockyardd.docker("load", "-i", str(bad))
    assert r.returncode != 0
    assert ok(dockyardd, "images", "-aq", "--no-trunc") == before
