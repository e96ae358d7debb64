"""The dockyard CLI end to end against the fake Docker API (tests/unit/test_cli_fake_api.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

from tests.unit.test_cli_fake_api import FakeServer, fake_api  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def dockyard(server: FakeServer, *args: str, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    full_env["DOCKER_HOST"] = server.host  # type: ignore[attr-defined]
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "dockyard.cli.main", *args], input=stdin if stdin is not None else b"",
                          capture_output=True, env=full_env, timeout=30)


def docker(server: FakeServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The real docker CLI (the reference for output formats) against the same fake daemon."""
    if not shutil.which("docker"):
        pytest.skip("no docker CLI to compare with")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = server.host  # type: ignore[attr-defined]
    env["DOCKER_CONFIG"] = tempfile.mkdtemp(prefix="dockyard-cli-dockercfg-")
    try:
        return subprocess.run(["docker", *args], capture_output=True, env=env, timeout=30)
    finally:
        shutil.rmtree(env["DOCKER_CONFIG"])


def calls(server: FakeServer) -> list[str]:
    return [f"{m} {p}" for m, p, _, _ in server.state.requests if p != "/_ping"]


@pytest.fixture
def api(fake_api: FakeServer) -> FakeServer:  # noqa: F811
    fake_api.state.add_image("busybox:latest")
    return fake_api


# -- run ------------------------------------------------------------------------------------------

def test_run_rm_prints_exactly_the_output(api: FakeServer) -> None:
    r = dockyard(api, "run", "--rm", "busybox", "echo", "hello")
    assert (r.stdout, r.stderr, r.returncode) == (b"hello\n", b"", 0)
    seq = [re.sub(r"/[0-9a-f]{64}/", "/ID/", c) for c in calls(api)]
    assert seq == ["POST /containers/create", "POST /containers/ID/attach", "POST /containers/ID/wait",
                   "POST /containers/ID/start"]
    wait = next(q for m, p, q, _ in api.state.requests if p.endswith("/wait"))
    assert wait == {"condition": ["removed"]}
    attach = next(q for m, p, q, _ in api.state.requests if p.endswith("/attach"))
    assert attach == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    assert api.state.containers == {}


