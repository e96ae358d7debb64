"""The ``local`` log driver end to end through the real docker CLI: options, inspect, rotation
with compression, and every ``docker logs`` option against it."""

from __future__ import annotations

import gzip
import json
import re
import secrets
import tempfile
from pathlib import Path

import pytest

from tests import daemon_harness
from tests.compat.helpers import new_name, ok, until
from tests.compat.test_docker_cli_logs_opts import follow_while_it_writes

IMAGE = "busybox"


def _log_dir(d, name: str) -> Path:
    cid = ok(d, "inspect", "-f", "{{.Id}}", name).strip()
    return d.data_root / "containers" / cid / "local-logs"


def test_rotation_compression_inspect_and_tail(dockyardd, names):
    name = new_name(names, "ll")
    out = ok(dockyardd, "run", "--name", name, "--log-driver", "local", "--log-opt", "max-size=10k",
             "--log-opt", "max-file=3", "busybox", "sh", "-c",
             "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done")
    assert out.splitlines()[-1] == "line-1999"
    assert json.loads(ok(dockyardd, "inspect", "-f", "{{json .HostConfig.LogConfig}}", name)) == \
        {"Type": "local", "Config": {"max-file": "3", "max-size": "10k"}}
    assert ok(dockyardd, "inspect", "-f", "{{.LogPath}}", name) == "\n"  # dockerd keeps it private
    log_dir = _log_dir(dockyardd, name)
    files = ["container.log", "container.log.1.gz", "container.log.2.gz"]
    assert until(lambda: sorted(p.name for p in log_dir.iterdir()) == files, timeout=20.0), list(log_dir.iterdir())
    assert (log_dir / "container.log").stat().st_size <= 10_000 + 64
    raw = gzip.decompress((log_dir / "container.log.1.gz").read_bytes())
    assert raw[4:6] == b"\x0a\x06" and raw[6:12] == b"stdout"  # a length, then LogEntry.source
    assert ok(dockyardd, "logs", "--tail", "1", name) == "line-1999\n"
    lines = ok(dockyardd, "logs", name).splitlines()
    first = int(lines[0].split("-")[1])
    assert lines == [f"line-{i}" for i in range(first, 2000)] and first > 0
    tail = ok(dockyardd, "logs", "--tail", str(len(lines) - 5), name).splitlines()
    assert tail == lines[5:]  # through the gzipped files too


def test_streams_timestamps_since_until_and_tty(dockyardd, names):
    name = new_name(names, "ll")
    ok(dockyardd, "run", "--name", name, "--log-driver", "local", "busybox", "sh", "-c",
       "echo out; echo err >&2; printf no-newline")
    r = dockyardd.docker("logs", name)
    assert r.stdout == b"out\nno-newline" and r.stderr == b"err\n"  # as dockerd: no newline added
    assert dockyardd.docker("logs", "--tail", "1", name).stdout == b"no-newline"
    stamped = ok(dockyardd, "logs", "-t", name).splitlines()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \S+", line) for line in stamped), stamped
    stamp = stamped[0].split()[0]
    assert ok(dockyardd, "logs", "--since", stamp, name) == "out\nno-newline"
    assert ok(dockyardd, "logs", "--until", "2000-01-01T00:00:00Z", name) == ""
    assert ok(dockyardd, "logs", "--since", "1h", name) == "out\nno-newline"
    r = dockyardd.docker("logs", "--since", "yesterday", name)
    assert r.returncode != 0
    tty = new_name(names, "ll")
    ok(dockyardd, "run", "-t", "--name", tty, "--log-driver", "local", "busybox", "echo", "hi")
    assert ok(dockyardd, "logs", tty) == "hi\r\n"


def test_follow_across_rotation_ends_when_the_container_stops(dockyardd, names):
    name = new_name(names, "ll")
    follow_while_it_writes(dockyardd, name, "--log-driver", "local", "--log-opt", "max-size=6k",
                           "--log-opt", "max-file=5")
    # one rotation (about 10 KB written): a poll that lags cannot miss a whole file
    assert len([p for p in _log_dir(dockyardd, name).iterdir() if ".gz" in p.name]) >= 1


def test_unknown_option_is_refused_at_create(dockyardd):
    r = dockyardd.docker("create", "--log-driver", "local", "--log-opt", "max-age=3", "busybox", "true")
    assert r.returncode == 1  # the CLI's code for an error from the daemon
    assert b"unknown log opt 'max-age' for log driver local" in r.stderr
    r = dockyardd.docker("create", "--log-driver", "local", "--log-opt", "max-file=1", "busybox", "true")
    assert b"compression cannot be enabled when max file count is 1" in r.stderr


def test_daemon_json_default_local_driver():
    with tempfile.TemporaryDirectory(prefix="dyt-conf-") as tmp:
        conf = Path(tmp) / "daemon.json"
        conf.write_text(json.dumps({"log-driver": "local",
                                    "log-opts": {"max-file": "3", "compress": "false"}}))
        d = daemon_harness.new_daemon(["--config-file", str(conf)])
        try:
            daemon_harness.load_busybox(d)
            assert ok(d, "info", "-f", "{{.LoggingDriver}}") == "local\n"
            name = f"ll-{secrets.token_hex(4)}"
            ok(d, "run", "--name", name, "--log-opt", "max-size=1k", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done")
            assert json.loads(ok(d, "inspect", "-f", "{{json .HostConfig.LogConfig}}", name)) == \
                {"Type": "local", "Config": {"compress": "false", "max-file": "3", "max-size": "1k"}}
            assert sorted(p.name for p in _log_dir(d, name).iterdir()) == \
                ["container.log", "container.log.1", "container.log.2"]
            assert ok(d, "logs", "--tail", "2", name) == "line-198\nline-199\n"
        finally:
            daemon_harness.destroy(d)


def test_docker_py_and_our_cli(dockyardd, docker_client, names):
    from docker.types import LogConfig

    name = new_name(names, "ll")
    container = docker_client.containers.run(IMAGE, ["sh", "-c", "echo one; echo two >&2"], name=name,
                                             detach=True, log_config=LogConfig(type="local"))
    container.wait(timeout=30)
    assert container.logs(stdout=True, stderr=False) == b"one\n"
    assert container.logs(stdout=False, stderr=True) == b"two\n"
    assert container.attrs["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    ours = new_name(names, "ll")
    r = dockyardd.dockyard("run", "--name", ours, "--log-driver", "local", IMAGE, "echo", "hi")
    assert r.returncode == 0, r.stderr.decode()
    assert dockyardd.dockyard("logs", ours).stdout == b"hi\n"
