import pytest

from tests import daemon_harness


@pytest.fixture(scope="session")
def dockyardd():
    """One private daemon for the session, with busybox:latest loaded."""
    handle = daemon_harness.new_daemon()
    try:
        daemon_harness.load_busybox(handle)
        yield handle
    finally:
        daemon_harness.destroy(handle)


@pytest.fixture
def fresh_daemon():
    """A daemon of the test's own, for tests that restart or break it."""
    handle = daemon_harness.new_daemon()
    try:
        yield handle
    finally:
        daemon_harness.destroy(handle)


@pytest.fixture
def docker_client(dockyardd):
    import docker

    client = docker.DockerClient(base_url=dockyardd.host, version="auto", timeout=60)
    yield client
    client.close()
