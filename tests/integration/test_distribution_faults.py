"""Pull against a fake registry: formats, platforms, auth, and every fault the issue lists.

Each test gets its own image store (tests.integration.image_harness.Harness) and a
DistributionService with short timeouts and back-off, so retries are exercised quickly.
After a failure nothing may be visible: no image row, no layer, nothing in ingest/.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from dockyard.daemon.distribution.service import DistributionService
from dockyard.distribution.client import RegistryClient, RetryPolicy
from dockyard.distribution.endpoints import Endpoints, RegistrySettings
from tests.integration.distribution_fake import digest_of, docker_archive, make_image, make_index
from tests.integration.image_harness import Harness
from tests.integration.tempdirs import temp_dir


class Env:
    def __init__(self, root: Path, timeout: float = 2.0) -> None:
        self.h = Harness(root)
        self.h.config.max_download_attempts = 3
        self.client = RegistryClient(Endpoints(RegistrySettings(certs_dir=root / "certs.d")), timeout=timeout,
                                     retry=RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.1))
        self.svc = DistributionService(self.h.config, self.h.service, self.client, retry_delay=0.01)
        self.messages: list = []

    def pull(self, image: str, tag: str = "", platform: str = "", auth: AuthConfig | None = None) -> list[str]:
        self.messages.clear()
        self.svc.pull(image, tag, platform, auth or AuthConfig(), self.messages.append)
        return [m.status for m in self.messages if m.status]

    def close(self) -> None:
        self.svc.close()
        self.h.db.close()

    def nothing_visible(self) -> None:
        assert self.h.rows("images") == 0
        assert self.h.rows("layers") == 0
        assert self.h.layer_dirs() == []
        assert os.listdir(self.h.config.image_root / "content" / "ingest") == []


@pytest.fixture
def env():
    with temp_dir("dy-dist-") as root, closing(Env(root)) as e:
        yield e


def _files(n: int, size: int = 2000) -> list[dict[str, bytes]]:
    return [{f"l{i}/data": os.urandom(size)} for i in range(n)]


def test_pull_docker_schema2_by_tag_and_digest(env, fake):
    image = make_image(_files(3))
    fake.add("app", "v1", image)
    statuses = env.pull(f"{fake.host}/app", "v1")
    assert statuses[0] == "Pulling from app"
    assert statuses[-2:] == [f"Digest: {image.digest}", f"Status: Downloaded newer image for {fake.host}/app:v1"]
    info = env.h.service.inspect(f"{fake.host}/app:v1")
    assert info.id == image.id
    assert info.repo_digests == [f"{fake.host}/app@{image.digest}"]
    # compressed blobs are dropped once the layers are registered
    assert not any(env.h.content.has(digest_of(b)) for _, b in image.layers)
    statuses = env.pull(f"{fake.host}/app", "v1")
    assert statuses[-1] == f"Status: Image is up to date for {fake.host}/app:v1"
    env.h.service.remove(image.id, force=True)
    statuses = env.pull(f"{fake.host}/app@{image.digest}")
    assert statuses[-1] == f"Status: Downloaded newer image for {fake.host}/app@{image.digest}"
    assert env.h.service.inspect(image.id).repo_tags == []


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_pull_oci_manifest_layer_compressions(env, fake, kind):
    image = make_image(_files(2), kind=kind, oci=True)
    fake.add("oci", "latest", image)
    env.pull(f"{fake.host}/oci", "latest")
    assert env.h.service.inspect(f"{fake.host}/oci").id == image.id
    for diff_id in env.h.service.inspect(image.id).root_fs.layers:
        assert env.h.content.has(diff_id)  # the diffs stay, whatever the blobs were
    assert sum(len(chunk) for chunk in env.h.service.save([image.id])) > 0


def test_index_platform_selection(env, fake):
    amd = make_image([{"arch": b"amd64"}], arch="amd64")
    arm = make_image([{"arch": b"arm64"}], arch="arm64")
    armv7 = make_image([{"arch": b"armv7"}], arch="arm")
    for image in (amd, arm, armv7):
        fake.add("multi", image.digest, image)
    media_type, index = make_index([(amd, {"os": "linux", "architecture": "amd64"}),
                                    (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
                                    (armv7, {"os": "linux", "architecture": "arm", "variant": "v7"})])
    fake.add_index("multi", "latest", media_type, index)
    env.pull(f"{fake.host}/multi", "latest", platform="linux/arm64")
    assert env.h.service.inspect(f"{fake.host}/multi").id == arm.id
    assert env.h.service.inspect(arm.id).repo_digests == [f"{fake.host}/multi@{digest_of(index)}"]
    env.pull(f"{fake.host}/multi", "latest", platform="linux/arm/v7")
    assert env.h.service.inspect(f"{fake.host}/multi").id == armv7.id
    with pytest.raises(errdefs.NotFound, match="no matching manifest for linux/s390x in the manifest list entries"):
        env.pull(f"{fake.host}/multi", "latest", platform="linux/s390x")
    inspect = env.svc.inspect(f"{fake.host}/multi", AuthConfig())
    assert inspect.descriptor.digest == digest_of(index)
    assert [p.architecture for p in inspect.platforms] == ["amd64", "arm64", "arm"]


def test_single_manifest_with_another_platform(env, fake):
    arm = make_image([{"a": b"2"}], arch="arm64")
    fake.add("armsingle", "latest", arm)
    with pytest.raises(errdefs.NotFound, match=r"image with reference .*/armsingle:latest was found but does not "
                                               r"match the specified platform: wanted linux/amd64, actual: linux/arm64"):
        env.pull(f"{fake.host}/armsingle", "latest", platform="linux/amd64")
    env.nothing_visible()
    env.pull(f"{fake.host}/armsingle", "latest")  # no --platform: taken as it is, as Docker does
    env.pull(f"{fake.host}/armsingle", "latest", platform="linux/arm64/v8")


def test_manifest_list_without_host_platform(env, fake):
    arm = make_image([{"a": b"1"}], arch="arm64")
    fake.add("armonly", arm.digest, arm)
    media_type, index = make_index([(arm, {"os": "linux", "architecture": "arm64"})], oci=False)
    fake.add_index("armonly", "latest", media_type, index)
    with pytest.raises(errdefs.NotFound, match=r"no matching manifest for linux/amd64 in the manifest list entries"):
        env.pull(f"{fake.host}/armonly", "latest")
    env.nothing_visible()


def test_unknown_manifest_media_type(env, fake):
    fake.manifests["weird"] = {"latest": ("application/x-weird", b'{"hello": 1}')}
    with pytest.raises(errdefs.InvalidParameter, match="unsupported manifest media type"):
        env.pull(f"{fake.host}/weird", "latest")
    env.nothing_visible()


def test_unknown_tag_and_repository(env, fake):
    fake.add("app", "v1", make_image(_files(1)))
    with pytest.raises(errdefs.NotFound, match=rf"manifest for {fake.host}/app:nope not found: manifest unknown"):
        env.pull(f"{fake.host}/app", "nope")
    with pytest.raises(errdefs.NotFound, match=rf"repository {fake.host}/other not found: name unknown: "
                                               r"repository name not known to registry"):
        env.pull(f"{fake.host}/other", "latest")


def test_wrong_digest_is_refused_and_leaves_nothing(env, fake):
    image = make_image(_files(2))
    fake.add("app", "v1", image)
    bad = digest_of(image.layers[1][1])
    fake.faults[bad] = ["wrong"] * 10
    with pytest.raises(errdefs.InvalidParameter, match=f"filesystem layer verification failed for digest {bad}"):
        env.pull(f"{fake.host}/app", "v1")
    env.nothing_visible()


def test_500_and_429_are_retried(env, fake):
    image = make_image(_files(2))
    fake.add("app", "v1", image)
    first, second = (digest_of(b) for _, b in image.layers)
    fake.faults[first] = ["500", "500"]
    fake.faults[second] = ["429"]
    statuses = env.pull(f"{fake.host}/app", "v1")
    assert any(s.startswith("Retrying in") for s in statuses)
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    assert fake.blob_gets[first] == 3


def test_persistent_500_fails_after_bounded_attempts(env, fake):
    image = make_image(_files(1))
    fake.add("app", "v1", image)
    layer = digest_of(image.layers[0][1])
    fake.faults[layer] = ["500"] * 10
    with pytest.raises(errdefs.Unavailable, match="unknown: internal error"):
        env.pull(f"{fake.host}/app", "v1")
    assert fake.blob_gets[layer] == 3  # max-download-attempts
    env.nothing_visible()


def test_truncated_blob_resumes_with_range(env, fake):
    image = make_image(_files(1, 300_000))
    fake.add("app", "v1", image)
    layer = digest_of(image.layers[0][1])
    fake.faults[layer] = ["truncate"]
    env.pull(f"{fake.host}/app", "v1")
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    assert fake.blob_gets[layer] == 2


def test_stalled_connection_is_bounded_by_the_timeout(fake):
    root = Path(tempfile.mkdtemp(prefix="dy-dist-"))
    env = Env(root, timeout=0.5)
    try:
        image = make_image(_files(1, 300_000))
        fake.add("app", "v1", image)
        fake.stall_seconds = 5
        layer = digest_of(image.layers[0][1])
        fake.faults[layer] = ["stall", "stall", "stall"]
        with pytest.raises(errdefs.Unavailable, match="timeout"):
            env.pull(f"{fake.host}/app", "v1")
        env.nothing_visible()
    finally:
        env.svc.close()
        env.h.db.close()
        shutil.rmtree(root, ignore_errors=True)


def test_failed_pull_resumes_from_committed_blobs(env, fake):
    image = make_image(_files(4))
    fake.add("app", "v1", image)
    digests = [digest_of(b) for _, b in image.layers]
    fake.faults[digests[3]] = ["wrong"]
    with pytest.raises(errdefs.InvalidParameter):
        env.pull(f"{fake.host}/app", "v1")
    env.nothing_visible()
    env.pull(f"{fake.host}/app", "v1")
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    assert [fake.blob_gets[d] for d in digests] == [1, 1, 1, 2]


def test_shared_layer_downloaded_once(env, fake):
    base = {"base/file": os.urandom(5000)}
    a = make_image([base, {"a": b"a"}])
    b = make_image([base, {"b": b"b"}])
    fake.add("a", "latest", a)
    fake.add("b", "latest", b)
    env.pull(f"{fake.host}/a", "latest")
    statuses = env.pull(f"{fake.host}/b", "latest")
    assert "Already exists" in statuses
    assert fake.blob_gets[digest_of(a.layers[0][1])] == 1
    assert digest_of(b.layers[0][1]) not in fake.blob_gets or digest_of(a.layers[0][1]) == digest_of(b.layers[0][1])


def test_pull_all_tags(env, fake):
    one, two = make_image(_files(1)), make_image(_files(1))
    fake.add("app", "one", one)
    fake.add("app", "two", two)
    statuses = env.pull(f"{fake.host}/app")
    assert statuses[-1] == f"Status: Downloaded newer image for {fake.host}/app"
    assert env.h.service.inspect(f"{fake.host}/app:one").id == one.id
    assert env.h.service.inspect(f"{fake.host}/app:two").id == two.id


def test_bearer_token_auth_and_cache(env, fake):
    fake.users = {"alice": "secret"}
    image = make_image(_files(3))
    fake.add("private", "v1", image)
    env.pull(f"{fake.host}/private", "v1", auth=AuthConfig(username="alice", password="secret"))
    assert env.h.service.inspect(f"{fake.host}/private:v1").id == image.id
    scoped = [q for q in fake.token_requests if "scope=repository%3Aprivate%3Apull" in q]
    assert len(scoped) == 1  # one token for the whole pull, cached per scope
    env.h.service.remove(image.id, force=True)
    with pytest.raises(errdefs.System, match="unauthorized: incorrect username or password"):
        env.pull(f"{fake.host}/private", "v1", auth=AuthConfig(username="alice", password="wrong"))
    env.nothing_visible()


@pytest.mark.parametrize("limit", [1, 3])
def test_parallel_downloads_respect_the_limit(fake, limit):
    root = Path(tempfile.mkdtemp(prefix="dy-dist-"))
    env = Env.__new__(Env)
    try:
        env.h = Harness(root)
        env.h.config.max_concurrent_downloads = limit
        env.client = RegistryClient(Endpoints(RegistrySettings(certs_dir=root / "certs.d")), timeout=5)
        env.svc = DistributionService(env.h.config, env.h.service, env.client, retry_delay=0.01)
        env.messages = []
        image = make_image(_files(6))
        fake.add("app", "v1", image)
        fake.blob_delay = 0.15
        statuses = env.pull(f"{fake.host}/app", "v1")
        assert fake.peak_in_flight == limit
        assert statuses.count("Waiting") == 6 - limit
        assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    finally:
        env.svc.close()
        env.h.db.close()
        shutil.rmtree(root, ignore_errors=True)


def test_concurrent_pulls_share_one_transfer_per_blob(env, fake):
    import threading
    image = make_image(_files(3, 50_000))
    fake.add("app", "v1", image)
    fake.add("app", "v2", image)
    fake.blob_delay = 0.2
    errors: list[BaseException] = []

    def pull(tag: str) -> None:
        try:
            env.svc.pull(f"{fake.host}/app", tag, "", AuthConfig(), lambda m: None)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=pull, args=(tag,)) for tag in ("v1", "v2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert all(fake.blob_gets[digest_of(b)] == 1 for _, b in image.layers)
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == env.h.service.inspect(f"{fake.host}/app:v2").id
    assert not any(env.h.content.has(digest_of(b)) for _, b in image.layers)


def test_recover_drops_only_stale_unused_blobs(env, fake):
    image = make_image(_files(2))
    fake.add("app", "v1", image)
    bad = digest_of(image.layers[1][1])
    fake.faults[bad] = ["wrong"]
    with pytest.raises(errdefs.InvalidParameter):
        env.pull(f"{fake.host}/app", "v1")
    kept = digest_of(image.layers[0][1])
    assert env.h.content.has(kept)
    assert env.svc.recover() == []  # fresh: kept for the next pull
    env.pull(f"{fake.host}/app", "v1")
    diffs = env.h.service.inspect(image.id).root_fs.layers
    orphan = env.h.content.ingest(b"left by a pull long ago")
    os.utime(env.h.content.path(orphan.digest), (0, 0))
    for diff in diffs:
        os.utime(env.h.content.path(diff), (0, 0))
    assert env.svc.recover() == [orphan.digest]
    assert all(env.h.content.has(d) for d in diffs)


def test_login_identity_token_then_pull_with_it(env, fake):
    fake.users = {"alice": "secret"}
    image = make_image(_files(1))
    fake.add("private", "v1", image)
    answer = env.svc.login(AuthConfig(username="alice", password="secret", serveraddress=fake.host))
    assert (answer.status, answer.identity_token) == ("Login Succeeded", "refresh-alice")
    env.pull(f"{fake.host}/private", "v1", auth=AuthConfig(identitytoken="refresh-alice"))
    assert any(r.startswith("POST ") and "grant_type=refresh_token" in r for r in fake.token_requests)
    assert env.h.service.inspect(f"{fake.host}/private:v1").id == image.id


def test_push_retries_a_failed_upload(env, fake):
    image = make_image(_files(2, 40_000))
    env.h.service.load(io.BytesIO(docker_archive(image, f"{fake.host}/up/app:v1")))
    fake.upload_faults = ["", "500", "", "500"]  # a PATCH fails, then another (layers go in parallel)
    messages: list = []
    env.svc.push(f"{fake.host}/up/app", "v1", AuthConfig(), messages.append)
    statuses = [m.status for m in messages if m.status]
    assert sum(s.startswith("Retrying in") for s in statuses) >= 1
    assert statuses[-1].startswith("v1: digest: sha256:")
    assert fake.manifests["up/app"]["v1"][1]
    fake.upload_faults = ["500"] * 20
    env.h.service.tag(image.id, f"{fake.host}/up/other", "v1")
    # known on this registry, so a mount is tried first: the fake fails it like the uploads
    with pytest.raises(errdefs.Unavailable, match="upload failed"):
        env.svc.push(f"{fake.host}/up/other", "v1", AuthConfig(), lambda m: None)


def test_manifest_429_and_500_are_retried_then_reported(env, fake):
    image = make_image(_files(1))
    fake.add("app", "v1", image)
    fake.faults["manifest:v1"] = ["429", "500"]
    env.pull(f"{fake.host}/app", "v1")
    assert env.h.service.inspect(f"{fake.host}/app:v1").id == image.id
    fake.faults["manifest:v1"] = ["429"] * 10
    with pytest.raises(errdefs.Unavailable, match="toomanyrequests: slow down"):
        env.pull(f"{fake.host}/app", "v1")
