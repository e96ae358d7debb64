"""Manifest decoding, platform parsing and selection, endpoints, credentials, progress text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from dockyard.daemon.distribution import manifests
from dockyard.daemon.distribution.credentials import credentials, registry_domain
from dockyard.daemon.distribution.progress import bar, human_size
from dockyard.daemon.distribution.pull import reference
from dockyard.distribution.endpoints import Endpoints, RegistrySettings
from dockyard.oci import image_spec as spec
from dockyard.oci import platform as platforms

D = "sha256:" + "a" * 64


def _index(*platforms: dict) -> spec.Index:
    return spec.Index(manifests=[spec.Descriptor(media_type=spec.OCI_MANIFEST, digest="sha256:" + str(i) * 64,
                                                 size=1, platform=spec.Platform(**p))
                                 for i, p in enumerate(platforms)])


def test_parse_platform():
    assert str(platforms.parse_platform("linux/arm64/v8")) == "linux/arm64"
    assert str(platforms.parse_platform("linux/arm")) == "linux/arm/v7"
    assert str(platforms.parse_platform("linux/x86_64")) == "linux/amd64"
    assert platforms.parse_platform("") == platforms.host_platform()
    with pytest.raises(errdefs.InvalidParameter):
        platforms.parse_platform("linux//")


def test_select_prefers_exact_variant_then_lower():
    index = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
                   {"os": "linux", "architecture": "arm", "variant": "v7"},
                   {"os": "linux", "architecture": "amd64"})
    assert manifests.select(index, platforms.parse_platform("linux/arm/v7")).digest == "sha256:" + "1" * 64
    assert manifests.select(index, platforms.parse_platform("linux/arm/v8")).digest == "sha256:" + "1" * 64
    assert manifests.select(index, platforms.parse_platform("linux/amd64")).digest == "sha256:" + "2" * 64
    with pytest.raises(errdefs.NotFound, match="no matching manifest for linux/arm/v5 in the manifest list entries"):
        manifests.select(index, platforms.parse_platform("linux/arm/v5"))


def test_decode_refuses_unknown_and_schema1():
    with pytest.raises(errdefs.InvalidParameter, match="unsupported manifest media type and no default available"):
        manifests.decode("application/x-foo", b'{"x": 1}')
    with pytest.raises(errdefs.InvalidParameter, match="schema 1 has been removed"):
        manifests.decode("application/vnd.docker.distribution.manifest.v1+prettyjws", b"{}")
    bad_layer = json.dumps({"schemaVersion": 2, "config": {"mediaType": spec.DOCKER_CONFIG, "digest": D, "size": 1},
                            "layers": [{"mediaType": "application/x-tar-ish", "digest": D, "size": 1}]}).encode()
    with pytest.raises(errdefs.InvalidParameter, match="unsupported media type application/x-tar-ish"):
        manifests.decode(spec.DOCKER_MANIFEST, bad_layer)
    # a registry that says application/json: the document's own mediaType decides
    doc = json.dumps({"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": []}).encode()
    assert isinstance(manifests.decode("application/json", doc), spec.Index)


def test_reference_from_api_parameters():
    assert str(reference("busybox", "latest")) == "docker.io/library/busybox:latest"
    assert str(reference("busybox", D)) == f"docker.io/library/busybox@{D}"
    assert str(reference("localhost:5000/a/b:old", "new")) == "localhost:5000/a/b:new"
    assert reference("busybox", "").tag is None  # every tag (pull -a)
    with pytest.raises(errdefs.InvalidParameter):
        reference("busybox", "sha256:xyz")


def test_insecure_registries_and_endpoints(tmp_path: Path):
    e = Endpoints(RegistrySettings(insecure_registries=["myreg:5000", "10.1.0.0/16"], certs_dir=tmp_path))
    assert e.is_insecure("127.0.0.1:5000") and e.is_insecure("localhost:5000")
    assert e.is_insecure("myreg:5000") and e.is_insecure("10.1.2.3:443")
    assert not e.is_insecure("10.2.0.1:5000")
    assert [p.url for p in e.for_pull("docker.io")] == ["https://registry-1.docker.io"]
    assert [p.url for p in e.for_pull("localhost:5000")] == ["https://localhost:5000", "http://localhost:5000"]
    assert [p.url for p in e.for_pull("10.2.0.1:5000")] == ["https://10.2.0.1:5000"]
    mirrored = Endpoints(RegistrySettings(mirrors=["http://127.0.0.1:5555/"], certs_dir=tmp_path))
    assert [(p.url, p.mirror) for p in mirrored.for_pull("docker.io")] == [
        ("http://127.0.0.1:5555", True), ("https://registry-1.docker.io", False)]
    assert [p.url for p in mirrored.for_push("docker.io")] == ["https://registry-1.docker.io"]


def test_credentials_and_server_addresses():
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("") == "docker.io"
    assert registry_domain("http://localhost:5000/") == "localhost:5000"
    creds = credentials(AuthConfig(auth="dTpw"))  # base64("u:p")
    assert (creds.username, creds.password) == ("u", "p")


def test_progress_text():
    assert human_size(527) == "527B"
    assert human_size(1_099_814) == "1.1MB"
    assert human_size(2_129_920) == "2.13MB"
    text = bar(50, 100, 0)
    assert text.startswith("[" + "=" * 25 + ">" + " " * 25 + "] ")
    assert "50B/100B" in text
