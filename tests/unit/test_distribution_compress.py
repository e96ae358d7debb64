"""Parallel-block gzip for pushes: valid gzip, deterministic, stores what does not shrink."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from dockyard.daemon.distribution.compress import BLOCK, gzip_stream


@pytest.mark.parametrize("data", [b"", b"x", b"abc" * (BLOCK // 2), os.urandom(BLOCK + 5) + b"text " * 300_000,
                                  os.urandom(3 * BLOCK)])
def test_round_trip_and_deterministic(data):
    seen: list[int] = []
    out = b"".join(gzip_stream(io.BytesIO(data), seen.append))
    assert gzip.decompress(out) == data
    assert sum(seen) == len(data)
    assert b"".join(gzip_stream(io.BytesIO(data))) == out


def test_incompressible_blocks_are_stored_not_grown_much():
    data = os.urandom(4 * BLOCK)
    out = b"".join(gzip_stream(io.BytesIO(data)))
    assert len(out) < len(data) * 1.001 + 64


def test_compressible_data_shrinks():
    data = b"line of text that repeats\n" * 200_000
    assert len(b"".join(gzip_stream(io.BytesIO(data)))) < len(data) // 20
