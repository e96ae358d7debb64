"""``docker exec`` end to end: the real docker CLI 28, docker-py and our CLI against dockyardd."""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest


def ok(d, *args, input=None, timeout=60):
    r = d.docker(*args, input=input, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


@pytest.fixture
def box(dockyardd):
    """A running busybox container (removed afterwards)."""
    name = f"ex-{secrets.token_hex(4)}"
    ok(dockyardd, "run", "-d", "--name", name, "-h", "exhost", "-e", "CONTAINER_ENV=yes", "busybox",
       "sh", "-c", "echo made > /tmp/marker; sleep 1000")
    try:
        yield name
    finally:
        dockyardd.docker("rm", "-f", name)


def test_exec_echo_and_exit_codes(dockyardd, box):
    assert ok(dockyardd, "exec", box, "echo", "hi") == "hi\n"
    assert dockyardd.docker("exec", box, "sh", "-c", "exit 5").returncode == 5
    r = dockyardd.docker("exec", box, "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")


def test_exec_missing_and_not_executable(dockyardd, box):
    r = dockyardd.docker("exec", box, "nope")
    assert r.returncode == 127, r
    assert b'OCI runtime exec failed: exec failed: unable to start container process: ' \
           b'exec: "nope": executable file not found in $PATH: unknown' in r.stdout + r.stderr
    r = dockyardd.docker("exec", box, "/etc/passwd")
    assert r.returncode == 126, r
    assert b"permission denied" in r.stdout + r.stderr


def test_exec_env_workdir_user_and_the_container_view(dockyardd, box):
    out = ok(dockyardd, "exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", box,
             "sh", "-c", "echo $FOO $CONTAINER_ENV $(pwd) $(id -u) $(hostname) $(cat /tmp/marker)")
    assert out.split() == ["bar", "yes", "/tmp", "65534", "exhost", "made"]
    # the same cgroup as the container's PID 1 in every hierarchy
    own, init = ok(dockyardd, "exec", box, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup").split("--")
    assert own.split() == init.split() and len(own.split()) > 3
    ps = ok(dockyardd, "exec", box, "ps", "-o", "pid,args")
    assert any(line.split() == ["1", "sleep", "1000"] for line in ps.splitlines()), ps
    # same capabilities and seccomp as the container; --privileged gets every capability
    caps = ok(dockyardd, "exec", box, "grep", "-E", "CapEff|Seccomp:", "/proc/self/status").split()
    assert caps[1] == "00000000a80425fb" and caps[3] == "2"
    priv = ok(dockyardd, "exec", "--privileged", box, "grep", "CapEff", "/proc/self/status").split()[1]
    assert int(priv, 16) > int(caps[1], 16)


def test_exec_detached_stdin_and_tty(dockyardd, box):
    ok(dockyardd, "exec", "-d", box, "sh", "-c", "exec sleep 777")
    deadline = time.monotonic() + 5
    while "sleep 777" not in ok(dockyardd, "exec", box, "ps", "-o", "args") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleep 777" in ok(dockyardd, "exec", box, "ps", "-o", "args")
    ids = json.loads(ok(dockyardd, "inspect", box))[0]["ExecIDs"]
    assert ids and len(ids) == 1
    assert ok(dockyardd, "exec", "-i", box, "cat", input=b"x\n") == "x\n"
    # -t: a pty (the docker CLI wants a terminal for -t only with -i)
    out = ok(dockyardd, "exec", "-t", box, "sh", "-c", "tty; echo $TERM").replace("\r", "").split()
    assert out[0].startswith("/dev/pts/") and out[1] == "xterm", out


def test_exec_interactive_tty(dockyardd, box):
    """docker exec -it through a real terminal: a shell prompt, a command, its exit code."""
    import pty
    import select
    import subprocess

    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))  # sent as ConsoleSize
    proc = subprocess.Popen([dockyardd_docker(dockyardd), "exec", "-it", box, "sh"], stdin=slave, stdout=slave,
                            stderr=slave, env=dockyardd.env, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"stty size; echo $((6*7)); exit 3\n")
        seen = b""
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert proc.wait(timeout=10) == 3
        assert b"42" in seen and b"33 77" in seen, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_exec_detach_keys(dockyardd, box):
    """The docker CLI catches the detach keys itself and ends with "read escape sequence" (status 1),
    as against dockerd; the exec'd process keeps running."""
    import pty
    import select
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen([dockyardd_docker(dockyardd), "exec", "-it", "--detach-keys", "ctrl-x", box,
                             "sh", "-c", "exec sleep 555"], stdin=slave, stdout=slave, stderr=slave,
                            env=dockyardd.env, start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + 10
        while "sleep 555" not in ok(dockyardd, "exec", box, "ps", "-o", "args") and time.monotonic() < deadline:
            time.sleep(0.05)
        os.write(master, b"\x18")
        status = proc.wait(timeout=10)
        out = os.read(master, 4096) if select.select([master], [], [], 0.5)[0] else b""
        assert status == 1 and b"read escape sequence" in out, (status, out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "sleep 555" in ok(dockyardd, "exec", box, "ps", "-o", "args")


def test_concurrent_execs(dockyardd, box):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: ok(dockyardd, "exec", box, "sh", "-c", f"sleep 0.2; echo {i}"), range(4)))
    assert outs == [f"{i}\n" for i in range(4)]


