"""The hub's distribution API over HTTP (OCI distribution spec 1.1): pull, push, content
discovery and management, with the spec's errors for bad input and faults."""

from __future__ import annotations

import hashlib
import json
import socket
import threading

import pytest

from tests.integration import registry_hub as rh

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(hub, repo: str, data: bytes) -> str:
    digest = sha(data)
    reply = hub.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert reply.status == 201, reply.body
    return digest


def push_image(hub, repo: str, tag: str, layers: list[bytes], media_type: str = OCI_MANIFEST,
               extra: dict | None = None) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "history": [{"created_by": "test"}],
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_type = "application/vnd.oci.image.config.v1+json" if media_type == OCI_MANIFEST \
        else "application/vnd.docker.container.image.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": media_type,
                "config": {"mediaType": config_type, "digest": push_blob(hub, repo, config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": push_blob(hub, repo, l),
                            "size": len(l)} for l in layers], **(extra or {})}
    body = json.dumps(manifest).encode()
    reply = hub.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": media_type})
    assert reply.status == 201, reply.body
    assert reply.headers["docker-content-digest"] == sha(body)
    return sha(body), body


def test_base_and_headers(hub):
    reply = hub.request("GET", "/v2/")
    assert reply.status == 200
    assert reply.headers["docker-distribution-api-version"] == "registry/2.0"
    assert hub.request("GET", "/healthz").json() == {"status": "ok"}


def test_chunked_upload_status_and_out_of_order(hub):
    data = b"a" * 1000 + b"b" * 1000
    start = hub.request("POST", "/v2/c/blobs/uploads/")
    assert start.status == 202 and start.headers["range"] == "0-0"
    location = start.headers["location"]
    first = hub.request("PATCH", location, data[:1000], {"Content-Range": "0-999",
                                                           "Content-Type": "application/octet-stream"})
    assert first.status == 202 and first.headers["range"] == "0-999"
    # a chunk that does not start where the upload ends: 416 and the upload is unchanged
    skipped = hub.request("PATCH", location, data[1000:1500], {"Content-Range": "1200-1699"})
    assert skipped.status == 416 and skipped.headers["range"] == "0-999"
    status = hub.request("GET", location)
    assert status.status == 204 and status.headers["range"] == "0-999"
    hub.request("PATCH", location, data[1000:], {"Content-Range": "1000-1999"})
    done = hub.request("PUT", f"{location}?digest={sha(data)}")
    assert done.status == 201 and done.headers["docker-content-digest"] == sha(data)
    assert hub.request("GET", f"/v2/c/blobs/{sha(data)}").body == data
    assert hub.request("GET", location).code == "BLOB_UPLOAD_UNKNOWN"


def test_monolithic_post_put_and_wrong_digest(hub):
    data = b"monolithic"
    start = hub.request("POST", "/v2/m/blobs/uploads/")
    wrong = hub.request("PUT", f"{start.headers['location']}?digest={sha(b'other')}", data)
    assert (wrong.status, wrong.code) == (400, "DIGEST_INVALID")
    assert hub.request("HEAD", f"/v2/m/blobs/{sha(b'other')}").status == 404
    assert hub.request("HEAD", f"/v2/m/blobs/{sha(data)}").status == 404  # nothing partial is visible
    start = hub.request("POST", "/v2/m/blobs/uploads/")
    assert hub.request("PUT", f"{start.headers['location']}?digest={sha(data)}", data).status == 201
    lying = hub.request("POST", f"/v2/m/blobs/uploads/?digest={sha(b'x' * 10)}", b"x" * 9)
    assert lying.code == "DIGEST_INVALID"
    assert hub.request("GET", "/v2/m/blobs/sha256:" + "0" * 64).code == "BLOB_UNKNOWN"


def test_cancel_upload(hub):
    start = hub.request("POST", "/v2/cancel/blobs/uploads/")
    location = start.headers["location"]
    hub.request("PATCH", location, b"partial")
    assert hub.request("DELETE", location).status == 204
    assert hub.request("PATCH", location, b"more").code == "BLOB_UPLOAD_UNKNOWN"
    assert not any((hub.data / "uploads").iterdir())


