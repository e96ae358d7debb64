"""The hub as a pull-through cache (``--proxy-remote-url``): a mirror of another registry that
dockyardd uses through ``--registry-mirror``, serving from its cache when upstream is gone."""

from __future__ import annotations

import pytest

from tests import daemon_harness
from tests.integration import registry_hub as rh
from tests.integration.test_registry_api import push_image, sha


@pytest.fixture
def upstream():
    with rh.running() as h:
        yield h


@pytest.fixture
def mirror(upstream):
    with rh.running("--proxy-remote-url", f"http://{upstream.host}") as h:
        yield h


def test_pull_through_and_offline_cache(upstream, mirror):
    digest, body = push_image(upstream, "library/app", "1", [b"upstream layer"])
    got = mirror.request("GET", "/v2/library/app/manifests/1")
    assert got.status == 200 and got.body == body and got.headers["docker-content-digest"] == digest
    assert mirror.request("GET", f"/v2/library/app/blobs/{sha(b'upstream layer')}").body == b"upstream layer"
    assert mirror.request("GET", f"/v2/library/app/blobs/{sha(b'absent')}").code == "BLOB_UNKNOWN"
    assert mirror.request("POST", "/v2/library/app/blobs/uploads/").code == "UNSUPPORTED"
    # a new tag upstream is seen at once; with upstream gone, the cache still answers
    new_digest, _ = push_image(upstream, "library/app", "1", [b"newer layer"])
    assert mirror.request("HEAD", "/v2/library/app/manifests/1").headers["docker-content-digest"] == new_digest
    assert mirror.request("GET", f"/v2/library/app/blobs/{sha(b'newer layer')}").status == 200
    rh.stop(upstream)
    assert mirror.request("GET", "/v2/library/app/manifests/1").headers["docker-content-digest"] == new_digest
    assert mirror.request("GET", f"/v2/library/app/blobs/{sha(b'newer layer')}").body == b"newer layer"


def test_dockyardd_pulls_docker_hub_names_through_the_mirror(dockyardd, upstream, mirror):
    # upstream stands in for Docker Hub: it holds library/busybox
    name = f"{upstream.host}/library/busybox:latest"
    dockyardd.docker("tag", "busybox", name, check=True)
    try:
        assert dockyardd.docker("push", name, timeout=120).returncode == 0
    finally:
        dockyardd.docker("rmi", name)
    handle = daemon_harness.new_daemon(["--registry-mirror", f"http://{mirror.host}"])
    try:
        pull = handle.docker("pull", "busybox", timeout=120)
        assert pull.returncode == 0, pull.stderr.decode() + mirror.log()
        assert "docker.io/library/busybox:latest" in pull.stdout.decode()
        assert mirror.request("GET", "/v2/_catalog").json() == {"repositories": ["library/busybox"]}
    finally:
        daemon_harness.destroy(handle)
