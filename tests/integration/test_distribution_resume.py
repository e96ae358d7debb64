"""An interrupted pull resumes: the half-downloaded blob survives in the content store's ingest
area (even a kill -9 of dockyardd), and the next pull asks the registry for the rest with a
Range request, re-hashing the kept prefix so the committed blob is verified whole. A registry
that ignores Range (200) gets a fresh download, and so does a kept prefix that turns out wrong."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests import daemon_harness
from tests.integration.distribution_fake import digest_of, make_image
from tests.integration.tempdirs import temp_dir
from tests.integration.test_distribution_faults import Env

LAYER = 6 << 20


@pytest.fixture
def env():
    with temp_dir("dy-resume-") as root, closing(Env(root)) as e:
        yield e


def _partial(root: Path, digest: str) -> Path | None:
    found = list(root.rglob(f"ingest/partial-sha256-{digest[7:]}"))
    return found[0] if found else None


def test_pull_resumes_with_range_after_dockyardd_is_killed(fake):
    image = make_image([{"data.bin": os.urandom(LAYER)}])
    fake.add("slow/app", "v1", image)
    layer = digest_of(image.layers[0][1])
    fake.blob_rate = 1 << 20  # ~6 s for the layer
    daemon = daemon_harness.new_daemon()
    try:
        ref = f"{fake.host}/slow/app:v1"
        pull = subprocess.Popen([daemon_harness.DOCKER, "pull", ref], env=daemon.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            kept = 0
            while time.monotonic() < deadline:
                partial = _partial(daemon.data_root, layer)
                kept = partial.stat().st_size if partial else 0
                if kept >= 2 << 20:
                    break
                time.sleep(0.05)
            assert kept >= 2 << 20, daemon.log()
            os.kill(daemon.proc.pid, signal.SIGKILL)
            daemon.proc.wait(timeout=20)
            assert pull.wait(timeout=60) != 0
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.wait()
        partial = _partial(daemon.data_root, layer)
        assert partial is not None, "the partial download did not survive the kill"
        kept = partial.stat().st_size
        assert 0 < kept < len(image.layers[0][1])

        fake.blob_rate = 0
        before = len(fake.blob_ranges)
        daemon_harness.start(daemon)
        r = daemon.docker("pull", ref, timeout=120)
        assert r.returncode == 0, r.stderr.decode() + daemon.log()
        ranges = [rng for digest, rng in fake.blob_ranges[before:] if digest == layer]
        assert ranges == [f"bytes={kept}-"]
        info = json.loads(daemon.docker("image", "inspect", ref, check=True).stdout)[0]
        assert info["Id"] == image.id
        assert info["RootFS"]["Layers"] == json.loads(image.config)["rootfs"]["diff_ids"]
        assert _partial(daemon.data_root, layer) is None
    finally:
        daemon_harness.destroy(daemon)


def _plant(env: Env, digest: str, prefix: bytes) -> None:
    writer = env.h.content.resumable_writer(digest)
    writer.write(prefix)
    writer.keep()


def test_registry_that_ignores_range_gets_a_fresh_download(env, fake):
    image = make_image([{"data.bin": os.urandom(300_000)}])
    fake.add("app", "v1", image)
    blob = image.layers[0][1]
    layer = digest_of(blob)
    _plant(env, layer, blob[:100_000])
    fake.ignore_range = True
    env.pull(f"{fake.host}/app", "v1")
    assert [r for d, r in fake.blob_ranges if d == layer] == ["bytes=100000-"]  # asked, got 200
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    assert os.listdir(env.h.config.image_root / "content" / "ingest") == []


def test_a_wrong_kept_prefix_is_downloaded_again_from_zero(env, fake):
    image = make_image([{"data.bin": os.urandom(300_000)}])
    fake.add("app", "v1", image)
    blob = image.layers[0][1]
    layer = digest_of(blob)
    _plant(env, layer, hashlib.sha256(b"x").digest() * 1000)  # not this blob's first bytes
    env.pull(f"{fake.host}/app", "v1")
    assert [r for d, r in fake.blob_ranges if d == layer] == ["bytes=32000-", ""]
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    assert os.listdir(env.h.config.image_root / "content" / "ingest") == []
