"""The hub with clients no one here wrote: Debian's skopeo (copy in and out, inspect) and
ORAS (the oras Python SDK) for artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.daemon_harness import VENV_BIN
from tests.integration.tempdirs import temp_dir

SKOPEO = shutil.which("skopeo")


@pytest.fixture
def workdir():
    with temp_dir("dyhub-interop-") as d:
        yield d


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, timeout=120)


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (apt-get install skopeo)")
def test_skopeo_copy_in_inspect_and_out(hub, workdir):
    archive = workdir / "busybox.tar"
    subprocess.run([str(VENV_BIN / "dockyard-mkimage"), "busybox", "-o", str(archive)], check=True,
                   capture_output=True, timeout=120)
    ref = f"docker://{hub.host}/sk/busybox:latest"
    copied = skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", ref)
    assert copied.returncode == 0, copied.stderr.decode() + hub.log()
    inspected = skopeo("inspect", "--tls-verify=false", ref)
    assert inspected.returncode == 0, inspected.stderr.decode()
    info = json.loads(inspected.stdout)
    assert info["Name"] == f"{hub.host}/sk/busybox" and info["RepoTags"] == ["latest"]
    digest = info["Digest"]
    assert hub.request("HEAD", "/v2/sk/busybox/manifests/latest").headers["docker-content-digest"] == digest
    # out again, as an OCI layout, and into a second repository of the hub (blobs mounted, not re-sent)
    out = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{workdir / 'layout'}:latest")
    assert out.returncode == 0, out.stderr.decode()
    assert (workdir / "layout" / "index.json").exists()
    again = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", ref,
                   f"docker://{hub.host}/sk/copy:1")
    assert again.returncode == 0, again.stderr.decode()
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{hub.host}/sk/copy:1")
    layers = json.loads(raw.stdout)["layers"]
    for layer in layers:
        assert hub.request("HEAD", f"/v2/sk/copy/blobs/{layer['digest']}").status == 200
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{hub.host}/sk/busybox")
    assert json.loads(tags.stdout)["Tags"] == ["latest"]
    deleted = skopeo("delete", "--tls-verify=false", f"docker://{hub.host}/sk/copy:1")
    assert deleted.returncode == 0, deleted.stderr.decode()
    assert hub.request("GET", "/v2/sk/copy/manifests/1").status == 404


def test_oras_push_pull_artifact(hub, workdir):
    oras_provider = pytest.importorskip("oras.provider")
    client = oras_provider.Registry(hostname=hub.host, insecure=True, tls_verify=False)
    payload = workdir / "sbom.json"
    payload.write_text('{"packages": ["busybox"]}')
    os.chdir(workdir)
    try:
        pushed = client.push(target=f"{hub.host}/art/sbom:v1", files=["sbom.json"])
        assert pushed.status_code in (200, 201), pushed.text
        out = workdir / "out"
        files = client.pull(target=f"{hub.host}/art/sbom:v1", outdir=str(out))
    finally:
        os.chdir("/")
    assert [Path(f).read_text() for f in files] == ['{"packages": ["busybox"]}']
    manifest = hub.request("GET", "/v2/art/sbom/manifests/v1",
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
    assert manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] == "sbom.json"