def test_range_get(hub):
    digest = push_blob(hub, "r", bytes(range(256)))
    part = hub.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == bytes(range(10, 20))
    assert hub.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=300-400"}).status == 416


def test_cross_repository_mount(hub):
    digest = push_blob(hub, "src/one", b"shared layer")
    mounted = hub.request("POST", f"/v2/dst/two/blobs/uploads/?mount={digest}&from=src/one")
    assert mounted.status == 201 and mounted.headers["location"] == f"/v2/dst/two/blobs/{digest}"
    assert hub.request("HEAD", f"/v2/dst/two/blobs/{digest}").status == 200
    missing = hub.request("POST", f"/v2/dst/two/blobs/uploads/?mount={sha(b'nope')}&from=src/one")
    assert missing.status == 202  # falls back to a new upload, as the spec says
    # one blob stored once
    assert len(list((hub.data / "content" / "blobs" / "sha256").iterdir())) == 1


def test_manifests_tags_accept_and_delete(hub):
    digest, body = push_image(hub, "app", "v1", [b"layer one"], DOCKER_MANIFEST)
    got = hub.request("GET", "/v2/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert got.body == body and got.headers["content-type"] == DOCKER_MANIFEST
    assert hub.request("HEAD", f"/v2/app/manifests/{digest}").headers["content-length"] == str(len(body))
    # a client that accepts only an index does not get a manifest it cannot read
    assert hub.request("GET", "/v2/app/manifests/v1", headers={"Accept": OCI_INDEX}).code == "MANIFEST_UNKNOWN"
    for tag in ("v2", "v3", "v4"):
        hub.request("PUT", f"/v2/app/manifests/{tag}", body, {"Content-Type": DOCKER_MANIFEST})
    page = hub.request("GET", "/v2/app/tags/list?n=2")
    assert page.json()["tags"] == ["v1", "v2"]
    assert page.headers["link"] == '</v2/app/tags/list?n=2&last=v2>; rel="next"'
    assert hub.request("GET", "/v2/app/tags/list?n=2&last=v2").json()["tags"] == ["v3", "v4"]
    assert "link" not in hub.request("GET", "/v2/app/tags/list?n=2&last=v2").headers
    assert hub.request("GET", "/v2/app/tags/list?n=x").status == 400
    # delete by tag untags; delete by digest removes the manifest and its tags
    assert hub.request("DELETE", "/v2/app/manifests/v4").status == 202
    assert hub.request("GET", "/v2/app/tags/list").json()["tags"] == ["v1", "v2", "v3"]
    assert hub.request("DELETE", f"/v2/app/manifests/{digest}").status == 202
    assert hub.request("GET", f"/v2/app/manifests/{digest}").code == "MANIFEST_UNKNOWN"
    assert hub.request("GET", "/v2/app/tags/list").json()["tags"] == []
    assert hub.request("GET", "/v2/nothing/tags/list").code == "NAME_UNKNOWN"


def test_put_by_digest_and_index(hub):
    digest, body = push_image(hub, "multi", "amd", [b"l"])
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    assert hub.request("PUT", f"/v2/multi/manifests/{sha(index)}", index, {"Content-Type": OCI_INDEX}).status == 201
    assert hub.request("PUT", f"/v2/multi/manifests/{sha(b'x')}", index,
                       {"Content-Type": OCI_INDEX}).code == "DIGEST_INVALID"
    dangling = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"absent"), "size": 5}]}).encode()
    assert hub.request("PUT", "/v2/multi/manifests/bad", dangling,
                       {"Content-Type": OCI_INDEX}).code == "MANIFEST_BLOB_UNKNOWN"


def test_manifest_faults(hub):
    missing = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": "x", "digest": sha(b"nope"), "size": 4}, "layers": []}).encode()
    reply = hub.request("PUT", "/v2/f/manifests/t", missing, {"Content-Type": OCI_MANIFEST})
    assert (reply.status, reply.code) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert hub.request("PUT", "/v2/f/manifests/t", b"{not json",
                       {"Content-Type": OCI_MANIFEST}).code == "MANIFEST_INVALID"
    huge = b'{"schemaVersion":2,"pad":"' + b"x" * (5 << 20) + b'"}'
    assert hub.request("PUT", "/v2/f/manifests/t", huge, {"Content-Type": OCI_MANIFEST}).status == 413
    lying_size = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "x", "digest": push_blob(hub, "f", b"cfg"), "size": 99}, "layers": []}).encode()
    assert hub.request("PUT", "/v2/f/manifests/t", lying_size,
                       {"Content-Type": OCI_MANIFEST}).code == "MANIFEST_INVALID"
    assert hub.request("PUT", "/v2/f/manifests/-bad", missing).code == "TAG_INVALID"


