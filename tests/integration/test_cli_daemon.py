"""The dockyard CLI against a real dockyardd: same behaviour and output as docker CLI 28."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from tests import daemon_harness

pytestmark = pytest.mark.timeout(180)


def _same(ours: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess) -> None:
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert ours.stdout.decode() == theirs.stdout.decode()
    err = theirs.stderr.decode()
    for word in ("docker: ", "'docker run", "Usage:  docker ", "Run 'docker", "See 'docker"):
        err = err.replace(word, word.replace("docker", "dockyard"))
    assert ours.stderr.decode() == err


def _same_moment(dockyardd: daemon_harness.DaemonHandle, args: tuple[str, ...]) -> None:
    """``_same`` for output with ages in it ("Less than a second ago", "Up 1 second"): the two
    CLIs run one after the other, and a second may tick between them; compared again then."""
    for _ in range(2):
        ours, theirs = dockyardd.dockyard(*args), dockyardd.docker(*args)
        if ours.stdout == theirs.stdout:
            break
    _same(ours, theirs)


def test_run_rm_echo_hello(dockyardd: daemon_harness.DaemonHandle) -> None:
    r = dockyardd.dockyard("run", "--rm", "busybox", "echo", "hello")
    assert (r.stdout, r.stderr, r.returncode) == (b"hello\n", b"", 0), dockyardd.log()


@pytest.mark.parametrize("args", [
    ("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"),
    ("run", "--rm", "busybox", "no-such-binary"),
    ("run", "--rm", "busybox", "/etc"),
    ("run", "--rm", "no-such-image-here"),
    ("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000", "-h", "box", "busybox",
     "sh", "-c", "echo $A $(pwd) $(id -u):$(id -g) $(hostname)"),
    ("run", "--rm", "--read-only", "busybox", "touch", "/x"),
    ("rm", "no-such-container"), ("stop", "no-such-container"), ("logs", "no-such-container"),
    ("inspect", "no-such-thing"), ("image", "inspect", "-f", "{{.Os}} {{.Architecture}} {{json .Config.Cmd}}", "busybox"),
    ("history", "busybox"), ("images",), ("images", "--digests"), ("network", "ls"),
])
def test_same_as_docker(dockyardd: daemon_harness.DaemonHandle, args: tuple[str, ...]) -> None:
    ours, theirs = dockyardd.dockyard(*args), dockyardd.docker(*args)
    if args[0] == "images":
        # docker walks a Go map for digest-only repositories: their row order is random in docker
        # itself, so rows are compared as a set (header, widths and each row still exactly)
        def rows(r):
            lines = r.stdout.decode().splitlines()
            return lines[:1] + sorted(lines[1:])
        assert (ours.returncode, rows(ours)) == (theirs.returncode, rows(theirs))
        return
    _same(ours, theirs)


def test_piped_stdin(dockyardd: daemon_harness.DaemonHandle) -> None:
    r = dockyardd.dockyard("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input=b"a\nb\n")
    assert (r.stdout, r.returncode) == (b"a\nb\ndone\n", 0), r.stderr


def test_lifecycle_and_listing(dockyardd: daemon_harness.DaemonHandle) -> None:
    name = f"cli-life-{os.getpid()}"
    try:
        r = dockyardd.dockyard("run", "-d", "--name", name, "-l", "k=v", "busybox", "sh", "-c",
                               "echo started; exec sleep 300")
        assert re.fullmatch(rb"[0-9a-f]{64}\n", r.stdout), r.stderr
        for args in (("ps", "--filter", f"name={name}"), ("ps", "-a", "--no-trunc", "--filter", f"name={name}"),
                     ("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Label \"k\"}} {{.Status}}"),
                     ("inspect", name), ("inspect", "-f", "{{.State.Status}} {{.Config.Labels}}", name),
                     ("container", "inspect", "-f", "{{json .Config.Cmd}}", name)):
            _same_moment(dockyardd, args)
        deadline = time.time() + 10
        while dockyardd.dockyard("logs", name).stdout != b"started\n":
            assert time.time() < deadline
            time.sleep(0.1)
        assert dockyardd.dockyard("pause", name).stdout.decode() == f"{name}\n"
        assert "(Paused)" in dockyardd.dockyard("ps", "--filter", f"name={name}").stdout.decode()
        assert dockyardd.dockyard("unpause", name).returncode == 0
        assert dockyardd.dockyard("stop", "-t", "1", name).stdout.decode() == f"{name}\n"
        assert dockyardd.dockyard("wait", name).stdout == b"137\n"
    finally:
        dockyardd.dockyard("rm", "-f", name)


def test_run_tty_interactive(dockyardd: daemon_harness.DaemonHandle) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([str(daemon_harness.VENV_BIN / "dockyard"), "run", "-it", "--rm", "busybox", "sh"],
                            stdin=slave, stdout=slave, stderr=slave, env=dockyardd.env, start_new_session=True)
    out = b""
    try:
        before = termios.tcgetattr(slave)
        deadline = time.time() + 30
        while b"# " not in out:
            assert time.time() < deadline, out
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 4096)
        os.write(master, b"stty size; exit 5\r")
        deadline = time.time() + 30
        while proc.poll() is None and time.time() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 4096)
        assert proc.wait(10) == 5
        assert b"40 120" in out
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def test_logs_follow_and_events(dockyardd: daemon_harness.DaemonHandle) -> None:
    name = f"cli-logs-{os.getpid()}"
    since = str(int(time.time()) - 1)
    try:
        r = dockyardd.dockyard("run", "-d", "--name", name, "busybox", "sh", "-c",
                               "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.2; done")
        assert r.returncode == 0, r.stderr
        r = dockyardd.dockyard("logs", "-f", name, timeout=30)
        assert r.stdout == b"line1\nline2\nline3\n" and r.stderr == b"err1\nerr2\nerr3\n"
        _same(dockyardd.dockyard("logs", "--tail", "2", name), dockyardd.docker("logs", "--tail", "2", name))
        until = str(int(time.time()) + 1)
        time.sleep(1.1)
        args = ("events", "--since", since, "--until", until, "--filter", f"container={name}")
        _same(dockyardd.dockyard(*args), dockyardd.docker(*args))
        fmt = ("events", "--since", since, "--until", until, "--filter", f"container={name}", "--format",
               "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
        ours = dockyardd.dockyard(*fmt)
        _same(ours, dockyardd.docker(*fmt))
        assert f"container start {name}\n".encode() in ours.stdout
    finally:
        dockyardd.dockyard("rm", "-f", name)


def test_network_commands(dockyardd: daemon_harness.DaemonHandle) -> None:
    net, ctr = f"clinet{os.getpid()}", f"cli-net-{os.getpid()}"
    try:
        r = dockyardd.dockyard("network", "create", "--subnet", "10.213.7.0/24", "--label", "k=v", net)
        assert re.fullmatch(rb"[0-9a-f]{64}\n", r.stdout), r.stderr + dockyardd.log().encode()
        for args in (("network", "inspect", net), ("network", "ls", "--filter", f"name={net}"),
                     ("network", "inspect", "-f", "{{.Name}} {{.Driver}} {{json .IPAM.Config}} {{.Labels}}", net),
                     ("network", "create", net), ("network", "rm", "no-such-net")):
            _same(dockyardd.dockyard(*args), dockyardd.docker(*args))
        r = dockyardd.dockyard("run", "-d", "--name", ctr, "--network", "none", "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
        r = dockyardd.dockyard("network", "connect", "--ip", "10.213.7.9", net, ctr)
        r2 = dockyardd.docker("network", "connect", "--ip", "10.213.7.9", net, ctr)
        assert (r.returncode, r.stderr.decode()) == (r2.returncode, r2.stderr.decode())
    finally:
        dockyardd.dockyard("rm", "-f", ctr)
        r = dockyardd.dockyard("network", "rm", net)
        assert r.stdout.decode() == f"{net}\n", r.stderr


def test_top_diff_update(dockyardd: daemon_harness.DaemonHandle) -> None:
    name = f"cli-top-{os.getpid()}"
    try:
        r = dockyardd.dockyard("run", "-d", "--name", name, "busybox", "sh", "-c", "touch /newfile; rm /etc/hostname.x 2>/dev/null; exec sleep 300")
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        for args in (("top", name), ("diff", name), ("top", name, "-o", "pid,comm"), ("top", "no-such-container"),
                     ("update", "--cpus", "0.5", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "50", name),
                     ("inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", name),
                     ("update", "--restart", "on-failure:2", name), ("update", "--cpus", "x", name)):
            _same(dockyardd.dockyard(*args), dockyardd.docker(*args))
    finally:
        dockyardd.dockyard("rm", "-f", name)


def test_stats_no_stream(dockyardd: daemon_harness.DaemonHandle) -> None:
    name, stopped = f"cli-stats-{os.getpid()}", f"cli-stats-stopped-{os.getpid()}"
    try:
        assert dockyardd.dockyard("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "300").returncode == 0
        assert dockyardd.dockyard("create", "--name", stopped, "busybox").returncode == 0
        for args in (("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.Container}}", name),
                     ("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}}", stopped),
                     ("stats", "--no-stream", "no-such-container")):
            _same(dockyardd.dockyard(*args), dockyardd.docker(*args))
        ours = dockyardd.dockyard("stats", "--no-stream", name).stdout.decode().splitlines()
        theirs = dockyardd.docker("stats", "--no-stream", name).stdout.decode().splitlines()
        assert ours[0].split() == theirs[0].split()
        assert re.fullmatch(r"[0-9a-f]{12}\s+" + name + r"\s+\d+\.\d\d%\s+\S+ / 64MiB\s+\d+\.\d\d%\s+.*\s1", ours[1])
    finally:
        dockyardd.dockyard("rm", "-f", name, stopped)
