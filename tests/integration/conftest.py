"""Fixtures shared by the integration tests (the daemon ones are in tests/conftest.py)."""

import pytest

from tests.integration import image_harness


@pytest.fixture
def h():
    """An ImageService on real storage in a temp dir of its own, removed afterwards."""
    with image_harness.temp_harness() as harness:
        yield harness