def test_manifest_arriving_in_pieces_is_read_whole(hub):
    """dockerd's big manifests sometimes reach the hub in several reads; all of it counts."""
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": push_blob(hub, "pieces", b"l%d" % i),
               "size": len(b"l%d" % i)} for i in range(3)]
    config = push_blob(hub, "pieces", b"cfg")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                       "config": {"mediaType": "x", "digest": config, "size": 3}}).encode()
    with socket.create_connection(("127.0.0.1", hub.port), timeout=30) as s:
        s.sendall(f"PUT /v2/pieces/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:40])
        threading.Event().wait(0.2)  # the first piece is in the server's hands before the rest
        s.sendall(body[40:])
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 201"), reply
    assert hub.request("GET", "/v2/pieces/manifests/v1", headers={"Accept": OCI_MANIFEST}).body == body

@pytest.mark.parametrize("path", ["/v2/UPPER/tags/list", "/v2/a/../b/tags/list", "/v2/a/%2e%2e/b/tags/list",
                                  "/v2/a//b/tags/list", "/v2/_a/tags/list", "/v2/a/blobs/..%2F..%2Fetc",
                                  "/v2/a/blobs/sha256:..%2f..%2f" + "0" * 58])
def test_bad_names_and_traversal(hub, path):
    reply = hub.request("GET", path)
    assert reply.status in (400, 404), (path, reply.status)
    assert reply.code in ("NAME_INVALID", "DIGEST_INVALID", "") or reply.status == 404


def test_referrers_and_subject(hub):
    subject, body = push_image(hub, "art", "v1", [b"payload"])
    artifact = {"subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)},
                "artifactType": "application/vnd.example.sbom"}
    config = b"{}"
    cfg = push_blob(hub, "art", config)
    sbom = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
                       "layers": [], "subject": artifact["subject"]}).encode()
    put = hub.request("PUT", f"/v2/art/manifests/{sha(sbom)}", sbom, {"Content-Type": OCI_MANIFEST})
    assert put.status == 201 and put.headers["oci-subject"] == subject
    listed = hub.request("GET", f"/v2/art/referrers/{subject}")
    assert listed.headers["content-type"].startswith(OCI_INDEX)
    assert [(m["digest"], m["artifactType"]) for m in listed.json()["manifests"]] == \
        [(sha(sbom), "application/vnd.example.sbom")]
    filtered = hub.request("GET", f"/v2/art/referrers/{subject}?artifactType=other")
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"
    hub.request("DELETE", f"/v2/art/manifests/{sha(sbom)}")
    assert hub.request("GET", f"/v2/art/referrers/{subject}").json()["manifests"] == []


def test_blob_delete_and_catalog_pages(hub):
    for name in ("b/one", "a/two", "c/three"):
        push_image(hub, name, "t", [name.encode()])
    assert hub.request("GET", "/v2/_catalog").json()["repositories"] == ["a/two", "b/one", "c/three"]
    page = hub.request("GET", "/v2/_catalog?n=1&last=a/two")
    assert page.json()["repositories"] == ["b/one"] and 'rel="next"' in page.headers["link"]
    digest = sha(b"a/two")
    assert hub.request("DELETE", f"/v2/a/two/blobs/{digest}").status == 202
    assert hub.request("GET", f"/v2/a/two/blobs/{digest}").code == "BLOB_UNKNOWN"
    assert hub.request("HEAD", f"/v2/b/one/blobs/{sha(b'b/one')}").status == 200


def test_disconnect_mid_upload_keeps_nothing_partial(hub):
    start = hub.request("POST", "/v2/gone/blobs/uploads/")
    location = start.headers["location"]
    hub.request("PATCH", location, b"x" * 100)
    with socket.create_connection(("127.0.0.1", hub.port)) as s:
        s.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"y" * 5000)
    status = None
    for _ in range(50):  # the server notices the disconnect asynchronously
        status = hub.request("GET", location)
        if status.headers.get("range") == "0-99":
            break
        threading.Event().wait(0.05)
    assert status.headers["range"] == "0-99"
    assert hub.request("PUT", f"{location}?digest={sha(b'x' * 100)}").status == 201


