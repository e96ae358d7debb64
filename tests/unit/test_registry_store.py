"""The hub's storage, names and garbage collection, against a temp directory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.registry import errors, gc, manifests, names
from dockyard.registry.store import Store


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store():
    root = Path(tempfile.mkdtemp(prefix="dyhub-unit-"))
    try:
        yield Store(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def image(store: Store, repo: str, tag: str, layer: bytes) -> str:
    config = json.dumps({"os": "linux", "layer": layer.decode()}).encode()
    store.put_blob(repo, sha(config), config)
    store.put_blob(repo, sha(layer), layer)
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "c", "digest": sha(config), "size": len(config)},
                       "layers": [{"mediaType": "l", "digest": sha(layer), "size": len(layer)}]}).encode()
    digest, _ = store.put_manifest(repo, tag, body, "application/vnd.oci.image.manifest.v1+json")
    return digest


@pytest.mark.parametrize("name,ok", [
    ("library/busybox", True), ("a", True), ("a-b.c_d/e__f/g--h", True), ("x" * 256, False),
    ("A", False), ("a/../b", False), ("../a", False), ("/a", False), ("a/", False), ("a//b", False),
    ("_a", False), ("a_", False), ("a\\b", False), ("a\x00b", False), ("a/.b", False)])
def test_name_grammar(name, ok):
    assert names.valid_name(name) is ok


@pytest.mark.parametrize("tag,ok", [("latest", True), ("v1.0-rc_1", True), ("_x", True), ("-x", False),
                                    (".x", False), ("x" * 129, False), ("a/b", False), ("a:b", False)])
def test_tag_grammar(tag, ok):
    assert names.valid_tag(tag) is ok


def test_digest_forms(store):
    with pytest.raises(errors.DigestInvalid):
        store.blob("a", "sha256:../../etc/passwd")
    with pytest.raises(errors.DigestInvalid, match="unsupported digest algorithm"):
        store.blob("a", "sha512:" + "0" * 128)
    with pytest.raises(errors.NameInvalid):
        store.blob("../a", sha(b""))


def test_blobs_stored_once_and_linked_per_repository(store):
    store.put_blob("one", sha(b"x"), b"x")
    store.put_blob("two", sha(b"x"), b"x")
    assert len(store.blobs.list()) == 1
    assert store.blob("one", sha(b"x")).size == 1
    with pytest.raises(errors.BlobUnknown):
        store.blob("three", sha(b"x"))
    assert store.mount("three", sha(b"x"), "one") is True
    assert store.mount("three", sha(b"y"), "one") is False
    with pytest.raises(errors.DigestInvalid):
        store.put_blob("one", sha(b"y"), b"not y")
    assert not any((store.root / "content" / "ingest").iterdir())


def test_manifest_checks(store):
    with pytest.raises(errors.ManifestBlobUnknown):
        store.put_manifest("r", "t", json.dumps({"schemaVersion": 2, "config": {
            "mediaType": "c", "digest": sha(b"c"), "size": 1}, "layers": []}).encode(),
            "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(errors.ManifestInvalid):
        manifests.parse(b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+json")
    with pytest.raises(errors.ManifestInvalid, match="does not match"):
        manifests.parse(b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",'
                        b' "manifests": []}', "application/vnd.oci.image.manifest.v1+json")
    # mediaType left out: the shape decides
    assert manifests.parse(b'{"schemaVersion": 2, "manifests": []}', "").media_type == \
        "application/vnd.oci.image.index.v1+json"


def test_tags_and_delete(store):
    digest = image(store, "r", "a", b"layer")
    store.put_manifest("r", "b", store.manifest_bytes(digest), "application/vnd.oci.image.manifest.v1+json")
    assert store.tags("r") == ["a", "b"]
    assert store.resolve("r", "a").digest == digest
    store.delete_manifest("r", digest)
    assert store.tags("r") == []
    with pytest.raises(errors.ManifestUnknown):
        store.resolve("r", digest)
    with pytest.raises(errors.NameUnknown):
        store.tags("unknown")


def test_gc_removes_only_unreferenced_old_blobs(store):
    kept = image(store, "r", "keep", b"kept")
    dropped = image(store, "r", "drop", b"dropped")
    store.delete_manifest("r", dropped)
    old = time.time() - 7200
    for desc in store.blobs.list():
        os.utime(store.blobs.path(desc.digest), (old, old))
    for link in (store.root / "repositories" / "r" / "_layers").iterdir():
        os.utime(link, (old, old))
    store.put_blob("r", sha(b"fresh upload"), b"fresh upload")  # its manifest may still come
    abandoned = store.start_upload("r")
    os.utime(abandoned.root / "data", (old - 86400, old - 86400))
    report = gc.collect(store, grace=3600, dry_run=True)
    assert set(report.blobs_removed) == {dropped, sha(b"dropped"), sha(json.dumps(
        {"os": "linux", "layer": "dropped"}).encode())}
    assert len(store.blobs.list()) == 7  # a dry run removes nothing
    report = gc.collect(store, grace=3600)
    assert report.uploads_removed == 1 and report.links_removed == 2
    left = {d.digest for d in store.blobs.list()}
    assert kept in left and sha(b"kept") in left and sha(b"fresh upload") in left and dropped not in left
    assert store.resolve("r", "keep").digest == kept
    with pytest.raises(errors.BlobUploadUnknown):
        store.upload("r", abandoned.uuid)


def test_upload_session_checks(store):
    upload = store.start_upload("r")
    with pytest.raises(errors.BlobUploadUnknown):
        store.upload("other", upload.uuid)  # a session belongs to its repository
    with pytest.raises(errors.BlobUploadUnknown):
        store.upload("r", "../../etc")
    (upload.root / "data").write_bytes(b"abc")
    with pytest.raises(errors.DigestInvalid):
        store.finish_upload(upload, sha(b"abd"))
    with pytest.raises(errors.BlobUploadUnknown):
        store.upload("r", upload.uuid)  # a failed commit ends the session


async def _chunks(*parts: bytes, fail: bool = False):
    for part in parts:
        yield part
    if fail:
        raise ConnectionResetError("client gone mid-chunk")


def test_chunked_upload_hashes_as_it_goes_and_commits_by_rename(store):
    upload = store.start_upload("r")
    asyncio.run(upload.append(_chunks(b"hello ", b"big ")))
    with pytest.raises(ConnectionResetError):  # a broken chunk: out of the file and of the hash
        asyncio.run(upload.append(_chunks(b"garbage", fail=True)))
    asyncio.run(upload.append(_chunks(b"world"), start=10))
    inode = os.stat(upload.root / "data").st_ino
    os.utime(upload.root / "data", (time.time() - 7200, time.time() - 7200))  # an upload idle for 2 h
    desc = store.finish_upload(upload, sha(b"hello big world"))
    path = store.blobs.path(desc.digest)
    assert desc.size == 15 and path.read_bytes() == b"hello big world"
    assert os.stat(path).st_ino == inode  # the upload's file itself, not a copy
    assert os.stat(path).st_mode & 0o777 == 0o444
    assert store.blobs.age(desc.digest) < 600  # garbage collection's grace starts at the commit
    assert store.blob("r", desc.digest) == desc


def test_upload_picked_up_after_a_restart_is_hashed_from_its_file(store):
    upload = store.start_upload("r")
    asyncio.run(upload.append(_chunks(b"first half, ")))
    again = Store(store.root).upload("r", upload.uuid)  # a new hub process: no running hash
    asyncio.run(again.append(_chunks(b"second half")))
    with pytest.raises(errors.DigestInvalid):
        Store(store.root).finish_upload(Store(store.root).upload("r", upload.uuid), sha(b"first half"))
    upload = store.start_upload("r")
    asyncio.run(upload.append(_chunks(b"first half, ")))
    again = Store(store.root).upload("r", upload.uuid)
    asyncio.run(again.append(_chunks(b"second half")))
    desc = Store(store.root).finish_upload(again, sha(b"first half, second half"))
    assert store.blobs.read_bytes(desc.digest) == b"first half, second half"
    # the same blob pushed again: the stored one stays, the upload goes
    upload = store.start_upload("r2")
    asyncio.run(upload.append(_chunks(b"first half, second half")))
    assert store.finish_upload(upload, desc.digest) == desc
    assert not upload.root.exists() and store.blob("r2", desc.digest) == desc