def test_run_exit_code_and_wait_next_exit(api: FakeServer) -> None:
    r = dockyard(api, "run", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    wait = next(q for m, p, q, _ in api.state.requests if p.endswith("/wait"))
    assert wait == {"condition": ["next-exit"]}


def test_run_separates_stdout_and_stderr(api: FakeServer) -> None:
    r = dockyard(api, "run", "--rm", "busybox", "both")
    assert (r.stdout, r.stderr) == (b"to stdout\n", b"to stderr\n")


def test_run_piped_stdin_half_closes(api: FakeServer) -> None:
    r = dockyard(api, "run", "-i", "--rm", "busybox", "cat", stdin=b"line one\nline two\n")
    assert (r.stdout, r.returncode) == (b"line one\nline two\n", 0)
    attach = next(q for m, p, q, _ in api.state.requests if p.endswith("/attach"))
    assert attach["stdin"] == ["1"]


@pytest.mark.parametrize("cmd, code", [("nonexistent", 127), ("/etc", 126)])
def test_run_start_failure_exit_codes(api: FakeServer, cmd: str, code: int) -> None:
    r = dockyard(api, "run", "busybox", cmd)
    assert r.returncode == code
    assert r.stderr.decode().startswith("dockyard: Error response from daemon: ")
    assert r.stderr.decode().endswith("\n\nRun 'dockyard run --help' for more information\n")


def test_run_missing_image_pull_fails_125(api: FakeServer) -> None:
    r = dockyard(api, "run", "nothere")
    assert r.returncode == 125
    err = r.stderr.decode()
    assert err.startswith("Unable to find image 'nothere:latest' locally\n")
    assert "dockyard: Error response from daemon: pull access denied for docker.io/library/nothere" in err
    pull = next(q for m, p, q, _ in api.state.requests if p == "/images/create")
    assert pull == {"fromImage": ["docker.io/library/nothere"], "tag": ["latest"]}


def test_run_missing_image_is_pulled_then_run(api: FakeServer) -> None:
    api.state.add_image("docker.io/library/hello:latest", pullable_only=True)
    r = dockyard(api, "run", "--rm", "hello", "echo", "pulled")
    assert r.stdout == b"pulled\n"
    assert r.returncode == 0
    assert "Unable to find image 'hello:latest' locally" in r.stderr.decode()
    assert "Status: Downloaded newer image for" in r.stderr.decode()


def test_run_detached_prints_id(api: FakeServer) -> None:
    r = dockyard(api, "run", "-d", "--name", "bg", "busybox", "sleep", "100")
    assert r.returncode == 0
    assert re.fullmatch(rb"[0-9a-f]{64}\n", r.stdout)
    assert "/attach" not in " ".join(calls(api))


def test_run_flags_become_the_create_body(api: FakeServer, tmp_path: Any) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n\n")
    r = dockyard(api, "run", "-d", "-e", "A=1", "--env-file", str(env_file), "-v", "/h:/c:ro", "-v", "/anon",
                 "-m", "512m", "--cpus", "1.5", "--restart", "on-failure:3", "--ulimit", "nofile=10:20",
                 "--network", "none", "-p", "127.0.0.1:8080:80/udp", "-l", "k=v", "--init", "--entrypoint", "",
                 "--log-opt", "max-size=1m", "-w", "/work", "-u", "1000:1000", "-h", "box", "--read-only",
                 "--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                 "--pids-limit", "64", "--cpu-shares", "512", "--cpuset-cpus", "0", "--memory-swap", "-1",
                 "--stop-signal", "SIGINT", "--stop-timeout", "3", "--dns", "1.1.1.1", "--add-host", "h:1.2.3.4",
                 "--runtime", "runc", "--pull", "never", "--rm", "busybox", "sleep", "1")
    assert r.returncode == 0, r.stderr
    body = next(b for m, p, q, b in api.state.requests if p == "/containers/create")
    hc = body["HostConfig"]
    assert body["Env"] == ["FROM_FILE=1", "A=1"]
    assert body["Cmd"] == ["sleep", "1"] and body["Entrypoint"] == [""]
    assert body["Volumes"] == {"/anon": {}} and hc["Binds"] == ["/h:/c:ro"]
    assert (hc["Memory"], hc["NanoCpus"], hc["MemorySwap"]) == (512 * 1024 * 1024, 1_500_000_000, -1)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
    assert hc["NetworkMode"] == "none"
    assert hc["PortBindings"] == {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert body["ExposedPorts"] == {"80/udp": {}}
    assert body["Labels"] == {"k": "v"} and hc["Init"] is True
    assert hc["LogConfig"] == {"Type": "", "Config": {"max-size": "1m"}}
    assert (body["WorkingDir"], body["User"], body["Hostname"]) == ("/work", "1000:1000", "box")
    assert hc["ReadonlyRootfs"] and hc["Privileged"] and hc["AutoRemove"]
    assert (hc["CapAdd"], hc["CapDrop"], hc["SecurityOpt"]) == (["NET_ADMIN"], ["ALL"], ["no-new-privileges"])
    assert (hc["PidsLimit"], hc["CpuShares"], hc["CpusetCpus"]) == (64, 512, "0")
    assert (body["StopSignal"], body["StopTimeout"]) == ("SIGINT", 3)
    assert (hc["Dns"], hc["ExtraHosts"], hc["Runtime"]) == (["1.1.1.1"], ["h:1.2.3.4"], "runc")
    assert (body["AttachStdout"], body["AttachStdin"]) == (False, False)


def test_run_bad_flag_value_is_125(api: FakeServer) -> None:
    r = dockyard(api, "run", "--restart", ":3", "busybox")
    assert r.returncode == 125
    assert "invalid restart policy format" in r.stderr.decode()
    assert dockyard(api, "run", "--bogus", "busybox").returncode == 125


# -- errors ---------------------------------------------------------------------------------------

def test_daemon_errors_print_like_docker(api: FakeServer) -> None:
    r = dockyard(api, "rm", "nope1", "nope2")
    assert r.returncode == 1
    assert r.stderr == (b"Error response from daemon: No such container: nope1\n"
                        b"Error response from daemon: No such container: nope2\n")


def test_argument_count_errors(api: FakeServer) -> None:
    r = dockyard(api, "rm")
    assert r.returncode == 1
    assert r.stderr.decode().startswith("dockyard: 'dockyard rm' requires at least 1 argument\n\nUsage:  dockyard rm")
    r = dockyard(api, "ps", "--bogus")
    assert r.returncode == 125 and r.stderr.decode().startswith("unknown flag: --bogus\n")


def test_cannot_connect(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/none.sock"
    r = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "ps"], capture_output=True, env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr.decode() == (f"Cannot connect to the Docker daemon at unix://{tmp_path}/none.sock. "
                                 "Is the docker daemon running?\n")


# -- ps / images / inspect / logs -----------------------------------------------------------------

def _container(api: FakeServer, name: str, cmd: list[str], status: str, age: float, **kw: Any) -> None:
    from tests.unit.test_cli_fake_api import FakeContainer

    now = kw.get("now") or time.time()
    cid = (name * 64)[:64].encode().hex()[:64]
    c = FakeContainer(cid, name, "busybox", cmd, {"Labels": kw.get("labels", {})}, {}, now - age, status=status,
                      exit_code=kw.get("code", 0), started_at=now - age + 1, finished_at=now - kw.get("finished_age", 5),
                      ports=kw.get("ports", []))
    api.state.containers[cid] = c


def test_ps_table_matches_docker(api: FakeServer) -> None:
    _container(api, "web", ["sleep", "1000"], "running", 330, labels={"tier": "front"})
    _container(api, "old", ["sh", "-c", "while true; do sleep 1; done"], "exited", 7200, code=2)
    r = dockyard(api, "ps", "-a")
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    status_col = 27  # "Exited (2) 5 seconds ago" + 3 columns of padding
    assert lines[0] == ("CONTAINER ID   IMAGE     COMMAND                  CREATED         "
                        + "STATUS".ljust(status_col) + "PORTS     NAMES")
    assert lines[1] == ("776562776562   busybox   \"sleep 1000\"             5 minutes ago   "
                        + "Up 5 minutes".ljust(status_col) + "          web")
    assert lines[2] == ("6f6c646f6c64   busybox   \"sh -c while true; d…\"   2 hours ago     "
                        + "Exited (2) 5 seconds ago".ljust(status_col) + "          old")
    r = dockyard(api, "ps")
    assert len(r.stdout.decode().splitlines()) == 2
    assert dockyard(api, "ps", "-aq").stdout == b"776562776562\n6f6c646f6c64\n"
    r = dockyard(api, "ps", "-a", "--format", 'table {{.Names}}\\t{{.Label "tier"}}\\t{{.State}}')
    assert r.stdout.decode() == "NAMES     LABEL     STATE\nweb       front     running\nold                 exited\n"
    r = dockyard(api, "ps", "--format", "{{json .}}")
    assert '"Names":"web"' in r.stdout.decode() and '"Status":"Up 5 minutes"' in r.stdout.decode()
    assert dockyard(api, "ps", "-l", "--format", "{{.Names}}").stdout == b"web\n"


def test_images_table(api: FakeServer) -> None:
    api.state.add_image("alpine:3.19", size=7_380_000, created=int(time.time()) - 40 * 86400)
    r = dockyard(api, "images")
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE"
    assert re.fullmatch(r"busybox      latest    [0-9a-f]{12}   3 days ago    4\.26MB", lines[1])
    assert re.fullmatch(r"alpine       3\.19      [0-9a-f]{12}   5 weeks ago   7\.38MB", lines[2])
    r = dockyard(api, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert r.stdout == b"busybox:latest\nalpine:3.19\n"


def test_inspect(api: FakeServer) -> None:
    _container(api, "web", ["sleep", "1000"], "running", 10)
    r = dockyard(api, "inspect", "-f", "{{.Name}} {{.State.Status}} {{json .Args}}", "web")
    assert r.stdout == b'/web running ["1000"]\n'
    r = dockyard(api, "inspect", "web", "nope")
    assert r.returncode == 1
    assert r.stdout.decode().startswith('[\n    {\n        "Id": ')
    assert r.stderr == b"Error: No such object: nope\n"
    r = dockyard(api, "container", "inspect", "nope")
    assert (r.stdout, r.stderr) == (b"[]\n", b"Error response from daemon: No such container: nope\n")
    r = dockyard(api, "image", "inspect", "-f", "{{index .RepoTags 0}}", "busybox")
    assert r.stdout == b"busybox:latest\n"


def test_logs_demultiplexes(api: FakeServer) -> None:
    dockyard(api, "run", "--name", "talk", "busybox", "both")
    r = dockyard(api, "logs", "talk")
    assert (r.stdout, r.stderr) == (b"to stdout\n", b"to stderr\n")
    q = next(q for m, p, q, _ in api.state.requests if p.endswith("/logs"))
    assert q["tail"] == ["all"] and q["stdout"] == ["1"]


def test_lifecycle_verbs_echo_names(api: FakeServer) -> None:
    dockyard(api, "run", "-d", "--name", "s", "busybox", "sleep", "100")
    assert dockyard(api, "stop", "-t", "1", "s").stdout == b"s\n"
    assert dockyard(api, "start", "s").stdout == b"s\n"
    assert dockyard(api, "kill", "-s", "TERM", "s").stdout == b"s\n"
    assert dockyard(api, "wait", "s").stdout == b"137\n"
    assert dockyard(api, "rename", "s", "t").returncode == 0
    assert dockyard(api, "rm", "t").stdout == b"t\n"
    stop = next(q for m, p, q, _ in api.state.requests if p.endswith("/stop"))
    assert stop == {"t": ["1"]}


def test_load_renders_stream_and_errors(api: FakeServer, tmp_path: Any) -> None:
    tar = tmp_path / "img.tar"
    tar.write_bytes(b"x" * 70000)
    r = dockyard(api, "load", "-i", str(tar))
    assert (r.stdout, r.returncode) == (b"Loaded image: busybox:latest\n", 0)
    body = next(b for m, p, q, b in api.state.requests if p == "/images/load")
    assert len(body) == 70000
    r = dockyard(api, "load", stdin=b"bad tar")
    assert (r.stderr, r.returncode) == (b"unexpected EOF\n", 1)


def test_api_version_negotiation(fake_api: FakeServer) -> None:  # noqa: F811
    fake_api.api_version = "1.44"
    dockyard(fake_api, "ps")
    assert fake_api.state.raw_paths[-1].startswith("/v1.44/containers/json")
    dockyard(fake_api, "ps", env={"DOCKER_API_VERSION": "1.41"})
    assert fake_api.state.raw_paths[-1].startswith("/v1.41/containers/json")
    fake_api.api_version = "1.52"
    dockyard(fake_api, "ps")
    assert fake_api.state.raw_paths[-1].startswith("/v1.50/containers/json")


def _seed(api: FakeServer, now: float) -> None:
    from tests.unit.test_cli_fake_api import FakeState

    api.state = FakeState()
    api.state.add_image("busybox:latest", created=int(now) - 3 * 86400)
    alpine = api.state.add_image("alpine:3.19", size=7_380_000, created=int(now) - 40 * 86400)
    alpine.digests = ["alpine@sha256:" + "a" * 64, "docker.io/library/alpine@sha256:" + "b" * 64]
    from tests.unit.test_cli_fake_api import FakeImage

    api.state.dangling.append(FakeImage("sha256:" + "c" * 64, [], 1_000, int(now) - 3600))
    api.state.dangling.append(FakeImage("sha256:" + "e" * 64, [], 2_000, int(now) - 7200,
                                        digests=["registry.local:5000/team/app@sha256:" + "f" * 64]))
    api.state.add_image("hello:pullable", pullable_only=True)
    api.state.add_image("hello:latest", pullable_only=True)
    _container(api, "web", ["sleep", "1000"], "running", 330, labels={"tier": "front", "a": "b"}, ports=PORTS, now=now)
    # ages far from a unit boundary, so docker's run a second later prints the same words
    _container(api, "old", ["sh", "-c", "while true; do sleep 1; done"], "exited", 7200, code=2, now=now,
               finished_age=5400)
    api.state.events += [
        {"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
         "scope": "local", "time": 1764370000, "timeNano": 1764370000123456789},
        {"Type": "image", "Action": "pull", "Actor": {"ID": "busybox:latest", "Attributes": {"name": "busybox"}},
         "scope": "local", "time": 1764370001, "timeNano": 1764370001000000000}]


PORTS = [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"},
         {"PrivatePort": 80, "PublicPort": 8080, "IP": "::", "Type": "tcp"},
         {"PrivatePort": 9000, "PublicPort": 9000, "IP": "0.0.0.0", "Type": "tcp"},
         {"PrivatePort": 9001, "PublicPort": 9001, "IP": "0.0.0.0", "Type": "tcp"},
         {"PrivatePort": 9003, "PublicPort": 9003, "IP": "0.0.0.0", "Type": "tcp"},
         {"PrivatePort": 53, "Type": "udp"}, {"PrivatePort": 54, "Type": "udp"}, {"PrivatePort": 443, "Type": "tcp"}]


@pytest.mark.parametrize("args", [
    ("ps", "-a"), ("ps", "--format", "{{.Ports}}"), ("ps",), ("ps", "-a", "--no-trunc"), ("ps", "-aq"), ("ps", "-a", "--format", "{{json .}}"),
    ("ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Labels}}\\t{{.State}}"),
    ("images",), ("images", "-q"), ("images", "--no-trunc"), ("images", "--digests"),
    ("images", "--format", "table {{.Repository}}\\t{{.ID}}\\t{{.Size}}"),
    ("inspect", "web"), ("inspect", "-f", "{{.State.Status}} {{.Config.Labels}} {{json .Config.Labels}}", "web"),
    ("inspect", "web", "nope"), ("container", "inspect", "nope"), ("image", "inspect", "nope"),
    ("rm", "nope1", "nope2"), ("stop", "nope"), ("logs", "web"), ("version", "-f", "{{.Server.Version}}"),
    ("info", "-f", "{{.NCPU}} {{.Driver}}"), ("history", "busybox"), ("history", "--no-trunc", "busybox"),
    ("image", "history", "-q", "busybox"), ("history", "-H=false", "busybox"), ("system", "df"),
    ("network", "ls"), ("network", "ls", "--no-trunc"), ("network", "ls", "--format", "{{json .}}"),
    ("events",), ("events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"),
    ("system", "df", "--format", "{{json .}}"), ("system", "df", "-v"), ("port", "web"), ("port", "web", "80"), ("port", "web", "9000/tcp"),
    ("port", "web", "53/udp"), ("port", "old"),
    ("create", "nothere"), ("create", "--name", "web", "busybox"), ("run", "--name", "web", "busybox"),
    ("run", "-d", "-a", "stdout", "busybox"), ("run", "--restart", ":3", "busybox"),
    ("run", "--restart", "always:x", "busybox"), ("run", "-m", "lots", "busybox"),
    ("run", "--pull", "sometimes", "busybox"), ("run", "--pull", "never", "nothere"), ("start", "nope", "old"),
    ("kill", "old"), ("wait", "nope"), ("logs", "--tail", "1", "web"), ("rename", "nope", "x"),
    ("rename", "web", ""), ("pause", "nope", "web"), ("restart", "nope"), ("export", "nope"),
    ("commit", "nope"), ("attach", "old"), ("top",), ("update", "nope"), ("inspect", "--type", "foo", "x"), ("inspect", "--type", "image", "web"),
    ("inspect", "--type", "container", "-f", "{{.Name}}", "web"), ("ps", "-s"), ("ps", "-a", "--format", "{{.Size}}"),
    ("container", "prune", "-f"), ("image", "prune", "-f"), ("image", "prune", "-a", "-f"), ("system", "prune", "-f"),
    ("system", "prune", "-af", "--volumes"), ("rmi", "alpine:3.19", "nope"), ("images", "-a"),
    ("tag", "busybox", "mine/box:v1"), ("images", "--digests", "--no-trunc"), ("images", "--format", "{{json .}}"),
    ("image", "ls", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}|{{.ID}}"),
    ("pull", "hello:pullable"), ("pull", "hello"), ("pull", "-q", "hello:pullable"), ("image", "pull", "nothere"), ("image", "rm", "busybox"), ("rm",), ("ps", "--bogus"), ("rename", "a"),
])
def test_same_output_as_docker(api: FakeServer, args: tuple[str, ...]) -> None:
    now = time.time()
    _seed(api, now)
    ours = dockyard(api, *args)
    _seed(api, now)  # commands may change the state: docker gets the same starting point
    theirs = docker(api, *args)
    _same(ours, theirs)


def _same(ours: subprocess.CompletedProcess[bytes], theirs: subprocess.CompletedProcess[bytes]) -> None:
    assert ours.returncode == theirs.returncode
    assert ours.stdout.decode() == theirs.stdout.decode()
    theirs_err = theirs.stderr.decode()
    for word in ("docker: ", "'docker run", "'docker exec", "'docker top", "'docker rm", "'docker ps", "'docker rename", "Usage:  docker ",
                 "Run 'docker", "See 'docker"):
        theirs_err = theirs_err.replace(word, word.replace("docker", "dockyard"))
    assert ours.stderr.decode() == theirs_err


# -- more verbs -----------------------------------------------------------------------------------

def test_create_then_start_attach(api: FakeServer) -> None:
    r = dockyard(api, "create", "--name", "later", "busybox", "both")
    assert re.fullmatch(rb"[0-9a-f]{64}\n", r.stdout)
    r = dockyard(api, "start", "-a", "later")
    assert (r.stdout, r.stderr, r.returncode) == (b"to stdout\n", b"to stderr\n", 0)
    seq = [re.sub(r"/[0-9a-f]{64}/", "/ID/", c) for c in calls(api)]
    assert seq[-4:] == ["GET /containers/later/json", "POST /containers/ID/attach", "POST /containers/ID/wait",
                        "POST /containers/ID/start"]


def test_run_attach_only_stderr(api: FakeServer) -> None:
    r = dockyard(api, "run", "-a", "stderr", "--rm", "busybox", "both")
    body = next(b for m, p, q, b in api.state.requests if p == "/containers/create")
    assert (body["AttachStdout"], body["AttachStderr"], body["AttachStdin"]) == (False, True, False)
    attach = next(q for m, p, q, _ in api.state.requests if p.endswith("/attach"))
    assert attach == {"stream": ["1"], "stderr": ["1"]}
    assert r.returncode == 0


def test_signals_are_forwarded(api: FakeServer) -> None:
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = api.host  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", "run", "--name", "sig", "busybox", "sleep"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not any(p.endswith("/start") for _, p, _, _ in api.state.requests):
            assert time.time() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 137  # the fake "kills" on any signal
        kill = next(q for m, p, q, _ in api.state.requests if p.endswith("/kill"))
        assert kill == {"signal": [str(int(signal.SIGINT))]}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_commit_export_save_tag(api: FakeServer, tmp_path: Any) -> None:
    dockyard(api, "run", "--name", "c1", "busybox", "echo", "x")
    r = dockyard(api, "commit", "-a", "me", "-m", "msg", "-c", "ENV A=1", "-c", "CMD [\"sh\"]", "c1", "snap:v2")
    assert r.returncode == 0 and r.stdout.startswith(b"sha256:")
    q = next(q for m, p, q, _ in api.state.requests if p == "/commit")
    assert q == {"container": ["c1"], "author": ["me"], "comment": ["msg"], "pause": ["1"], "repo": ["snap"],
                 "tag": ["v2"], "changes": ['ENV A=1\nCMD ["sh"]']}
    out = tmp_path / "c1.tar"
    assert dockyard(api, "export", "-o", str(out), "c1").returncode == 0
    assert out.read_bytes() == b"EXPORT:c1"
    assert dockyard(api, "export", "c1").stdout == b"EXPORT:c1"
    assert dockyard(api, "save", "busybox", "snap:v2").stdout == b"TAR:busybox,snap:v2"
    assert dockyard(api, "tag", "busybox", "localhost:5000/me/box:1").returncode == 0
    q = next(q for m, p, q, _ in api.state.requests if p.endswith("/tag"))
    assert q == {"repo": ["localhost:5000/me/box"], "tag": ["1"]}


def test_load_and_import_like_docker(api: FakeServer, tmp_path: Any) -> None:
    tar = tmp_path / "x.tar"
    tar.write_bytes(b"t" * 1000)
    for args in (("load", "-i", str(tar)), ("import", str(tar), "imp:1"), ("import", "-m", "hi", "-c", "ENV A=1", str(tar))):
        ours = dockyard(api, *args)
        theirs = docker(api, *args)
        _same(ours, theirs)
    imports = [q for m, p, q, _ in api.state.requests if p == "/images/create"]
    assert imports[-1] == {"fromSrc": ["-"], "message": ["hi"], "changes": ["ENV A=1"]}


def test_tcp_host_flag(tmp_path: Any) -> None:
    import socketserver
    import threading

    from tests.unit.test_cli_fake_api import FakeState, Handler

    class TCPFake(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = TCPFake(("127.0.0.1", 0), Handler)
    server.state = FakeState()  # type: ignore[attr-defined]
    server.api_version = "1.45"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        port = server.server_address[1]
        r = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "-H", f"tcp://127.0.0.1:{port}", "ps", "-q"],
                           capture_output=True, env=env, timeout=30)
        assert (r.returncode, r.stderr) == (0, b"")
        assert server.state.raw_paths[-1].startswith("/v1.45/containers/json")  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_help_texts(api: FakeServer) -> None:
    r = dockyard(api, "--help")
    assert r.returncode == 0 and b"Usage:  dockyard [OPTIONS] COMMAND" in r.stdout
    r = dockyard(api, "run", "--help")
    assert r.returncode == 0
    assert b"Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]" in r.stdout
    assert b"  -h, --hostname string" in r.stdout
    r = dockyard(api, "container")
    assert b"Usage:  dockyard container COMMAND" in r.stdout


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make certificates")
def test_tls_verify_with_cert_path(tmp_path: Any) -> None:
    import socketserver
    import ssl
    import threading

    from tests.unit.test_cli_fake_api import FakeState, Handler

    d = str(tmp_path)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", f"{d}/ca-key.pem", "-out", f"{d}/ca.pem")
    for name, cn in (("server", "127.0.0.1"), ("client", "client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{d}/{name}-key.pem",
                 "-out", f"{d}/{name}.csr")
        ext = f"{d}/{name}.ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca-key.pem",
                 "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", f"{d}/{name}.pem")
    os.rename(f"{d}/client.pem", f"{d}/cert.pem")
    os.rename(f"{d}/client-key.pem", f"{d}/key.pem")

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{d}/ca.pem")
    ctx.load_cert_chain(f"{d}/server.pem", f"{d}/server-key.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED

    class TLSFake(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def get_request(self):  # noqa: ANN202
            sock, addr = super().get_request()
            return ctx.wrap_socket(sock, server_side=True), addr

    server = TLSFake(("127.0.0.1", 0), Handler)
    server.state = FakeState()  # type: ignore[attr-defined]
    server.api_version = "1.50"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=d)
        r = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "ps", "-q"], capture_output=True, env=env,
                           timeout=30)
        assert (r.returncode, r.stderr) == (0, b"")
        env.pop("DOCKER_TLS_VERIFY")
        env.pop("DOCKER_CERT_PATH")
        r = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "--tlsverify", f"--tlscacert={d}/ca.pem",
                            f"--tlscert={d}/cert.pem", f"--tlskey={d}/key.pem", "ps", "-q"],
                           capture_output=True, env=env, timeout=30)
        assert (r.returncode, r.stderr) == (0, b"")
    finally:
        server.shutdown()
        server.server_close()


