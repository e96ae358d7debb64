"""Fixtures shared by the integration tests (the daemon ones are in tests/conftest.py)."""

import pytest

from tests.integration import distribution_registry, image_harness, registry_hub
from tests.integration.distribution_fake import FakeRegistry


@pytest.fixture
def h():
    """An ImageService on real storage in a temp dir of its own, removed afterwards."""
    with image_harness.temp_harness() as harness:
        yield harness


@pytest.fixture
def hub():
    """Our hub (``dockyard registry serve``) on a free loopback port, stopped by PID afterwards."""
    with registry_hub.running() as started:
        yield started


@pytest.fixture
def registry():
    """Debian's docker-registry on a free loopback port, stopped by PID afterwards."""
    with distribution_registry.running() as started:
        yield started


@pytest.fixture
def fake():
    """The in-process fake registry (faults, throttling, counters), shut down afterwards."""
    with FakeRegistry() as started:
        yield started
