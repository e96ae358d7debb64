"""The real docker CLI 28 driving dockyardd: containers, end to end on the real kernel."""

import json
import os
import re
import time
from pathlib import Path

import pytest


def ok(d, *args, input=None, timeout=60):
    r = d.docker(*args, input=input, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def test_run_echo_hello(dockyardd):
    assert ok(dockyardd, "run", "--rm", "busybox", "echo", "hello") == "hello\n"


def test_run_exit_code_and_stderr(dockyardd):
    r = dockyardd.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\n"


def test_run_missing_command_is_127(dockyardd):
    r = dockyardd.docker("run", "--rm", "busybox", "no-such-binary")
    assert r.returncode == 127, r.stderr
    assert b"executable file not found" in r.stderr


def test_run_pid1_hostname_env_workdir_user(dockyardd):
    out = ok(dockyardd, "run", "--rm", "-h", "boxy", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody",
             "busybox", "sh", "-c", 'echo $$ $(hostname) $FOO $(pwd) $(id -u) $(id -g)')
    assert out.split() == ["1", "boxy", "bar", "/tmp", "65534", "65534"]


def test_a_missing_workdir_is_made_and_a_file_is_refused(dockyardd):
    # moby's SetupWorkingDirectory: made in the rootfs, root's, 0755, for any user and runtime
    out = ok(dockyardd, "run", "--rm", "-u", "nobody", "-w", "/new/dir", "busybox", "sh", "-c",
             "pwd; stat -c '%U %a' /new/dir /new")
    assert out.split("\n")[:3] == ["/new/dir", "root 755", "root 755"]
    r = dockyardd.docker("run", "--rm", "-w", "/etc/passwd", "busybox", "pwd")
    assert r.returncode == 125
    assert r.stderr.decode().startswith(
        "docker: Error response from daemon: Cannot mkdir: /etc/passwd is not a directory\n"), r.stderr


def test_namespaces_are_private(dockyardd):
    out = ok(dockyardd, "run", "--rm", "busybox", "sh", "-c", "ps -o pid | wc -l; readlink /proc/1/ns/mnt")
    lines = out.split()
    assert int(lines[0]) <= 4  # header + sh + ps (+ wc): the host's processes are invisible
    assert lines[1] != os.readlink("/proc/self/ns/mnt")


def test_default_capabilities_and_cap_drop(dockyardd):
    default = ok(dockyardd, "run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status").split()[1]
    assert default == "00000000a80425fb"  # Docker's default set
    none = ok(dockyardd, "run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status").split()[1]
    assert int(none, 16) == 0
    priv = ok(dockyardd, "run", "--rm", "--privileged", "busybox", "grep", "CapEff", "/proc/self/status").split()[1]
    assert int(priv, 16) > int(default, 16)


def test_seccomp_and_masked_paths(dockyardd):
    out = ok(dockyardd, "run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert out.split()[1] == "2"
    r = dockyardd.docker("run", "--rm", "busybox", "cat", "/proc/kcore")
    assert r.stdout == b""
    r = dockyardd.docker("run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/domainname")
    assert r.returncode != 0


def test_read_only_rootfs(dockyardd):
    r = dockyardd.docker("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert r.returncode == 1 and b"Read-only file system" in r.stderr


def test_memory_and_pids_limits_reach_the_cgroup(dockyardd):
    cid = ok(dockyardd, "run", "-d", "-m", "64m", "--pids-limit", "50", "--cpus", "0.5",
             "busybox", "sleep", "60").strip()
    try:
        info = json.loads(ok(dockyardd, "inspect", cid))[0]
        assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024
        assert info["HostConfig"]["PidsLimit"] == 50
        assert info["HostConfig"]["NanoCpus"] == 500_000_000
        cg = Path("/sys/fs/cgroup/memory") / dockyardd.cgroup_parent.lstrip("/") / cid
        assert (cg / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
        pids = Path("/sys/fs/cgroup/pids") / dockyardd.cgroup_parent.lstrip("/") / cid / "pids.max"
        assert pids.read_text().strip() == "50"
    finally:
        ok(dockyardd, "rm", "-f", cid)


def test_lifecycle_ps_stop_start_rm(dockyardd):
    name = "life-%d" % time.monotonic_ns()
    # PID 1 ignores signals it has no handler for, so the script traps TERM itself
    cid = ok(dockyardd, "run", "-d", "--name", name, "busybox", "sh", "-c",
             "trap 'exit 143' TERM; while :; do sleep 0.1; done").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    try:
        ps = ok(dockyardd, "ps", "--format", "{{.Names}} {{.Status}}")
        assert any(line.startswith(name + " Up") for line in ps.splitlines())
        assert ok(dockyardd, "inspect", "-f", "{{.State.Status}}", name).strip() == "running"
        r = dockyardd.docker("rm", name)
        assert r.returncode == 1 and b"container is running" in r.stderr
        t0 = time.monotonic()
        ok(dockyardd, "stop", "-t", "1", name)
        assert time.monotonic() - t0 < 5
        state = json.loads(ok(dockyardd, "inspect", name))[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 143
        ok(dockyardd, "start", name)
        assert ok(dockyardd, "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
        ok(dockyardd, "kill", "-s", "KILL", name)
        assert ok(dockyardd, "wait", name).strip() == "137"
    finally:
        dockyardd.docker("rm", "-f", name)
    r = dockyardd.docker("inspect", name)
    assert r.returncode == 1 and b"No such object" in r.stderr


def test_name_conflict(dockyardd):
    name = "dup-%d" % time.monotonic_ns()
    ok(dockyardd, "create", "--name", name, "busybox", "true")
    try:
        r = dockyardd.docker("create", "--name", name, "busybox", "true")
        assert r.returncode != 0
        assert b"is already in use by container" in r.stderr
    finally:
        ok(dockyardd, "rm", name)


def test_pause_unpause_restart_rename(dockyardd):
    name = "pz-%d" % time.monotonic_ns()
    ok(dockyardd, "run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        ok(dockyardd, "pause", name)
        assert ok(dockyardd, "inspect", "-f", "{{.State.Status}}", name).strip() == "paused"
        r = dockyardd.docker("pause", name)
        assert r.returncode == 1 and b"is already paused" in r.stderr
        ok(dockyardd, "unpause", name)
        pid1 = ok(dockyardd, "inspect", "-f", "{{.State.Pid}}", name).strip()
        ok(dockyardd, "restart", "-t", "0", name)
        pid2 = ok(dockyardd, "inspect", "-f", "{{.State.Pid}}", name).strip()
        assert pid1 != pid2
        ok(dockyardd, "rename", name, name + "-new")
        assert ok(dockyardd, "inspect", "-f", "{{.Name}}", name + "-new").strip() == "/" + name + "-new"
    finally:
        dockyardd.docker("rm", "-f", name, name + "-new")


def test_network_modes(dockyardd):
    none = ok(dockyardd, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert "lo" in none and "eth0" not in none
    bridge = ok(dockyardd, "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    prefix = dockyardd.subnet.rsplit(".", 1)[0] + "."
    assert prefix in bridge
    host = ok(dockyardd, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert dockyardd.bridge in host
    hosts = ok(dockyardd, "run", "--rm", "-h", "hh", "busybox", "cat", "/etc/hosts")
    assert "hh" in hosts and "localhost" in hosts


def test_ps_filters_and_quiet(dockyardd):
    name = "flt-%d" % time.monotonic_ns()
    cid = ok(dockyardd, "create", "--name", name, "-l", "team=blue", "busybox", "true").strip()
    try:
        q = ok(dockyardd, "ps", "-aq", "--filter", "label=team=blue").split()
        assert cid[:12] in q
        q = ok(dockyardd, "ps", "-aq", "--filter", "status=created", "--filter", f"name={name}").split()
        assert q == [cid[:12]]
        assert ok(dockyardd, "ps", "-q", "--filter", f"name={name}").strip() == ""
    finally:
        ok(dockyardd, "rm", name)


def test_events_stream(dockyardd):
    since = str(int(time.time()) - 1)
    ok(dockyardd, "run", "--rm", "busybox", "true")
    out = ok(dockyardd, "events", "--since", since, "--until", str(int(time.time()) + 1),
             "--filter", "type=container", "--format", "{{.Action}}")
    actions = out.split()
    for want in ("create", "start", "die", "destroy"):
        assert want in actions, actions


def test_missing_image(dockyardd):
    r = dockyardd.docker("run", "--rm", "--pull", "never", "nosuchimage:1")
    assert r.returncode == 125
    assert b"No such image: nosuchimage:1" in r.stderr


def test_logs_are_bounded_by_default_and_rotate(dockyardd):
    name = "logrot-%d" % time.monotonic_ns()
    ok(dockyardd, "create", "--name", name, "busybox", "true")
    try:
        log_config = json.loads(ok(dockyardd, "inspect", "-f", "{{json .HostConfig.LogConfig}}", name))
        assert log_config == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "20m"}}
    finally:
        ok(dockyardd, "rm", name)
    out = ok(dockyardd, "run", "--name", name, "--log-opt", "max-size=10k", "--log-opt", "max-file=2",
             "busybox", "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done")
    try:
        assert out.splitlines()[-1] == "line-1999"
        log_path = Path(ok(dockyardd, "inspect", "-f", "{{.LogPath}}", name).strip())
        files = sorted(p.name for p in log_path.parent.iterdir() if p.name.startswith(log_path.name))
        assert files == [log_path.name, log_path.name + ".1"]
        assert log_path.stat().st_size <= 10 * 1024 + 200
        assert ok(dockyardd, "logs", "--tail", "1", name) == "line-1999\n"
    finally:
        ok(dockyardd, "rm", name)
