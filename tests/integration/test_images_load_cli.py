"""``docker load`` of something that is not an image archive, through the real docker CLI:
the words are dockerd's (Go's archive/tar, the stream's error line printed as is)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import daemon_harness


@pytest.fixture(scope="module")
def daemon():
    handle = daemon_harness.new_daemon()
    try:
        yield handle
    finally:
        daemon_harness.destroy(handle)


@pytest.mark.parametrize("data, message", [
    (os.urandom(4096), "archive/tar: invalid tar header"),
    (b"not a tar", "unexpected EOF"),
    (b"", "invalid archive: does not contain a manifest.json"),
    (Path("/work/shared/fixtures/busybox-docker-save.tar").read_bytes()[:700_000], "unexpected EOF"),
])
def test_load_of_a_non_archive_says_what_dockerd_says(daemon, tmp_path, data, message):
    path = tmp_path / "input.tar"
    path.write_bytes(data)
    r = daemon.docker("load", "-i", str(path))
    assert r.returncode == 1
    assert r.stderr.decode().strip() == message
    assert daemon.docker("images", "-q").stdout.strip() == b""
