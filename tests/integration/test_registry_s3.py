"""The hub with its blobs in an S3-compatible object store (moto's server stands in for one):
the docker CLI pushes and pulls through dockyardd (blob GETs redirected to presigned URLs),
garbage collection removes objects, the signing matches botocore's; big blobs and chunked
uploads go up as multipart uploads, and a failure leaves no object and no upload in progress."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.integration import registry_hub as rh
from tests.integration.ports import free_port
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
    with rh.running(config={"s3": s3}) as h:
        yield h


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


# ---- multipart: big blobs in parts, chunked uploads as parts, nothing left on failure ----------

PART = 5 << 20  # S3's smallest part, so a dozen MiB spans several


def big(n: int = 12 << 20) -> bytes:
    return os.urandom(n)


def bucket(s3):
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=s3["access_key"],
                        aws_secret_access_key=s3["secret_key"], region_name=s3["region"])


def leftovers(s3) -> tuple[list[str], list[str]]:
    """(keys outside blobs/, multipart uploads in progress) in the bucket."""
    client = bucket(s3)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3["bucket"]).get("Contents", [])
            if not o["Key"].startswith(f"{s3['prefix']}blobs/")]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=s3["bucket"]).get("Uploads", [])]
    return keys, uploads


@pytest.fixture
def s3_store(s3):
    from dockyard.registry.blobs import make_blobs
    from dockyard.registry.store import Store

    root = Path(tempfile.mkdtemp(prefix="dyhub-s3-store-"))
    try:
        yield Store(root, make_blobs(root, {**s3, "part_size": PART}))
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _chunks(data: bytes, fail_after: bool = False):
    for i in range(0, len(data), 1 << 20):
        yield data[i:i + (1 << 20)]
    if fail_after:
        raise ConnectionResetError("client went away")


def append(upload, data: bytes, fail_after: bool = False) -> int:
    return asyncio.run(upload.append(_chunks(data, fail_after)))


def test_chunked_upload_goes_up_in_parts(s3):
    with rh.running(config={"s3": {**s3, "part_size": PART}}) as h:
        blob = big()
        start = h.request("POST", "/v2/s3/big/blobs/uploads/")
        location = start.headers["location"]
        uuid = location.rsplit("/", 1)[1]
        pieces = [blob[:4 << 20], blob[4 << 20:9 << 20], blob[9 << 20:]]
        offset = 0
        for n, piece in enumerate(pieces):
            reply = h.request("PATCH", location, piece, {"Content-Range": f"{offset}-{offset + len(piece) - 1}"})
            offset += len(piece)
            assert reply.status == 202 and reply.headers["range"] == f"0-{offset - 1}", reply.body
            session = h.data / "uploads" / uuid
            # the hub keeps less than one part; the rest is already in the bucket
            assert (session / "data").stat().st_size < PART
            if n == 1:
                assert len(json.loads((session / "parts.json").read_text())["etags"]) == 1
                assert leftovers(s3)[1] == [f"{s3['prefix']}uploads/{uuid}"]
        done = h.request("PUT", f"{location}?digest={sha(blob)}")
        assert done.status == 201, done.body + h.log().encode()
        assert leftovers(s3) == ([], [])
        redirect = h.request("GET", f"/v2/s3/big/blobs/{sha(blob)}")
        assert redirect.status == 307
        assert hashlib.sha256(requests.get(redirect.headers["location"], timeout=60).content).hexdigest() == \
            sha(blob)[7:]
        # a monolithic POST is a session too (its one body is sent in parts as it arrives)
        other = big(11 << 20)
        assert h.request("POST", f"/v2/s3/big/blobs/uploads/?digest={sha(other)}", other).status == 201
        assert hashlib.sha256(requests.get(h.request("GET", f"/v2/s3/big/blobs/{sha(other)}").headers["location"],
                                           timeout=60).content).hexdigest() == sha(other)[7:]
        assert leftovers(s3) == ([], [])


def test_part_failure_leaves_nothing(s3_store, s3, monkeypatch):
    from dockyard import errdefs
    from dockyard.registry import errors
    from dockyard.registry.s3 import S3Blobs

    sent = []
    real_upload_part = S3Blobs.upload_part

    def flaky_upload_part(self, key, upload_id, number, f, size):
        if number == 2:
            raise errdefs.Unavailable("object store 127.0.0.1: connection reset")
        sent.append(number)
        return real_upload_part(self, key, upload_id, number, f, size)

    monkeypatch.setattr(S3Blobs, "upload_part", flaky_upload_part)
    blob = big()
    with pytest.raises(errdefs.Unavailable):
        s3_store.put_blob("s3/fail", sha(blob), blob)
    assert sent == [1] and not s3_store.blobs.has(sha(blob)) and leftovers(s3) == ([], [])

    # a chunked upload: a PATCH whose part fails is undone (the client may send it again)
    upload = s3_store.start_upload("s3/fail")
    sent.clear()
    assert append(upload, blob[:6 << 20]) == 6 << 20 and sent == [1]
    with pytest.raises(errdefs.Unavailable):
        append(upload, blob[6 << 20:])
    assert upload.size == 6 << 20
    monkeypatch.setattr(S3Blobs, "upload_part", real_upload_part)
    assert append(upload, blob[6 << 20:]) == len(blob)

    # ... and one whose commit fails ends: its multipart upload is aborted
    def failing_complete(self, key, upload_id, etags):
        raise errdefs.Unavailable("object store 127.0.0.1: connection reset")

    with monkeypatch.context() as m:
        m.setattr(S3Blobs, "complete_multipart", failing_complete)
        with pytest.raises(errdefs.Unavailable):
            s3_store.finish_upload(upload, sha(blob))
    assert not s3_store.blobs.has(sha(blob)) and leftovers(s3) == ([], [])
    assert not upload.root.exists()

    # a digest that does not match: DIGEST_INVALID, nothing stays
    upload = s3_store.start_upload("s3/fail")
    append(upload, blob)
    with pytest.raises(errors.DigestInvalid):
        s3_store.finish_upload(upload, sha(b"something else"))
    assert not s3_store.blobs.has(sha(blob)) and leftovers(s3) == ([], [])

    # a blob stored in one call (a pull-through cache's, a manifest) above one part: a multipart
    # upload straight to its key
    s3_store.put_blob("s3/fail", sha(blob), blob)
    head = bucket(s3).head_object(Bucket=s3["bucket"], Key=f"{s3['prefix']}blobs/sha256/{sha(blob)[7:]}")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(blob)  # 5 + 5 + 2 MiB
    assert leftovers(s3) == ([], [])


def test_disconnect_mid_patch_restores_the_session(s3_store, s3):
    from dockyard.registry.store import Store

    blob = big()
    upload = s3_store.start_upload("s3/resume")
    assert append(upload, blob[:3 << 20]) == 3 << 20
    with pytest.raises(ConnectionResetError):  # 4 MiB more sent a part before the client went away
        append(upload, blob[3 << 20:7 << 20], fail_after=True)
    assert upload.size == 3 << 20 and (upload.root / "data").read_bytes() == blob[:3 << 20]
    assert json.loads((upload.root / "parts.json").read_text())["etags"] == []
    assert append(upload, blob[3 << 20:8 << 20]) == 8 << 20
    # the hub restarts mid-session: the digest is checked by reading the object back
    again = Store(s3_store.root, s3_store.blobs)
    resumed = again.upload("s3/resume", upload.uuid)
    assert append(resumed, blob[8 << 20:]) == len(blob)
    assert again.finish_upload(resumed, sha(blob)).size == len(blob)
    assert again.blob("s3/resume", sha(blob)).size == len(blob)
    assert leftovers(s3) == ([], [])


def test_copy_part_by_part_above_the_copy_limit(s3_store, s3, monkeypatch):
    from dockyard.registry.s3 import S3Blobs

    monkeypatch.setattr(S3Blobs, "copy_limit", 1)  # as if the blob were above 5 GiB
    blob = big()
    upload = s3_store.start_upload("s3/copy")
    append(upload, blob)
    assert s3_store.finish_upload(upload, sha(blob)).size == len(blob)
    got = bucket(s3).get_object(Bucket=s3["bucket"], Key=f"{s3['prefix']}blobs/sha256/{sha(blob)[7:]}")
    assert got["Body"].read() == blob
    assert leftovers(s3) == ([], [])


def test_garbage_collect_drops_orphaned_multipart_uploads(s3_store, s3):
    from dockyard.registry import gc

    blobs = s3_store.blobs
    orphan = blobs.upload_key("0" * 32)  # a session whose directory went (a crash)
    blobs.create_multipart(orphan)
    bucket(s3).put_object(Bucket=s3["bucket"], Key=blobs.upload_key("1" * 32), Body=b"completed, never deleted")
    live = s3_store.start_upload("s3/live")
    append(live, big(6 << 20))  # its first part is in the bucket
    report = gc.collect(s3_store, grace=600)
    assert report.uploads_removed == 2
    assert leftovers(s3) == ([], [blobs.upload_key(live.uuid)])
    s3_store.cancel_upload(live)
    assert leftovers(s3) == ([], [])