def test_exec(api: FakeServer) -> None:
    dockyard(api, "run", "-d", "--name", "box", "busybox", "sleep")
    for args in (("exec", "box", "echo", "hi", "there"), ("exec", "box", "sh", "-c", "exit 7"),
                 ("exec", "-d", "box", "echo", "x"), ("exec", "nope", "echo"), ("exec", "box"),
                 ("exec", "-u", "1000", "-w", "/tmp", "-e", "A=1", "box", "echo", "env")):
        _same(dockyard(api, *args), docker(api, *args))
    bodies = [b for m, p, q, b in api.state.requests if p.endswith("/exec")]
    ours, theirs = bodies[-2], bodies[-1]
    for key in ("User", "WorkingDir", "Env", "Cmd", "Tty", "AttachStdin", "AttachStdout", "AttachStderr", "Detach"):
        assert ours[key] == theirs[key], key


def test_network_commands_like_docker(api: FakeServer) -> None:
    now = time.time()
    sequence = [
        ("network", "create", "--subnet", "10.9.0.0/24", "--gateway", "10.9.0.1", "--ip-range", "10.9.0.128/25",
         "-o", "com.docker.network.bridge.name=br9", "--label", "a=b", "--internal", "--ipv6", "mynet"),
        ("network", "create", "plain"), ("network", "create", "plain"),
        ("network", "create", "--gateway", "10.1.0.1", "nosubnet"),
        ("network", "connect", "--alias", "w", "--ip", "10.9.0.5", "mynet", "old"),
        ("network", "connect", "mynet", "nope"), ("network", "disconnect", "-f", "mynet", "old"),
        ("network", "rm", "mynet", "plain", "gone"), ("network", "rm", "-f", "gone"), ("network", "prune", "-f"),
    ]
    results = {}
    for cli in ("dockyard", "docker"):
        _seed(api, now)
        run = dockyard if cli == "dockyard" else docker
        results[cli] = [run(api, *args) for args in sequence]
        results[cli + "-bodies"] = [(p, b) for m, p, q, b in api.state.requests if p.startswith("/networks") and m == "POST"]
    for ours, theirs in zip(results["dockyard"], results["docker"]):
        _same(ours, theirs)
    assert results["dockyard-bodies"] == results["docker-bodies"]


