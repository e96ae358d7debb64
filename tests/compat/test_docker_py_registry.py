"""docker-py 7 against dockyardd and a real registry: login, push, pull, registry data, search."""

from __future__ import annotations

import docker
import pytest

from tests.integration import distribution_registry as dr

pytestmark = pytest.mark.skipif(not dr.available(), reason="docker-registry is not installed")


def test_docker_py_push_pull_login_registry_data(docker_client):
    with dr.running(htpasswd=("dave", "pw")) as registry:
        repo = f"{registry.host}/py/busybox"
        image = docker_client.images.get("busybox")
        assert image.tag(repo, "v1")
        with pytest.raises(docker.errors.APIError, match="401"):
            docker_client.login("dave", "wrong", registry=registry.host, reauth=True)
        assert docker_client.login("dave", "pw", registry=registry.host)["Status"] == "Login Succeeded"
        auth = {"username": "dave", "password": "pw"}
        lines = list(docker_client.images.push(repo, "v1", auth_config=auth, stream=True, decode=True))
        aux = [line["aux"] for line in lines if "aux" in line]
        assert aux and aux[0]["Tag"] == "v1" and aux[0]["Digest"].startswith("sha256:")
        data = docker_client.images.get_registry_data(f"{repo}:v1", auth_config=auth)
        assert data.id == aux[0]["Digest"]
        assert data.has_platform("linux/amd64")
        # the session's busybox stays (other tests build on it): untag and pull the name back
        docker_client.images.remove(f"{repo}:v1")
        pulled = docker_client.images.pull(repo, tag="v1", auth_config=auth)
        assert pulled.id == image.id
        assert f"{repo}@{aux[0]['Digest']}" in pulled.attrs["RepoDigests"]
        with pytest.raises(docker.errors.APIError):
            docker_client.images.pull(repo, tag="v1")  # no credentials
        docker_client.images.remove(f"{repo}:v1")
