"""ContentStore: verified, atomic, idempotent blob writes."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from dockyard import errdefs
from dockyard.storage.content import ContentStore, Descriptor


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "content")


def ingest_is_empty(store: ContentStore) -> bool:
    return os.listdir(store.root / "ingest") == []


@pytest.mark.parametrize("make_input", [
    lambda b: b,
    lambda b: io.BytesIO(b),
    lambda b: iter([b[:3], b[3:]]),
], ids=["bytes", "reader", "chunks"])
def test_ingest_inputs(store, make_input):
    data = b"hello, blobs"
    desc = store.ingest(make_input(data))
    assert desc == Descriptor(digest(data), len(data))
    assert store.path(desc.digest) == store.root / "blobs" / "sha256" / desc.digest[7:]
    assert store.has(desc.digest)
    assert store.read_bytes(desc.digest) == data
    assert store.info(desc.digest) == desc
    assert store.list() == [desc]
    assert ingest_is_empty(store)


def test_ingest_verified_and_idempotent(store):
    data = os.urandom(3 << 20)
    desc = store.ingest(io.BytesIO(data), expected_digest=digest(data), expected_size=len(data))
    again = store.ingest(data, expected_digest=digest(data))
    assert again == desc
    assert len(store.list()) == 1
    assert ingest_is_empty(store)


def test_wrong_digest_rejected(store):
    wrong = digest(b"something else")
    with pytest.raises(errdefs.InvalidParameter, match="digest mismatch.*" + wrong):
        store.ingest(b"payload", expected_digest=wrong)
    assert not store.has(wrong) and not store.has(digest(b"payload"))
    assert ingest_is_empty(store)


def test_wrong_size_rejected(store):
    with pytest.raises(errdefs.InvalidParameter, match="size mismatch: expected 9 bytes, got 7"):
        store.ingest(io.BytesIO(b"payload"), expected_size=9)
    assert store.list() == []
    assert ingest_is_empty(store)


def test_oversized_input_stops_early(store):
    class Endless:
        reads = 0

        def read(self, n):
            self.reads += 1
            return b"x" * n

    src = Endless()
    with pytest.raises(errdefs.InvalidParameter, match="expected 10 bytes, got more than 10"):
        store.ingest(src, expected_size=10)
    assert src.reads == 1
    assert ingest_is_empty(store)


def test_malformed_digest_refused(store):
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, ""):
        with pytest.raises(errdefs.InvalidParameter):
            store.path(bad)


def test_missing_blob(store):
    missing = digest(b"never stored")
    assert not store.has(missing)
    with pytest.raises(errdefs.NotFound):
        store.open(missing)
    with pytest.raises(errdefs.NotFound):
        store.info(missing)
    store.delete(missing)  # idempotent


def test_delete(store):
    desc = store.ingest(b"x")
    store.delete(desc.digest)
    assert not store.has(desc.digest)
    store.delete(desc.digest)


def test_writer_aborts_without_commit(store):
    with store.writer() as w:
        w.write(b"half a blob")
    assert ingest_is_empty(store)
    assert store.list() == []
    with store.writer() as w:
        w.write(b"ab")
        w.write(b"c")
        assert w.commit(digest(b"abc"), 3) == Descriptor(digest(b"abc"), 3)
    assert store.read_bytes(digest(b"abc")) == b"abc"


def test_gc_ingest(store):
    (store.root / "ingest" / "leftover").write_bytes(b"crash")
    store.gc_ingest()
    assert ingest_is_empty(store)
