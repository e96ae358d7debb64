"""Push and pull against a real registry: Debian's docker-registry (CNCF distribution 2.8).

Images are made in memory (tests.integration.distribution_fake) or loaded from the shared
fixtures, pushed, removed, pulled back; IDs and digests must survive the round trip.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from dockyard.daemon.distribution.service import DistributionService
from dockyard.distribution.client import RegistryClient, RetryPolicy
from dockyard.distribution.endpoints import Endpoints, RegistrySettings
from tests.integration import distribution_registry as dr
from tests.integration.distribution_fake import docker_archive, make_image
from tests.integration.image_harness import Harness
from tests.integration.tempdirs import temp_dir

pytestmark = pytest.mark.skipif(not dr.available(), reason="docker-registry is not installed")


class Env:
    def __init__(self, root: Path) -> None:
        self.h = Harness(root)
        client = RegistryClient(Endpoints(RegistrySettings(certs_dir=root / "certs.d")), timeout=10,
                                retry=RetryPolicy(attempts=2, first_delay=0.05))
        self.svc = DistributionService(self.h.config, self.h.service, client, retry_delay=0.05)
        self.messages: list = []

    def run(self, op, *args, auth: AuthConfig | None = None) -> list[str]:
        self.messages.clear()
        op(*args, auth or AuthConfig(), self.messages.append)
        return [f"{m.id}: {m.status}" if m.id else m.status for m in self.messages if m.status]

    def push(self, name: str, tag: str = "", auth: AuthConfig | None = None) -> list[str]:
        return self.run(self.svc.push, name, tag, auth=auth)

    def pull(self, name: str, tag: str = "", auth: AuthConfig | None = None) -> list[str]:
        return self.run(self.svc.pull, name, tag, "", auth=auth)

    def close(self) -> None:
        self.svc.close()
        self.h.db.close()

    def load(self, archive: bytes) -> None:
        self.h.service.load(io.BytesIO(archive))


@pytest.fixture
def env():
    with temp_dir("dy-reg-") as root, closing(Env(root)) as e:
        yield e


def _manifest(registry: dr.Registry, repo: str, ref: str) -> dict:
    request = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{ref}", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_fixture_round_trip(env, registry):
    env.h.load("busybox-docker-save.tar")
    image_id = env.h.service.inspect("busybox").id
    name = f"{registry.host}/library/busybox"
    env.h.service.tag("busybox", name, "1.0")
    out = env.push(name, "1.0")
    assert out[0] == f"The push refers to repository [{name}]"
    last = out[-1]
    assert last.startswith("1.0: digest: sha256:") and " size: " in last
    digest = last.split()[2]
    assert f"{name}@{digest}" in env.h.service.inspect(image_id).repo_digests
    # a second push: every layer is already there (HEAD)
    out = env.push(name, "1.0")
    assert any(line.endswith("Layer already exists") for line in out)
    env.h.service.remove(image_id, force=True)
    assert env.h.rows("layers") == 0
    out = env.pull(name, "1.0")
    assert out[-2:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}:1.0"]
    pulled = env.h.service.inspect(f"{name}:1.0")
    assert pulled.id == image_id
    assert pulled.repo_digests == [f"{name}@{digest}"]
    # by digest, into a store that has nothing
    env.h.service.remove(image_id, force=True)
    env.pull(f"{name}@{digest}")
    assert env.h.service.inspect(f"{name}@{digest}").id == image_id


def test_multi_layer_chunked_push_mount_and_pull(env, registry):
    image = make_image([{f"f{i}": os.urandom(20_000)} for i in range(20)])
    env.load(docker_archive(image, "many:latest"))
    first = f"{registry.host}/team/many"
    env.h.service.tag("many", first, "v1")
    env.svc.push_chunk_size = 8192  # several PATCHes per layer
    out = env.push(first, "v1")
    assert sum(line.endswith(": Pushed") for line in out) == 20
    manifest = _manifest(registry, "team/many", "v1")
    assert len(manifest["layers"]) == 20 and manifest["config"]["digest"] == image.id
    # another repository on the same registry: blobs are mounted, not uploaded
    env.svc.push_chunk_size = 0
    second = f"{registry.host}/other/many"
    env.h.service.tag("many", second, "v1")
    out = env.push(second, "v1")
    assert sum(line.endswith(": Mounted from team/many") for line in out) == 20
    env.h.service.remove(image.id, force=True)
    out = env.pull(second, "v1")
    assert sum(line.endswith(": Pull complete") for line in out) == 20
    assert env.h.service.inspect(f"{second}:v1").id == image.id


def test_push_missing_image_and_pull_missing_tag(env, registry):
    with pytest.raises(errdefs.NotFound, match=f"An image does not exist locally with the tag: {registry.host}/nope"):
        env.push(f"{registry.host}/nope", "latest")
    with pytest.raises(errdefs.NotFound, match=rf"manifest for {registry.host}/nope:latest not found: manifest unknown"):
        env.pull(f"{registry.host}/nope", "latest")


def test_basic_auth_login_push_pull(env):
    with dr.running(htpasswd=("alice", "s3cret")) as registry:
        good = AuthConfig(username="alice", password="s3cret", serveraddress=registry.host)
        assert env.svc.login(good).status == "Login Succeeded"
        with pytest.raises(errdefs.Unauthorized, match="401"):
            env.svc.login(AuthConfig(username="alice", password="bad", serveraddress=registry.host))
        image = make_image([{"secret": b"data"}])
        env.load(docker_archive(image, f"{registry.host}/private/app:v1"))
        with pytest.raises(errdefs.System, match=r'Post "http://.*/v2/private/app/blobs/uploads/.*": '
                                                       r'no basic auth credentials'):
            env.push(f"{registry.host}/private/app", "v1")
        env.push(f"{registry.host}/private/app", "v1", auth=good)
        env.h.service.remove(image.id, force=True)
        with pytest.raises(errdefs.System, match="no basic auth credentials"):
            env.pull(f"{registry.host}/private/app", "v1")
        with pytest.raises(errdefs.System, match="unauthorized: authentication required"):
            env.pull(f"{registry.host}/private/app", "v1",
                     auth=AuthConfig(username="alice", password="wrong", serveraddress=registry.host))
        env.pull(f"{registry.host}/private/app", "v1", auth=good)
        assert env.h.service.inspect(f"{registry.host}/private/app:v1").id == image.id


def test_search_on_a_registry_without_v1_search(env, registry):
    with pytest.raises(errdefs.NotFound, match="Unexpected status code 404"):
        env.svc.search(f"{registry.host}/busybox", 25, {}, AuthConfig())
    with pytest.raises(errdefs.InvalidParameter, match=r"limit 200 is outside the range of \[1, 100\]"):
        env.svc.search("busybox", 200, {}, AuthConfig())


def test_bearer_token_auth_with_the_real_registry(env):
    root = Path(tempfile.mkdtemp(prefix="dy-token-"))
    tokens = dr.TokenServer({"erin": "tok3n"}, root)
    registry = dr.start(token=tokens)
    try:
        good = AuthConfig(username="erin", password="tok3n", serveraddress=registry.host)
        assert env.svc.login(good).status == "Login Succeeded"
        with pytest.raises(errdefs.Unauthorized, match="incorrect username or password"):
            env.svc.login(AuthConfig(username="erin", password="nope", serveraddress=registry.host))
        image = make_image([{f"t{i}": os.urandom(3000)} for i in range(3)])
        env.load(docker_archive(image, f"{registry.host}/public/app:v1"))
        env.h.service.tag(image.id, f"{registry.host}/team/app", "v1")
        with pytest.raises(errdefs.System, match="^unauthorized: authentication required$"):
            env.push(f"{registry.host}/public/app", "v1")  # anonymous: pull only
        out = env.push(f"{registry.host}/public/app", "v1", auth=good)
        assert out[-1].startswith("v1: digest: sha256:")
        # another repository: the token also asks pull on the source, so blobs are mounted
        out = env.push(f"{registry.host}/team/app", "v1", auth=good)
        assert sum(line.endswith("Mounted from public/app") for line in out) == 3
        push_scopes = [r for r in tokens.requests if "team%2Fapp%3Apull%2Cpush" in r]
        assert push_scopes and all("public%2Fapp%3Apull" in r for r in push_scopes)
        env.h.service.remove(image.id, force=True)
        env.pull(f"{registry.host}/public/app", "v1")  # anonymous pull of a public repository
        assert env.h.service.inspect(f"{registry.host}/public/app:v1").id == image.id
        with pytest.raises(errdefs.System, match="^unauthorized: authentication required$"):
            env.pull(f"{registry.host}/team/app", "v1")  # anonymous, private repository
        before = len(tokens.requests)
        env.pull(f"{registry.host}/team/app", "v1", auth=good)
        assert len(tokens.requests) == before + 1  # one token for the manifest and every blob
    finally:
        dr.stop(registry)
        tokens.stop()
        shutil.rmtree(root, ignore_errors=True)
