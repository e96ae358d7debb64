"""run/create --health-* and --no-healthcheck become the create body's Healthcheck as docker sends it."""

from __future__ import annotations

import pytest

from dockyard.cli.parser import DockyardParser
from dockyard.cli.runopts import OptionError, add_container_flags, build_create_body


def _body(*flags: str) -> dict:
    p = DockyardParser("run", "Create and run a new container")
    add_container_flags(p, run=True)
    opts, rest = p.parse_known_args([*flags])
    opts.args = ["busybox", *rest]
    return build_create_body(opts, run=True)


def test_health_flags():
    body = _body("--health-cmd", "curl -f x", "--health-interval", "1m30s", "--health-timeout", "200ms",
                 "--health-retries", "4", "--health-start-period", "1.5s", "--health-start-interval", "2s")
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 90_000_000_000,
                                   "Timeout": 200_000_000, "StartPeriod": 1_500_000_000,
                                   "StartInterval": 2_000_000_000, "Retries": 4}
    assert _body("--health-retries", "2")["Healthcheck"]["Test"] is None  # the image's test is kept
    assert "Healthcheck" not in _body()


def test_no_healthcheck():
    assert _body("--no-healthcheck")["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(OptionError, match="--no-healthcheck conflicts with --health-\\* options"):
        _body("--no-healthcheck", "--health-cmd", "x")
    with pytest.raises(OptionError, match="--health-interval cannot be negative"):
        _body("--health-interval=-1s")
