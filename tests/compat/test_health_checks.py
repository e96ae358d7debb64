"""Health checks through the real docker CLI: --health-* flags, State.Health, health_status
events, ps --filter health=, a HEALTHCHECK from the image, --no-healthcheck."""

from __future__ import annotations

import json
import time

from tests.compat.helpers import new_name, until
from tests.compat.openapi import validate
from tests.compat.test_api_errors import call


def _health(d, name: str) -> dict | None:
    out = d.docker("inspect", "-f", "{{json .State.Health}}", name).stdout.decode().strip()
    return json.loads(out) if out and out != "null" else None


def test_health_flags_status_log_events_and_filter(dockyardd, names):
    d = dockyardd
    name = new_name(names, "hc")
    r = d.docker("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok && echo fine || (echo bad; exit 1)",
                 "--health-interval", "100ms", "--health-retries", "2", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr.decode()
    status = d.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert "(health: starting)" in status or "(unhealthy)" in status
    assert until(lambda: (_health(d, name) or {}).get("Status") == "unhealthy")
    health = _health(d, name)
    assert health["FailingStreak"] >= 2
    assert health["Log"][-1]["ExitCode"] == 1 and health["Log"][-1]["Output"] == "bad\n"
    assert {"Start", "End"} <= set(health["Log"][-1])
    assert until(lambda: len(_health(d, name)["Log"]) == 5)  # only the last five are kept
    assert name in d.docker("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").stdout.decode()

    assert d.docker("exec", name, "touch", "/tmp/ok").returncode == 0
    assert until(lambda: _health(d, name)["Status"] == "healthy")
    assert _health(d, name)["FailingStreak"] == 0
    assert d.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode().strip() \
        .endswith("(healthy)")
    assert name in d.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.decode()
    assert name not in d.docker("ps", "--filter", "health=none", "--format", "{{.Names}}").stdout.decode()
    status, _, doc = call(d, "GET", f"/v1.50/containers/{name}/json")
    assert status == 200
    validate("get", "/containers/{id}/json", 200, json.loads(doc))  # State.Health fits the spec

    time.sleep(1.0)  # the CLI sends --until in whole seconds: let this second pass
    events = d.docker("events", "--since", "0", "--until", "0s", "--filter", f"container={name}",
                      "--format", "{{.Action}}").stdout.decode().splitlines()
    assert "health_status: unhealthy" in events and "health_status: healthy" in events, events
    assert events.index("health_status: unhealthy") < events.index("health_status: healthy")

    assert d.docker("stop", "-t", "0", name).returncode == 0
    assert _health(d, name)["Status"] == "unhealthy"  # moby: unhealthy once the monitor stopped


def test_timeout_and_exec_form(dockyardd, names):
    d = dockyardd
    name = new_name(names, "hc")
    r = d.docker("run", "-d", "--name", name, "--health-cmd", "sleep 5", "--health-interval", "100ms",
                 "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr.decode()
    assert until(lambda: (_health(d, name) or {}).get("Status") == "unhealthy")
    entry = _health(d, name)["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (200ms)"


def test_start_period_keeps_starting(dockyardd, names):
    d = dockyardd
    name = new_name(names, "hc")
    r = d.docker("run", "-d", "--name", name, "--health-cmd", "exit 1", "--health-interval", "100ms",
                 "--health-retries", "1", "--health-start-period", "30s", "--health-start-interval", "100ms",
                 "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr.decode()
    assert until(lambda: len((_health(d, name) or {}).get("Log") or []) >= 2)
    health = _health(d, name)
    assert health["Status"] == "starting" and health["FailingStreak"] == 0


def test_image_healthcheck_and_no_healthcheck(dockyardd, names):
    d = dockyardd
    image = new_name(names, "hcimg")
    # no builder here: an image gets the health check of the container it is committed from
    source = new_name(names, "hc")
    assert d.docker("create", "--name", source, "--health-cmd", "true", "--health-interval", "100ms",
                    "--health-retries", "1", "busybox", "true").returncode == 0
    commit = d.docker("commit", source, image)
    assert commit.returncode == 0, commit.stderr.decode()
    config = d.docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", image).stdout.decode()
    assert json.loads(config)["Test"] == ["CMD-SHELL", "true"]
    with_check = new_name(names, "hc")
    assert d.docker("run", "-d", "--name", with_check, image, "sleep", "1000").returncode == 0
    assert until(lambda: (_health(d, with_check) or {}).get("Status") == "healthy")
    tuned = new_name(names, "hc")  # --health-* flags override only what they set
    assert d.docker("run", "-d", "--name", tuned, "--health-retries", "7", image, "sleep", "1000").returncode == 0
    config = json.loads(d.docker("inspect", "-f", "{{json .Config.Healthcheck}}", tuned).stdout)
    assert config["Test"] == ["CMD-SHELL", "true"] and config["Retries"] == 7 and config["Interval"] == 100_000_000
    without = new_name(names, "hc")
    assert d.docker("run", "-d", "--name", without, "--no-healthcheck", image, "sleep", "1000").returncode == 0
    time.sleep(0.3)
    assert _health(d, without) is None
    assert without in d.docker("ps", "--filter", "health=none", "--format", "{{.Names}}").stdout.decode()


def test_bad_health_filter(dockyardd):
    r = dockyardd.docker("ps", "--filter", "health=great")
    assert r.returncode != 0 and "Unrecognised filter value for health: great" in r.stderr.decode()


def test_health_settings_checked_at_create(dockyardd):
    r = dockyardd.docker("create", "--health-cmd", "true", "--health-interval", "10us", "busybox")
    assert r.returncode != 0 and "Interval in Healthcheck cannot be less than 1ms" in r.stderr.decode()
