"""Fixtures shared by the compat tests (the daemon ones are in tests/conftest.py)."""

import pytest

from tests.integration import distribution_registry


@pytest.fixture
def registry():
    """Debian's docker-registry on a free loopback port, stopped by PID afterwards."""
    with distribution_registry.running() as started:
        yield started


@pytest.fixture
def names(dockyardd):
    """The names a test gives its containers and images (see helpers.new_name): afterwards each
    container is removed (rm -f), then each image of such a name (rmi -f)."""
    made: list[str] = []
    yield made
    for name in made:
        dockyardd.docker("rm", "-f", name)
    images = set(dockyardd.docker("images", "--format", "{{.Repository}}").stdout.decode().split())
    for name in made:
        if name in images:
            dockyardd.docker("rmi", "-f", name)
