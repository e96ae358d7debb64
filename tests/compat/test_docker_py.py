"""docker-py 7 against dockyardd."""

import time

import docker
import pytest


def test_ping_version_info(docker_client):
    assert docker_client.ping() is True
    v = docker_client.version()
    assert v["ApiVersion"] == "1.50"
    info = docker_client.info()
    assert info["Driver"] == "overlay2" and info["NCPU"] >= 1 and info["MemTotal"] > 0


def test_run_returns_output(docker_client):
    assert docker_client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_run_nonzero_raises_container_error(docker_client):
    with pytest.raises(docker.errors.ContainerError) as err:
        docker_client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"], remove=True, stderr=True)
    assert err.value.exit_status == 4


def test_detached_lifecycle_logs_wait(docker_client):
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.2; echo two"],
                                     detach=True, labels={"t": "py"})
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        assert c.logs() == b"one\ntwo\n"
        c.reload()
        assert c.status == "exited" and c.labels == {"t": "py"}
        assert c.id in [x.id for x in docker_client.containers.list(all=True, filters={"label": "t=py"})]
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(c.id)


def test_low_level_create_start_inspect(docker_client):
    api = docker_client.api
    host_config = api.create_host_config(mem_limit="32m", cap_drop=["NET_RAW"], read_only=True)
    c = api.create_container("busybox", ["sleep", "30"], host_config=host_config, name="py-%d" % time.monotonic_ns())
    try:
        api.start(c["Id"])
        info = api.inspect_container(c["Id"])
        assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
        assert info["HostConfig"]["Memory"] == 32 * 1024 * 1024
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["Config"]["Image"] == "busybox"
        api.kill(c["Id"], signal="SIGKILL")
        assert api.wait(c["Id"], timeout=30)["StatusCode"] == 137
    finally:
        api.remove_container(c["Id"], force=True)


def test_errors_map_to_docker_py_exceptions(docker_client):
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get("nope:nope")
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("doesnotexist")
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.api.create_container("busybox", "true", host_config=docker_client.api.create_host_config(mem_limit=1024))
    assert err.value.status_code == 400


def test_images_api(docker_client):
    img = docker_client.images.get("busybox")
    assert "busybox:latest" in img.tags
    img.tag("pytag", "v1")
    assert "pytag:v1" in docker_client.images.get("pytag:v1").tags
    docker_client.images.remove("pytag:v1")
    assert any("busybox:latest" in i.tags for i in docker_client.images.list())


def test_force_remove_races_with_exit(docker_client):
    """rm -f right as the container exits succeeds every time (dockerd's behaviour)."""
    for i in range(10):
        c = docker_client.containers.run("busybox", "true", detach=True)
        time.sleep(0.005 * (i % 4))
        c.remove(force=True)
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(c.id)
