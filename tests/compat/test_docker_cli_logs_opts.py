"""Log options through the real docker CLI and docker-py: json-file compress=true rotation,
tag/labels/env attrs stored as dockerd stores them, and a daemon that refuses to start with a
bad log driver or option in daemon.json."""

from __future__ import annotations

import gzip
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from tests import daemon_harness
from tests.compat.helpers import new_name, ok, until


def _log_path(d, name: str) -> Path:
    return Path(ok(d, "inspect", "-f", "{{.LogPath}}", name).strip())


def test_json_file_compress_rotates_into_gzip_files_docker_logs_reads(dockyardd, names):
    name = new_name(names, "lo")
    out = ok(dockyardd, "run", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
             "--log-opt", "compress=true", "busybox", "sh", "-c",
             "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done")
    assert out.splitlines()[-1] == "line-399"
    log = _log_path(dockyardd, name)
    files = sorted([log.name, log.name + ".1.gz", log.name + ".2.gz"])
    assert until(lambda: sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
                 == files, timeout=20.0), list(log.parent.iterdir())
    raw = gzip.decompress(Path(f"{log}.1.gz").read_bytes()).splitlines()
    assert json.loads(raw[-1])["stream"] == "stdout"
    lines = ok(dockyardd, "logs", name).splitlines()
    first = int(lines[0].split("-")[1])
    assert first > 0 and lines == [f"line-{i}" for i in range(first, 400)]
    assert ok(dockyardd, "logs", "--tail", str(len(lines) - 3), name).splitlines() == lines[3:]
    r = dockyardd.docker("create", "--log-opt", "compress=true", "--log-opt", "max-file=1", "busybox")
    assert b"compress cannot be true when max-file is less than 2 or max-size is not set" in r.stderr


def follow_while_it_writes(d, name: str, *run_opts: str) -> None:
    """``docker logs -f`` of a container (run with ``run_opts``) writing 300 lines in bursts
    prints every line and ends when the container stops."""
    ok(d, "run", "-d", "--name", name, *run_opts, "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); [ $((i % 30)) = 0 ] && sleep 0.2; done")
    follow = subprocess.run([daemon_harness.DOCKER, "logs", "-f", name], env=d.env,
                            capture_output=True, timeout=60)
    assert follow.returncode == 0, follow.stderr.decode()
    assert follow.stdout.decode().splitlines() == [f"line-{i}" for i in range(300)]


def test_json_file_follow_across_compressed_rotation(dockyardd, names):
    name = new_name(names, "lo")
    follow_while_it_writes(dockyardd, name, "--log-opt", "max-size=3k", "--log-opt", "max-file=5",
                           "--log-opt", "compress=true")
    log = _log_path(dockyardd, name)
    assert until(lambda: Path(f"{log}.1.gz").exists(), timeout=20.0)


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_tag_labels_env_attrs_are_stored_and_logs_unchanged(dockyardd, names, driver):
    name = new_name(names, "lo")
    ok(dockyardd, "run", "--name", name, "--log-driver", driver, "--label", "tier=front end",
       "--label", "other=x", "-e", "APP_MODE=prod", "--log-opt", "labels=tier",
       "--log-opt", "env-regex=^APP_", "--log-opt", "tag={{.ImageName}}/{{.Name}}",
       "busybox", "sh", "-c", "echo out; echo err >&2")
    r = dockyardd.docker("logs", name)
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")
    # --details: the attrs sorted by key, query-escaped, before each line (dockerd's format)
    prefix = f"APP_MODE=prod,tag=busybox%2F{name},tier=front+end ".encode()
    r = dockyardd.docker("logs", "--details", name)
    assert (r.stdout, r.stderr) == (prefix + b"out\n", prefix + b"err\n")
    if driver == "json-file":
        records = [json.loads(line) for line in _log_path(dockyardd, name).read_bytes().splitlines()]
        assert [rec["attrs"] for rec in records] == \
            [{"APP_MODE": "prod", "tag": f"busybox/{name}", "tier": "front end"}] * 2
        assert list(records[0]) == ["log", "stream", "attrs", "time"]  # dockerd's order
    r = dockyardd.docker("create", "--log-driver", driver, "--log-opt", "tag={{.Bogus}}", "busybox")
    assert b"can't evaluate field Bogus in type *logger.Info" in r.stderr


def test_docker_py_log_config_with_tag(dockyardd, docker_client, names):
    from docker.types import LogConfig

    name = new_name(names, "lo")
    container = docker_client.containers.run(
        "busybox", ["echo", "hi"], name=name, detach=True,
        log_config=LogConfig(type="json-file", config={"tag": "{{.ID}}"}))
    container.wait(timeout=30)
    assert container.logs() == b"hi\n"
    record = json.loads(Path(container.attrs["LogPath"]).read_bytes().splitlines()[0])
    assert record["attrs"] == {"tag": container.id[:12]}


@pytest.mark.parametrize("conf,message", [
    ({"log-opts": {"max-age": "1"}}, "unknown log opt 'max-age' for json-file log driver"),
    ({"log-driver": "syslog"}, "logger: no log driver named 'syslog' is registered"),
    ({"log-driver": "local", "log-opts": {"max-file": "1"}},
     "compression cannot be enabled when max file count is 1"),
])
def test_daemon_refuses_to_start_with_a_bad_log_config(tmp_path, conf, message):
    tag = secrets.token_hex(3)
    handle = daemon_harness.DaemonHandle(
        root=tmp_path, data_root=tmp_path / "data", exec_root=tmp_path / "exec",
        socket=tmp_path / "dockyard.sock", bridge=f"dyl{tag}", subnet="10.251.7.0/24",
        cgroup_parent=f"/dockyard-test-{tag}", log_path=tmp_path / "dockyardd.log")
    (tmp_path / "daemon.json").write_text(json.dumps(conf))
    try:
        with pytest.raises(RuntimeError) as err:
            daemon_harness.start(handle)
        assert f"failed to start daemon: failed to set log opts: {message}" in str(err.value)
        assert not handle.socket.exists()
    finally:
        daemon_harness.destroy(handle)