def test_exec_inspect_and_resize_through_the_api(docker_client, box):
    api = docker_client.api
    exec_id = api.exec_create(box, ["sh", "-c", "sleep 0.5; stty size"], tty=True, user="nobody")["Id"]
    idle = api.exec_inspect(exec_id)
    assert (idle["Running"], idle["ExitCode"], idle["Pid"]) == (False, None, 0)
    assert idle["ProcessConfig"] == {"entrypoint": "sh", "arguments": ["-c", "sleep 0.5; stty size"],
                                     "privileged": False, "tty": True, "user": "nobody"}
    sock = api.exec_start(exec_id, tty=True, socket=True)
    try:
        deadline = time.monotonic() + 5  # the process starts after the 101 answer, as in dockerd
        while not (running := api.exec_inspect(exec_id))["Pid"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running["Running"] and running["Pid"] > 0
        assert exec_id in api.inspect_container(box)["ExecIDs"]
        api.exec_resize(exec_id, height=40, width=100)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(10)
        data = b""
        while chunk := raw.recv(4096):
            data += chunk
    finally:
        sock.close()
    assert b"40 100" in data, data
    done = api.exec_inspect(exec_id)
    assert (done["Running"], done["ExitCode"]) == (False, 0)
    from tests.compat.openapi import validate
    for body in (idle, running, done):
        validate("get", "/exec/{id}/json", 200, body)
    validate("post", "/containers/{id}/exec", 201, {"Id": exec_id})
    assert api.inspect_container(box)["ExecIDs"] is None
    import docker
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(exec_id, detach=True)  # attached, dockerd writes the error into the stream
    assert err.value.status_code == 409 and "has already run" in str(err.value)
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect("nope")


def test_exec_ends_with_its_container(dockyardd, box, docker_client):
    api = docker_client.api
    exec_id = api.exec_create(box, ["sleep", "1000"])["Id"]
    api.exec_start(exec_id, detach=True)
    ok(dockyardd, "kill", box)
    deadline = time.monotonic() + 10
    while api.exec_inspect(exec_id)["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.exec_inspect(exec_id)["ExitCode"] == 137


def dockyardd_docker(d) -> str:
    from tests.daemon_harness import DOCKER
    return str(DOCKER)


def test_exec_paused_and_stopped_are_409(dockyardd, box):
    ok(dockyardd, "pause", box)
    try:
        r = dockyardd.docker("exec", box, "true")
        assert r.returncode != 0
        assert f"Container {box} is paused, unpause the container before exec".encode() in r.stderr
    finally:
        ok(dockyardd, "unpause", box)
    cid = ok(dockyardd, "inspect", "-f", "{{.Id}}", box).strip()
    ok(dockyardd, "kill", box)
    r = dockyardd.docker("exec", box, "true")
    assert r.returncode != 0 and f"container {cid} is not running".encode() in r.stderr


def test_exec_events(dockyardd, box):
    since = str(int(time.time()) - 1)
    assert dockyardd.docker("exec", box, "sh", "-c", "exit 3").returncode == 3
    r = dockyardd.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                         "--filter", f"container={box}", "--format", "{{json .}}")
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    actions = [e["Action"] for e in events]
    assert "exec_create: sh -c exit 3" in actions and "exec_start: sh -c exit 3" in actions
    die = [e for e in events if e["Action"] == "exec_die"]
    assert die and die[-1]["Actor"]["Attributes"]["exitCode"] == "3"
    assert die[-1]["Actor"]["Attributes"]["execID"]


def test_docker_py_exec_run(docker_client, box):
    container = docker_client.containers.get(box)
    result = container.exec_run(["sh", "-c", "echo py; exit 4"])
    assert (result.exit_code, result.output) == (4, b"py\n")
    result = container.exec_run("id -u", user="nobody", demux=True)
    assert result.output == (b"65534\n", None)


def test_our_cli_exec(dockyardd, box):
    dy = dockyardd.dockyard
    r = dy("exec", "-e", "A=1", "-w", "/tmp", box, "sh", "-c", "echo $A $(pwd); exit 6")
    assert (r.returncode, r.stdout) == (6, b"1 /tmp\n"), r
    r = dy("exec", "-i", box, "cat", input=b"piped\n")
    assert r.stdout == b"piped\n", r
    r = dy("exec", box, "nope")
    assert r.returncode == 127 and b"executable file not found" in r.stdout + r.stderr, r
    r = dy("exec", "-t", "-u", "nobody", box, "sh", "-c", "tty; id -u")
    lines = r.stdout.decode().replace("\r", "").split()
    assert r.returncode == 0 and lines[0].startswith("/dev/pts/") and lines[1] == "65534", r
    assert dy("exec", "-d", box, "sleep", "333").returncode == 0
    deadline = time.monotonic() + 5
    while "sleep 333" not in ok(dockyardd, "exec", box, "ps", "-o", "args") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleep 333" in ok(dockyardd, "exec", box, "ps", "-o", "args")
    ok(dockyardd, "pause", box)
    try:
        r = dy("exec", box, "true")
        assert r.returncode == 1 and b"is paused, unpause the container before exec" in r.stderr, r
    finally:
        ok(dockyardd, "unpause", box)


def test_exec_latency(dockyardd, box):
    ok(dockyardd, "exec", box, "true")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        ok(dockyardd, "exec", box, "true")
        times.append(time.perf_counter() - start)
    print(f"docker exec true: best {min(times) * 1000:.1f} ms, median {sorted(times)[2] * 1000:.1f} ms")


def test_exec_with_the_runc_runtime(dockyardd):
    import shutil
    if not shutil.which("runc"):
        pytest.skip("runc not installed")
    name = f"exr-{secrets.token_hex(4)}"
    ok(dockyardd, "run", "-d", "--runtime", "runc", "--name", name, "busybox", "sleep", "1000")
    try:
        assert ok(dockyardd, "exec", "-u", "nobody", "-w", "/tmp", name, "sh", "-c", "id -u; pwd; exit 0").split() \
            == ["65534", "/tmp"]
        assert dockyardd.docker("exec", name, "sh", "-c", "exit 9").returncode == 9
        assert ok(dockyardd, "exec", "-i", name, "cat", input=b"in\n") == "in\n"
        assert ok(dockyardd, "exec", "-t", name, "tty").startswith("/dev/pts/")
        r = dockyardd.docker("exec", name, "nope")
        assert r.returncode == 127 and b'exec: "nope": executable file not found in $PATH' in r.stdout + r.stderr, r
    finally:
        dockyardd.docker("rm", "-f", name)


def test_server_side_detach_keys(docker_client, box):
    """A client that sends the detach keys to the daemon (docker-py does): the stream ends, the
    process keeps running, and the container logs exec_detach."""
    api = docker_client.api
    since = int(time.time()) - 1
    exec_id = api.exec_create(box, ["sleep", "444"], stdin=True, tty=True)["Id"]
    sock = api.exec_start(exec_id, tty=True, socket=True)
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(b"\x10\x11")
        raw.settimeout(10)
        while raw.recv(4096):
            pass
    finally:
        sock.close()
    assert api.exec_inspect(exec_id)["Running"]
    events = api.events(since=since, until=int(time.time()) + 1, decode=True,
                        filters={"container": box, "event": "exec_detach"})
    assert [e["Actor"]["Attributes"]["execID"] for e in events] == [exec_id]


def test_exec_large_output(dockyardd, box):
    r = dockyardd.docker("exec", box, "sh", "-c", "head -c 30000000 /dev/zero; echo done >&2", timeout=120)
    assert (r.returncode, len(r.stdout), r.stderr) == (0, 30000000, b"done\n")


def test_exec_unknown_user(dockyardd, box):
    r = dockyardd.docker("exec", "-u", "nosuchuser", box, "true")
    assert r.returncode == 126, r
    assert b"unable to find user nosuchuser: no matching entries in passwd file" in r.stdout + r.stderr