def test_graceful_shutdown_keeps_commits(hub):
    digest, body = push_image(hub, "keep", "v1", [b"kept layer"])
    assert rh.stop(hub, keep=True) == 0
    with rh.running(root=hub.root) as again:
        assert again.request("GET", "/v2/keep/manifests/v1").body == body
        assert again.request("GET", f"/v2/keep/blobs/{sha(b'kept layer')}").body == b"kept layer"


def test_search_metadata_and_metrics(hub):
    push_image(hub, "lib/redis", "7", [b"r"])
    push_image(hub, "me/tool", "1", [b"t"])
    assert hub.request("PATCH", "/api/repositories/me/tool", json.dumps({"description": "a redis helper"}).encode(),
                       {"Content-Type": "application/json"}).status == 200
    assert hub.request("PUT", "/api/repositories/me/tool/star").json() == {"star_count": 1}
    found = hub.request("GET", "/v1/search?q=redis&n=1").json()
    assert found["num_results"] == 2 and found["num_pages"] == 2
    assert found["results"] == [{"name": "me/tool", "description": "a redis helper", "star_count": 1,
                                 "pull_count": 0, "is_official": False, "is_automated": False}]
    assert hub.request("GET", "/v1/search?q=redis&n=1&page=2").json()["results"][0]["name"] == "lib/redis"
    hub.request("GET", "/v2/lib/redis/manifests/7")
    assert hub.request("GET", "/api/repositories/lib/redis").json()["pull_count"] == 1
    text = hub.request("GET", "/metrics").body.decode()
    assert "dockyard_registry_manifest_pulls_total 1" in text
    assert 'dockyard_registry_http_requests_total{method="PUT",code="201"}' in text


def test_web_pages(hub):
    push_image(hub, "web/site", "v1", [b"page layer"])
    index = hub.request("GET", "/?q=web").body.decode()
    assert "<a href='/r/web/site'>web/site</a>" in index
    page = hub.request("GET", "/r/web/site").body.decode()
    assert f"docker pull {hub.host}/web/site:v1" in page and sha(b"page layer") in page and "History" in page
    assert hub.request("GET", "/r/web/none").status == 404


def test_cli_serve_and_online_garbage_collect():
    """``dockyard registry serve`` through our CLI, and ``garbage-collect`` while it serves."""
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    from tests.daemon_harness import VENV_BIN
    from tests.integration.ports import free_port

    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "dockyard"), "registry", "serve", "--addr", f"127.0.0.1:{port}",
                             "--data", str(root / "data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hub = rh.Hub(root, port, proc)
    try:
        for _ in range(200):
            try:
                if hub.request("GET", "/healthz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        kept, _ = push_image(hub, "gc/app", "keep", [b"kept layer"])
        dropped, _ = push_image(hub, "gc/app", "drop", [b"dropped layer"])
        hub.request("DELETE", f"/v2/gc/app/manifests/{dropped}")
        def collect(*flags: str) -> str:
            out = subprocess.run([str(VENV_BIN / "dockyard"), "registry", "garbage-collect", "--data",
                                  str(root / "data"), *flags], capture_output=True, timeout=60)
            assert out.returncode == 0, out.stderr.decode()
            return out.stdout.decode()
        # within the grace period nothing goes: a push in flight is safe
        assert collect().splitlines()[-1].startswith("0 blobs")
        report = collect("--grace", "0")
        assert f"removed blob {sha(b'dropped layer')}" in report and f"removed blob {dropped}" in report
        assert hub.request("GET", "/v2/gc/app/manifests/keep").headers["docker-content-digest"] == kept
        assert hub.request("GET", f"/v2/gc/app/blobs/{sha(b'kept layer')}").body == b"kept layer"
        assert hub.request("GET", f"/v2/gc/app/blobs/{sha(b'dropped layer')}").code == "BLOB_UNKNOWN"
    finally:
        assert rh.stop(hub) == 0
