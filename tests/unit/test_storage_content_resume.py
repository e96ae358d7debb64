"""Partial downloads in the content store's ingest area: resumed by a later writer (the prefix
re-hashed), never visible as content, locked against a second writer, dropped when stale."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from dockyard import errdefs
from dockyard.storage.content import PARTIAL_MAX_AGE, ContentStore

DATA = os.urandom(3 << 20) + b"tail"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "content")


def test_kept_prefix_is_resumed_and_verified(store):
    w = store.resumable_writer(DIGEST, len(DATA))
    assert w.resumed_from == 0
    w.write(DATA[:1 << 20])
    w.keep()
    assert not store.has(DIGEST) and store.list() == []  # a partial is not content
    w = store.resumable_writer(DIGEST, len(DATA))
    assert w.resumed_from == w.size == 1 << 20
    w.write(DATA[1 << 20:])
    assert w.commit(DIGEST, len(DATA)).size == len(DATA)
    assert store.read_bytes(DIGEST) == DATA
    assert os.listdir(store.root / "ingest") == []


def test_a_damaged_prefix_fails_verification_and_is_dropped(store):
    w = store.resumable_writer(DIGEST, len(DATA))
    w.write(b"x" * 1000)
    w.keep()
    w = store.resumable_writer(DIGEST, len(DATA))
    w.write(DATA[1000:])
    with pytest.raises(errdefs.InvalidParameter, match="digest mismatch"):
        w.commit(DIGEST, len(DATA))
    assert os.listdir(store.root / "ingest") == []
    assert store.resumable_writer(DIGEST, len(DATA)).resumed_from == 0


def test_a_prefix_longer_than_the_blob_starts_over(store):
    w = store.resumable_writer(DIGEST, len(DATA))
    w.write(DATA + b"more")
    w.keep()
    assert store.resumable_writer(DIGEST, len(DATA)).size == 0


def test_second_writer_of_the_same_blob_is_private(store):
    first = store.resumable_writer(DIGEST, len(DATA))
    first.write(DATA[:10])
    second = store.resumable_writer(DIGEST, len(DATA))
    assert second.resumed_from == 0
    second.write(DATA)
    second.commit(DIGEST, len(DATA))
    first.write(DATA[10:])
    assert first.commit(DIGEST, len(DATA)).digest == DIGEST  # already there: dropped, same content
    assert os.listdir(store.root / "ingest") == []


def test_reset_starts_from_zero(store):
    w = store.resumable_writer(DIGEST, len(DATA))
    w.write(b"garbage")
    w.reset()
    w.write(DATA)
    assert w.commit(DIGEST, len(DATA)).size == len(DATA)


def test_gc_keeps_fresh_partials_only(store):
    fresh = store.resumable_writer(DIGEST, len(DATA))
    fresh.write(DATA[:100])
    fresh.keep()
    other = "sha256:" + "1" * 64
    stale = store.resumable_writer(other)
    stale.write(b"old")
    stale.keep()
    ingest = store.root / "ingest"
    old = time.time() - PARTIAL_MAX_AGE - 60
    os.utime(ingest / ("partial-sha256-" + "1" * 64), (old, old))
    (ingest / "0123abcd").write_bytes(b"a crashed plain write")
    (ingest / "partial-sha256-nothex").write_bytes(b"not ours")
    store.gc_ingest()
    assert os.listdir(ingest) == ["partial-sha256-" + DIGEST[7:]]
    assert store.resumable_writer(DIGEST, len(DATA)).resumed_from == 100
    store.gc_ingest(partial_max_age=0)  # the registry's start-up: nothing is resumable
    assert os.listdir(ingest) == []
