"""The hub with its blobs in an S3-compatible object store (moto's server stands in for one):
the docker CLI pushes and pulls through dockyardd (blob GETs redirected to presigned URLs),
garbage collection removes objects, and the signing matches botocore's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration import registry_hub as rh
from tests.integration.distribution_registry import free_port
from tests.integration.test_registry_api import push_image, sha

MOTO = Path(sys.executable).parent / "moto_server"
pytestmark = pytest.mark.skipif(not MOTO.exists(), reason="moto[server] is not installed")


@pytest.fixture
def s3():
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="dyhub-s3-"))
    log = open(root / "moto.log", "wb")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield {"endpoint": f"http://127.0.0.1:{port}", "bucket": "hub-blobs", "access_key": "test-key",
               "secret_key": "test-secret", "region": "us-east-1", "prefix": "hub/"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hub(s3):
    h = rh.start(config={"s3": s3})
    try:
        yield h
    finally:
        rh.stop(h)


def objects(s3) -> list[str]:
    from dockyard.registry.s3 import S3Blobs, S3Settings

    staging = Path(tempfile.mkdtemp(prefix="dyhub-s3-staging-"))
    try:
        return [d.digest for d in S3Blobs(S3Settings(**s3), staging).list()]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def test_blobs_live_in_the_bucket(hub, s3):
    digest, body = push_image(hub, "s3/app", "v1", [b"layer in s3"])
    assert sha(b"layer in s3") in objects(s3) and digest in objects(s3)
    assert not (hub.data / "content" / "blobs").exists()  # nothing on the hub's own disk
    redirect = hub.request("GET", f"/v2/s3/app/blobs/{sha(b'layer in s3')}")
    assert redirect.status == 307 and "X-Amz-Signature=" in redirect.headers["location"]
    assert hub.request("HEAD", f"/v2/s3/app/blobs/{sha(b'layer in s3')}").headers["content-length"] == "11"
    assert hub.request("GET", "/v2/s3/app/manifests/v1").body == body
    wrong = hub.request("POST", f"/v2/s3/app/blobs/uploads/?digest={sha(b'other')}", b"lying")
    assert wrong.code == "DIGEST_INVALID" and sha(b"lying") not in objects(s3)


def test_docker_push_pull_through_s3(dockyardd, hub):
    d = dockyardd
    name = f"{hub.host}/s3/busybox:1"
    d.docker("tag", "busybox", name, check=True)
    try:
        push = d.docker("push", name, timeout=120)
        assert push.returncode == 0, push.stderr.decode() + hub.log()
        d.docker("rmi", name)
        pull = d.docker("pull", name, timeout=120)
        assert pull.returncode == 0, pull.stderr.decode() + hub.log()
        run = d.docker("run", "--rm", "--network", "none", name, "echo", "from-s3", timeout=60)
        assert run.stdout.decode().strip() == "from-s3", run.stderr.decode()
    finally:
        d.docker("rmi", name)


def test_garbage_collect_removes_objects(hub, s3):
    kept, _ = push_image(hub, "s3/gc", "keep", [b"kept"])
    dropped, _ = push_image(hub, "s3/gc", "drop", [b"dropped"])
    hub.request("DELETE", f"/v2/s3/gc/manifests/{dropped}")
    rh.stop(hub, keep=True)
    out = subprocess.run([sys.executable, "-m", "dockyard.cmd.registry", "garbage-collect", "--data",
                          str(hub.data), "--config", str(hub.root / "config.json"), "--grace", "0"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    left = objects(s3)
    assert kept in left and sha(b"kept") in left and dropped not in left and sha(b"dropped") not in left


def test_signature_matches_botocore():
    pytest.importorskip("botocore")
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from dockyard.registry.s3 import Signer

    now = time.time()
    ours = Signer("AKID", "SECRET", "eu-west-1").sign_headers(
        "GET", "127.0.0.1:9000", "/bucket/hub/blobs/sha256/ab", {"list-type": "2", "prefix": "a b/"},
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", now=now)
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket/hub/blobs/sha256/ab?list-type=2&prefix=a%20b%2F",
                         headers={"x-amz-content-sha256": ours["x-amz-content-sha256"]})
    auth = S3SigV4Auth(Credentials("AKID", "SECRET"), "s3", "eu-west-1")
    auth._timestamp = lambda: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    auth.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_presigned_url_matches_botocore():
    pytest.importorskip("botocore")
    import urllib.parse

    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from dockyard.registry.s3 import Signer

    now = time.time()
    ours = Signer("AKID", "SECRET", "us-east-1").presign("GET", "127.0.0.1:9000", "/bucket/hub/blobs/sha256/ab",
                                                         1200, now=now)
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket/hub/blobs/sha256/ab")
    auth = S3SigV4QueryAuth(Credentials("AKID", "SECRET"), "s3", "us-east-1", expires=1200)
    auth._timestamp = lambda: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    auth.add_auth(request)
    theirs = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
    mine = urllib.parse.parse_qs(urllib.parse.urlsplit(ours).query)
    assert mine["X-Amz-Signature"] == theirs["X-Amz-Signature"]
