"""The registry client against our own hub (``dockyard registry serve``): round trip, chunked
push, mount, token auth with accounts, search, and the hub as a pull-through mirror."""

from __future__ import annotations

import os
import subprocess
from contextlib import closing

import pytest

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from tests.integration import distribution_registry as dr
from tests.integration import registry_hub as rh
from tests.integration.distribution_fake import docker_archive, make_image
from tests.integration.tempdirs import temp_dir
from tests.integration.test_distribution_registry import Env


@pytest.fixture
def root():
    with temp_dir("dy-hub-") as path:
        yield path


@pytest.fixture
def env(root):
    with closing(Env(root / "store")) as e:
        yield e


def test_round_trip_chunked_mount_search(env, root):
    with rh.running(root=root, keep=True) as hub:
        image = make_image([{f"h{i}": os.urandom(30_000)} for i in range(4)])
        name = f"{hub.host}/team/app"
        env.load(docker_archive(image, f"{name}:v1"))
        env.svc.push_chunk_size = 16384
        out = env.push(name, "v1")
        assert sum(line.endswith(": Pushed") for line in out) == 4 and out[-1].startswith("v1: digest: sha256:")
        assert any(line.endswith("Layer already exists") for line in env.push(name, "v1"))
        env.svc.push_chunk_size = 0
        env.h.service.tag(image.id, f"{hub.host}/other/app", "v1")
        out = env.push(f"{hub.host}/other/app", "v1")
        assert sum(line.endswith("Mounted from team/app") for line in out) == 4
        env.h.service.remove(image.id, force=True)
        env.pull(name, "v1")
        assert env.h.service.inspect(f"{name}:v1").id == image.id
        found = env.svc.search(f"{hub.host}/app", 25, {}, AuthConfig())
        assert {r.name for r in found} >= {"team/app", "other/app"}


def test_token_auth_with_accounts(env, root):
    subprocess.run(["htpasswd", "-Bbc", str(root / "htpasswd"), "gina", "hubpw"], check=True, capture_output=True)
    with rh.running("--htpasswd", str(root / "htpasswd"), root=root, keep=True) as hub:
        good = AuthConfig(username="gina", password="hubpw", serveraddress=hub.host)
        assert env.svc.login(good).status == "Login Succeeded"
        with pytest.raises(errdefs.Unauthorized):
            env.svc.login(AuthConfig(username="gina", password="bad", serveraddress=hub.host))
        image = make_image([{"g": os.urandom(5000)}])
        name = f"{hub.host}/gina/app"
        env.load(docker_archive(image, f"{name}:1"))
        with pytest.raises(errdefs.Forbidden, match="^denied: requested access to the resource is denied$"):
            env.push(name, "1")  # anonymous
        assert env.push(name, "1", auth=good)[-1].startswith("1: digest:")
        env.h.service.remove(image.id, force=True)
        env.pull(name, "1")  # a public repository: anonymous pull
        assert env.h.service.inspect(f"{name}:1").id == image.id


def test_hub_as_a_pull_through_mirror(env, root):
    with dr.running() as upstream:
        image = make_image([{"mirrored": os.urandom(4000)}])
        env.load(docker_archive(image, f"{upstream.host}/library/mirrored:1"))
        env.push(f"{upstream.host}/library/mirrored", "1")
        env.h.service.remove(image.id, force=True)
        with rh.running("--proxy-remote-url", f"http://{upstream.host}", root=root, keep=True) as hub:
            from dockyard.daemon.distribution.service import DistributionService
            from dockyard.distribution.client import RegistryClient, RetryPolicy
            from dockyard.distribution.endpoints import Endpoints, RegistrySettings
            client = RegistryClient(Endpoints(RegistrySettings(mirrors=[f"http://{hub.host}"],
                                                               certs_dir=root / "certs.d")),
                                    timeout=10, retry=RetryPolicy(attempts=1))
            mirrored = DistributionService(env.h.config, env.h.service, client, retry_delay=0.05)
            try:
                out: list = []
                mirrored.pull("mirrored", "1", "", AuthConfig(), out.append)
                assert out[-1].status == "Status: Downloaded newer image for mirrored:1"
                assert env.h.service.inspect("mirrored:1").id == image.id
            finally:
                mirrored.close()