def test_registry_commands_like_docker(api: FakeServer, tmp_path: Any) -> None:
    """login/push/pull/search/logout: same output, same config.json, same X-Registry-Auth headers."""
    now = time.time()
    sequence = [
        (("login", "-u", "me", "--password-stdin", "registry.local:5000"), b"secret\n"),
        (("login", "-u", "me", "-p", "wrong", "registry.local:5000"), None),
        (("push", "registry.local:5000/me/box:1"), None), (("push", "registry.local:5000/me/box"), None),
        (("pull", "registry.local:5000/me/other:1"), None), (("pull", "alpine"), None),
        (("search", "busybox"), None), (("search", "--no-trunc", "--limit", "1", "busybox"), None),
        (("search", "--format", "{{json .}}", "busybox"), None),
        (("logout", "registry.local:5000"), None), (("logout", "registry.local:5000"), None),
    ]
    results: dict[str, Any] = {}
    for cli in ("dockyard", "docker"):
        _seed(api, now)
        api.state.add_image("registry.local:5000/me/box:1")
        cfg = tmp_path / cli
        cfg.mkdir()
        configs = []
        outs = []
        for args, stdin in sequence:
            env = {"DOCKER_CONFIG": str(cfg)}
            if cli == "dockyard":
                outs.append(dockyard(api, *args, stdin=stdin, env=env))
            else:
                full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
                full.update(DOCKER_HOST=api.host, **env)  # type: ignore[attr-defined]
                outs.append(subprocess.run(["docker", *args], input=stdin or b"", capture_output=True, env=full,
                                           timeout=30))
            configs.append((cfg / "config.json").read_text() if (cfg / "config.json").exists() else None)
        headers = [(p, h) for (m, p, q, b), h in zip(api.state.requests, api.state.auth_headers) if p != "/_ping"]
        results[cli] = (outs, configs, headers)
    if not shutil.which("docker"):
        pytest.skip("no docker CLI to compare with")
    for ours, theirs in zip(results["dockyard"][0], results["docker"][0]):
        _same(ours, theirs.__class__(ours.args, theirs.returncode, theirs.stdout,
                                     theirs.stderr.replace(str(tmp_path / "docker").encode(),
                                                           str(tmp_path / "dockyard").encode())))
    assert results["dockyard"][1] == results["docker"][1]
    assert results["dockyard"][2] == results["docker"][2]
