"""Docker's reference grammar, --change rules, filters and archive-format parsing."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from dockyard import errdefs
from dockyard.daemon.images import archive_read, changes, filters, references
from dockyard.oci import image_spec as spec


@pytest.mark.parametrize("text, normalized, familiar", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("user/app", "docker.io/user/app", "user/app"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", "busybox"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost/x", "localhost/x", "localhost/x"),
    ("example.com/a/b/c", "example.com/a/b/c", "example.com/a/b/c"),
    ("a@sha256:" + "0" * 64, "docker.io/library/a@sha256:" + "0" * 64, "a@sha256:" + "0" * 64),
    ("my_app-1.x__y", "docker.io/library/my_app-1.x__y", "my_app-1.x__y"),
])
def test_parse_and_familiar(text, normalized, familiar):
    ref = references.parse(text)
    assert str(ref) == normalized
    assert ref.familiar() == familiar


def test_default_tag():
    assert str(references.parse_tagged("busybox")) == "docker.io/library/busybox:latest"
    assert references.parse_tagged("busybox@sha256:" + "a" * 64).tag is None
    assert references.familiar("docker.io/library/busybox:latest") == "busybox:latest"


@pytest.mark.parametrize("text, message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("a:b:c", "invalid reference format"),
    ("", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("z" * 64, None),
    ("0" * 64, "invalid repository name (" + "0" * 64 + "), cannot specify 64-byte hexadecimal strings"),
])
def test_invalid(text, message):
    if message is None:
        references.parse(text)  # 64 letters that are not all hex digits are a valid name
        return
    with pytest.raises(errdefs.InvalidParameter) as err:
        references.parse(text)
    assert str(err.value) == message


def test_repo_tag():
    assert references.parse_repo_tag("localhost:5000/x", "v2").familiar() == "localhost:5000/x:v2"
    assert references.parse_repo_tag("x:v1", "").familiar() == "x:v1"
    assert references.parse_repo_tag("x", "").familiar() == "x:latest"
    with pytest.raises(errdefs.InvalidParameter):
        references.parse_repo_tag("x", "bad tag")


def test_changes():
    config = changes.apply(spec.ContainerConfig(cmd=["old"], env=["A=0", "B=1"]), [
        "ENV A=1", "ENV C hello world", "EXPOSE 8080-8081/TCP", "WORKDIR /a", "WORKDIR b",
        'VOLUME ["/v1", "/v2"]', "LABEL a=b", "ONBUILD RUN true", "ENTRYPOINT [\"/e\"]"])
    assert config.env == ["B=1", "A=1", "C=hello world"]
    assert config.exposed_ports == {"8080-8081/tcp": {}}
    assert config.working_dir == "/a/b"
    assert config.volumes == {"/v1": {}, "/v2": {}}
    assert config.labels == {"a": "b"} and config.on_build == ["RUN true"]
    assert config.entrypoint == ["/e"] and config.cmd is None  # inherited CMD reset by ENTRYPOINT
    assert changes.apply(spec.ContainerConfig(), ["CMD echo hi"]).cmd == ["/bin/sh", "-c", "echo hi"]
    with pytest.raises(errdefs.InvalidParameter, match="COPY is not a valid change command"):
        changes.apply(spec.ContainerConfig(), ["COPY a b"])


def test_filters():
    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'dangling=maybe'"):
        filters.dangling({"dangling": ["maybe"]})
    assert filters.dangling({"dangling": ["1"]}) is True and filters.dangling({}) is None
    assert filters.parse_created("1970-01-01T00:00:01.5Z") == 1.5
    assert filters.parse_created("2026-11-29T00:14:42.968866867Z") == pytest.approx(1795911282.968866867)
    assert filters.reference_match(["docker.io/library/busybox:latest"], ["busybox"])
    assert filters.reference_match(["docker.io/library/busybox:latest"], ["busy*:lat?st"])
    assert not filters.reference_match(["docker.io/user/app:1"], ["*"])  # * never crosses a slash
    assert filters.reference_match(["docker.io/user/app:1"], ["*/*"])
    assert filters.labels_match({"a": "1", "b": ""}, ["a=1", "b"]) and not filters.labels_match({}, ["a"])


def _tar(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    buf.seek(0)
    return buf


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def test_archive_formats():
    import hashlib
    hexd = hashlib.sha256(CONFIG).hexdigest()
    manifest = json.dumps([{"Config": f"{hexd}.json", "RepoTags": ["a:1"], "Layers": []}]).encode()
    images = archive_read.read_archive(_tar({"manifest.json": manifest, f"{hexd}.json": CONFIG}))
    assert images[0].id == "sha256:" + hexd and [n.familiar() for n in images[0].names] == ["a:1"]
    # OCI layout, bare tag annotation: the image loads without a name
    m = spec.encode(spec.Manifest(config=spec.Descriptor(spec.OCI_CONFIG, "sha256:" + hexd, len(CONFIG)),
                                  media_type=spec.OCI_MANIFEST))
    mhex = hashlib.sha256(m).hexdigest()
    index = spec.encode(spec.Index(manifests=[spec.Descriptor(spec.OCI_MANIFEST, "sha256:" + mhex, len(m),
                                                              annotations={spec.ANNOTATION_REF_NAME: "latest"})]))
    images = archive_read.read_archive(_tar({"index.json": index, f"blobs/sha256/{mhex}": m,
                                            f"blobs/sha256/{hexd}": CONFIG}))
    assert images[0].names == []


@pytest.mark.parametrize("files, symlinks, message", [
    ({"x": b"1"}, None, "neither manifest.json"),
    ({"../manifest.json": b"[]"}, None, "points outside the archive"),
    ({"manifest.json": b"[{\"Config\": \"../../etc/passwd\"}]"}, None, "points outside the archive"),
    ({"manifest.json": b"[{\"Config\": \"c.json\"}]"}, {"c.json": "../../etc/passwd"}, "links outside"),
    ({"manifest.json": b"[{\"Config\": \"c.json\"}]"}, {"c.json": "/etc/passwd"}, "links outside"),
    ({"manifest.json": b"{not json"}, None, "manifest.json"),
    ({"manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode(), "c.json": CONFIG,
      "l.tar": b""}, None, "config lists 0 layers, manifest 1"),
])
def test_archive_refusals(files, symlinks, message):
    with pytest.raises(errdefs.InvalidParameter, match=message):
        archive_read.read_archive(_tar(files, symlinks))


def test_blob_digest_checked():
    bad = b"not the config"
    with pytest.raises(errdefs.InvalidParameter, match="does not match"):
        archive_read.read_archive(_tar({"index.json": spec.encode(spec.Index(manifests=[
            spec.Descriptor(spec.OCI_MANIFEST, "sha256:" + "1" * 64, len(bad))])), "blobs/sha256/" + "1" * 64: bad}))


def test_docker25_legacy_paths_are_symlinks_into_blobs():
    """Docker 25+ archives: ``<id>/layer.tar`` is a symlink to ``../blobs/sha256/<diff>``."""
    import hashlib
    layer = _tar({"hello": b"hi"}).getvalue()
    diff = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode()
    chex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"blobs/sha256/{chex}", "RepoTags": ["x:1"],
                            "Layers": [f"{'a' * 64}/layer.tar"]}]).encode()
    archive = _tar({"manifest.json": manifest, f"blobs/sha256/{chex}": config, f"blobs/sha256/{diff}": layer},
                   {f"{'a' * 64}/layer.tar": f"../blobs/sha256/{diff}"})
    image = archive_read.read_archive(archive)[0]
    assert image.id == "sha256:" + chex
    reader = image.layers[0].open()
    assert reader.read() == layer and reader.read() == b""
