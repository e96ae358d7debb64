"""Garbage collection against pushes that run while it sweeps: an old unreferenced blob that is
pushed again, mounted or named by a new manifest between the collector's mark and its deletion
stays (dockyard.registry.sweeplock). The interleaving is made with the collector's ``on_marked``
hook, so it is the same on every run; the second test crosses processes (the hub serves, the
collector runs here), as ``dockyard registry garbage-collect`` does beside ``serve``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time

import pytest

from dockyard.registry import gc
from dockyard.registry.store import Store
from tests.integration.tempdirs import temp_dir

OLD = time.time() - 7200  # older than the collector's grace below


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store():
    with temp_dir("dyhub-gc-") as root:
        yield Store(root)


def age(store: Store, name: str, digest: str) -> None:
    """Make a blob and its repository link look pushed two hours ago."""
    os.utime(store.blobs.path(digest), (OLD, OLD))
    os.utime(store.link_path(name, digest), (OLD, OLD))


def chunked_push(store: Store, name: str, data: bytes) -> None:
    async def body():
        yield data[:3]
        yield data[3:]

    upload = store.start_upload(name)
    asyncio.run(upload.append(body()))
    store.finish_upload(upload, sha(data))


def test_sweep_without_a_push_removes_the_old_blob(store):
    """The control: the same old blob, nothing pushed during the sweep, is collected."""
    layer = b"an old layer nobody uses"
    store.put_blob("a/app", sha(layer), layer)
    age(store, "a/app", sha(layer))
    report = gc.collect(store, grace=600)
    assert report.blobs_removed == [sha(layer)]
    assert not store.blobs.has(sha(layer))


def test_push_mount_and_manifest_between_mark_and_sweep(store):
    layer, config = b"an old layer pushed again", b'{"architecture": "amd64", "os": "linux"}'
    store.put_blob("a/app", sha(layer), layer)
    age(store, "a/app", sha(layer))
    store.put_blob("a/app", sha(config), config)
    age(store, "a/app", sha(config))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer),
                    "size": len(layer)}]}).encode()

    def between_mark_and_sweep() -> None:
        # the mark saw neither blob used: each would be deleted without the sweep lock
        chunked_push(store, "b/app", layer)
        assert store.mount("c/app", sha(layer), "a/app")
        store.put_manifest("a/app", "v1", manifest, "application/vnd.oci.image.manifest.v1+json")

    report = gc.collect(store, grace=600, on_marked=between_mark_and_sweep)
    assert report.blobs_removed == []
    for name in ("a/app", "b/app", "c/app"):
        assert store.blob(name, sha(layer)).size == len(layer)
    assert store.resolve("a/app", "v1").digest == sha(manifest)
    assert store.blobs.read_bytes(sha(config)) == config
    # the next collection marks them through the manifest and its fresh links
    assert gc.collect(store, grace=600).blobs_removed == []


def test_a_deletion_holds_off_a_push_until_it_is_done(store):
    """The push's check-and-link cannot run inside a deletion: it waits, then finds the blob gone
    and stores it again, so its 201 names a blob that exists."""
    layer = b"deleted while pushed"
    store.put_blob("a/app", sha(layer), layer)
    pushed = threading.Event()
    with store.sweep.collection() as collection:
        with collection.deleting() as spared:
            assert sha(layer) not in spared
            pusher = threading.Thread(target=lambda: (store.put_blob("b/app", sha(layer), layer), pushed.set()))
            pusher.start()
            pusher.join(0.3)
            assert not pushed.is_set()  # blocked on the sweep lock
            store.blobs.delete(sha(layer))
        pusher.join(30)
        assert pushed.is_set()
        with collection.deleting() as spared:
            assert sha(layer) in spared  # a later deletion of this collection would skip it
    assert store.blob("b/app", sha(layer)).size == len(layer)


def test_hub_push_during_a_collection_in_another_process(hub):
    layer = b"layer pushed over http while collected"
    digest = sha(layer)
    assert hub.request("POST", f"/v2/a/app/blobs/uploads/?digest={digest}", layer).status == 201
    store = Store(hub.data)
    age(store, "a/app", digest)

    def between_mark_and_sweep() -> None:
        assert hub.request("POST", f"/v2/b/app/blobs/uploads/?digest={digest}", layer).status == 201
        mounted = hub.request("POST", f"/v2/c/app/blobs/uploads/?mount={digest}&from=a/app")
        assert mounted.status == 201, mounted.body

    report = gc.collect(store, grace=600, on_marked=between_mark_and_sweep)
    assert digest not in report.blobs_removed
    for name in ("b/app", "c/app"):
        assert hub.request("GET", f"/v2/{name}/blobs/{digest}").body == layer


def test_a_waiting_deletion_goes_before_new_pushes(store):
    """flock has no writer priority; the gate gives it: once a deletion waits for the operations
    in flight, new ones queue behind it, so a busy hub cannot hold a collection back for ever."""
    import fcntl

    order: list[str] = []
    release_first = threading.Event()
    in_first = threading.Event()

    def first_push() -> None:
        with store.sweep.live(["sha256:" + "a" * 64]):
            in_first.set()
            release_first.wait(30)
            order.append("first push")

    def second_push() -> None:
        with store.sweep.live([]):
            order.append("second push")

    def gate_taken() -> bool:
        fd = os.open(store.sweep.directory / "gate", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    with store.sweep.collection() as collection:
        def deletion() -> None:
            with collection.deleting():
                order.append("deletion")

        threads = [threading.Thread(target=first_push)]
        threads[0].start()
        assert in_first.wait(30)
        threads.append(threading.Thread(target=deletion))
        threads[1].start()
        deadline = time.monotonic() + 30
        while not gate_taken():  # the deletion holds the gate and waits for the first push
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        second = threading.Thread(target=second_push)
        second.start()
        second.join(0.3)
        assert order == []  # neither the deletion nor the second push got through yet
        release_first.set()
        for t in (threads[0], threads[1], second):
            t.join(30)
    assert order == ["first push", "deletion", "second push"]
