"""The real docker CLI 28 (classic builder, DOCKER_BUILDKIT=0) and docker-py building on dockyardd."""

import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.compat.helpers import building, read_until, until


def build(d, ctx, *args, input=None, timeout=120):
    env = {**d.env, "DOCKER_BUILDKIT": "0"}
    import subprocess
    from tests.daemon_harness import DOCKER
    return subprocess.run([DOCKER, "build", *args, str(ctx) if ctx is not None else "-"], env=env, input=input,
                          capture_output=True, timeout=timeout)


def ok(d, *args, timeout=120):
    r = d.docker(*args, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def built(r, d):
    assert r.returncode == 0, f"build failed {r.returncode}\n{r.stdout.decode()}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def name() -> str:
    return "bt" + uuid.uuid4().hex[:8]


@pytest.fixture
def ctx(tmp_path):
    return tmp_path


def test_build_steps_stream_cache_and_invalidation(dockyardd, ctx):
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "ARG GREETING=hi\n"
        "ENV A=1 B=\"two words\"\n"
        "WORKDIR /app\n"
        "COPY hello.txt .\n"
        "RUN echo \"$GREETING $A $B\" > out.txt && cat out.txt hello.txt\n"
        "CMD [\"cat\", \"/app/out.txt\"]\n")
    tag = name()
    out = built(build(dockyardd, ctx, "-t", tag, "--build-arg", "GREETING=yo"), dockyardd)
    assert "Step 1/7 : FROM busybox" in out and "Step 6/7 : RUN echo" in out
    assert " ---> Running in " in out and "yo 1 two words\nhello\n" in out
    assert "Removing intermediate container" in out
    image_id = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", tag).strip()
    assert f"Successfully built {image_id[7:19]}" in out and f"Successfully tagged {tag}:latest" in out
    assert ok(dockyardd, "run", "--rm", tag) == "yo 1 two words\n"
    assert "|1 GREETING=yo /bin/sh -c echo" in ok(dockyardd, "history", "--no-trunc", tag)

    events_since = ok(dockyardd, "version", "-f", "{{.Server.Version}}")  # a round trip before the cached build
    again = built(build(dockyardd, ctx, "-t", tag, "--build-arg", "GREETING=yo"), dockyardd)
    assert again.count(" ---> Using cache") == 6 and "Running in" not in again
    assert f"Successfully built {image_id[7:19]}" in again
    assert events_since

    (ctx / "hello.txt").write_text("changed\n")
    changed = built(build(dockyardd, ctx, "-t", tag, "--build-arg", "GREETING=yo"), dockyardd)
    assert changed.count(" ---> Using cache") == 3  # ARG, ENV, WORKDIR; COPY and RUN run again
    assert "yo 1 two words\nchanged\n" in changed
    no_cache = built(build(dockyardd, ctx, "--no-cache", "-t", tag, "--build-arg", "GREETING=yo"), dockyardd)
    assert "Using cache" not in no_cache
    assert ok(dockyardd, "ps", "-aq") == ""
    ok(dockyardd, "rmi", tag)


def test_failing_run_reports_exit_code_and_leaves_no_container(dockyardd):
    r = build(dockyardd, None, input=b"FROM busybox\nRUN echo before; exit 3\n")
    assert r.returncode == 3
    assert "before\n" in r.stdout.decode()
    assert "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3" in r.stderr.decode()
    assert ok(dockyardd, "ps", "-aq") == ""


def test_bad_input_errors(dockyardd, ctx):
    r = build(dockyardd, None, input=b"FROM busybox\n\nFOO bar\n")
    assert r.returncode == 1
    assert "dockerfile parse error line 3: unknown instruction: FOO" in r.stderr.decode()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /\n")
    r = build(dockyardd, ctx)
    assert r.returncode == 1 and "missing.txt" in r.stderr.decode() and "not found" in r.stderr.decode()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY ../outside /\n")
    r = build(dockyardd, ctx)
    assert r.returncode == 1 and "forbidden path outside the build context" in r.stderr.decode()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    r = build(dockyardd, ctx, "--build-arg", "NEVER=used")
    assert r.returncode == 0
    assert "[Warning] One or more build-args [NEVER] were not consumed" in r.stdout.decode()


def test_multi_stage_target_and_copy_from(dockyardd, ctx):
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS base\n"
        "RUN echo base > /base.txt\n"
        "FROM busybox AS unused\n"
        "RUN echo should-not-run && exit 7\n"
        "FROM busybox AS final\n"
        "COPY --from=base /base.txt /copied.txt\n"
        "COPY --from=0 /base.txt /again.txt\n"
        "CMD cat /copied.txt /again.txt\n")
    tag = name()
    out = built(build(dockyardd, ctx, "-t", tag), dockyardd)
    assert "should-not-run" not in out
    assert ok(dockyardd, "run", "--rm", tag) == "base\nbase\n"
    target = built(build(dockyardd, ctx, "--target", "base", "-t", tag + "b"), dockyardd)
    assert "COPY" not in target
    assert ok(dockyardd, "run", "--rm", tag + "b", "cat", "/base.txt") == "base\n"
    r = build(dockyardd, ctx, "--target", "nosuch")
    assert r.returncode == 1 and "failed to reach build target nosuch in Dockerfile" in r.stderr.decode()
    ok(dockyardd, "rmi", tag, tag + "b")


def test_dockerignore_stdin_dockerfile_quiet_and_iidfile(dockyardd, ctx, tmp_path_factory):
    (ctx / "keep.txt").write_text("keep\n")
    (ctx / "secret.txt").write_text("secret\n")
    (ctx / "logs").mkdir()
    (ctx / "logs" / "a.log").write_text("log\n")
    (ctx / ".dockerignore").write_text("secret.txt\nlogs\n")
    outside = tmp_path_factory.mktemp("df") / "Build.file"
    outside.write_text("FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx\n")
    iid = tmp_path_factory.mktemp("iid") / "iid"
    tag = name()
    r = build(dockyardd, ctx, "-f", str(outside), "-t", tag, "--iidfile", str(iid))
    out = built(r, dockyardd)
    listing = out.split("Running in", 1)[1]
    assert "keep.txt" in listing and "secret.txt" not in listing and "logs" not in listing
    assert iid.read_text().startswith("sha256:")
    assert "Build.file" not in listing and ".dockerfile." not in listing
    # the CLI names an outside Dockerfile randomly and lists it in .dockerignore, so a COPY of
    # the whole context misses the cache there (as on dockerd); inside the context it hits
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx\n")
    first = built(build(dockyardd, ctx, "--iidfile", str(iid)), dockyardd)
    assert "Using cache" not in first
    quiet = built(build(dockyardd, ctx, "-q"), dockyardd)
    assert quiet.strip() == iid.read_text().strip()
    r = build(dockyardd, ctx, "-f", "-", input=b"FROM busybox\nCOPY keep.txt /\nCMD cat /keep.txt\n")
    built(r, dockyardd)
    ok(dockyardd, "rmi", tag)


def test_metadata_instructions_and_labels(dockyardd, ctx):
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "LABEL a=1 \"b c\"=\"d e\"\n"
        "EXPOSE 80 53/udp\n"
        "VOLUME [\"/data\"]\n"
        "USER 1000:1000\n"
        "WORKDIR /srv\n"
        "WORKDIR sub\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "ENTRYPOINT [\"/bin/echo\"]\n"
        "CMD [\"hi\"]\n")
    tag = name()
    built(build(dockyardd, ctx, "-t", tag, "--label", "from.cli=yes"), dockyardd)
    config = json.loads(ok(dockyardd, "image", "inspect", "-f", "{{json .Config}}", tag))
    assert config["Labels"] == {"a": "1", "b c": "d e", "from.cli": "yes"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/srv/sub"
    assert config["StopSignal"] == "SIGUSR1"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["Entrypoint"] == ["/bin/echo"] and config["Cmd"] == ["hi"]
    history = ok(dockyardd, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", tag)
    assert '/bin/sh -c #(nop)  EXPOSE 80/tcp 53/udp|0B' in history
    ok(dockyardd, "rmi", tag)


def test_copy_chown_chmod_add_archive_and_heredoc(dockyardd, ctx):
    (ctx / "f.txt").write_text("f\n")
    with tarfile.open(ctx / "arch.tar.gz", "w:gz") as tar:
        data = b"inside\n"
        info = tarfile.TarInfo("pkg/inner.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "ENV WHO=world\n"
        "COPY <<EOF /expanded.txt\n"
        "hello \"$WHO\"\n"
        "EOF\n"
        "COPY --chown=1000:1001 --chmod=640 f.txt /owned/\n"
        "ADD arch.tar.gz /unpacked/\n"
        "COPY <<EOF /heredoc.txt\n"
        "from a heredoc\n"
        "EOF\n"
        "RUN <<EOF\n"
        "echo script line one\n"
        "echo script line two\n"
        "EOF\n")
    tag = name()
    out = built(build(dockyardd, ctx, "-t", tag), dockyardd)
    assert "script line one\nscript line two\n" in out
    check = ok(dockyardd, "run", "--rm", tag, "sh", "-c",
               "stat -c '%u:%g %a' /owned/f.txt; cat /unpacked/pkg/inner.txt /heredoc.txt /expanded.txt")
    assert check == "1000:1001 640\ninside\nfrom a heredoc\nhello \"world\"\n"
    ok(dockyardd, "rmi", tag)


def test_docker_py_build(dockyardd, ctx):
    import docker
    client = docker.DockerClient(base_url=dockyardd.host, version="auto", timeout=120)
    try:
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo from-docker-py\n")
        tag = name()
        image, logs = client.images.build(path=str(ctx), tag=tag, rm=True)
        lines = list(logs)
        assert any("from-docker-py" in line.get("stream", "") for line in lines)
        assert {"aux": {"ID": image.id}} in lines and f"{tag}:latest" in image.tags
        with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 1"):
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 1\n"), rm=True)
        client.images.remove(tag)
    finally:
        client.close()


def test_dockyard_cli_build(dockyardd, ctx, tmp_path_factory):
    (ctx / "in.txt").write_text("in\n")
    (ctx / "ignored.txt").write_text("no\n")
    (ctx / ".dockerignore").write_text("ignored.txt\n")
    outside = tmp_path_factory.mktemp("dy") / "Dockerfile.alt"
    outside.write_text("FROM busybox\nARG V\nCOPY . /c/\nRUN ls -A /c; echo v=$V\n")
    iid = tmp_path_factory.mktemp("dyiid") / "iid"
    tag = name()
    r = dockyardd.dockyard("build", "-t", tag, "-f", str(outside), "--build-arg", "V=7", "--iidfile", str(iid),
                           str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "Sending build context to Docker daemon" in out and "Step 4/4 : RUN" in out
    listing = out.split("Running in", 1)[1]
    assert "in.txt" in listing and "ignored.txt" not in listing and ".dockerfile." not in listing
    assert "v=7" in listing
    assert ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", tag).strip() == iid.read_text()
    r = dockyardd.dockyard("build", "-q", "-", input=b"FROM busybox\nRUN exit 5\n")
    assert r.returncode == 5 and "returned a non-zero code: 5" in r.stderr.decode()
    ok(dockyardd, "rmi", tag)


def test_client_disconnect_cancels_the_build(dockyardd):
    with building(dockyardd, b"FROM busybox\nRUN echo $((40+2)); sleep 60\n") as proc:
        assert b"\n42\n" in read_until(proc, b"\n42\n")
        assert ok(dockyardd, "ps", "-q") != ""
    assert until(lambda: ok(dockyardd, "ps", "-aq") == "")


def test_from_pulls_a_missing_base_image(dockyardd, ctx):
    from tests.integration import distribution_registry as dr
    if not dr.available():
        pytest.skip("docker-registry is not installed")
    with dr.running() as registry:
        base = f"{registry.host}/build/base:1"
        ok(dockyardd, "tag", "busybox", base)
        ok(dockyardd, "push", base)
        ok(dockyardd, "rmi", base)
        (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo on-pulled-base\n")
        tag = name()
        out = built(build(dockyardd, ctx, "-t", tag), dockyardd)
        assert "Pulling from build/base" in out and "on-pulled-base" in out
        again = built(build(dockyardd, ctx, "--pull", "-t", tag), dockyardd)
        assert "Pulling from build/base" in again and "Using cache" in again
        r = build(dockyardd, None, input=f"FROM {registry.host}/build/absent:1\n".encode())
        assert r.returncode == 1 and "build/absent" in r.stderr.decode()
        ok(dockyardd, "rmi", tag, base)


def _post_build(d, body: bytes, query: str = "", headers: dict | None = None):
    """POST /build straight to the socket: (status, [messages])."""
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(d.socket))

    conn = Conn("localhost", timeout=120)
    try:
        conn.request("POST", "/v1.47/build" + (f"?{query}" if query else ""), body=body,
                     headers={"Content-Type": "application/x-tar", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        return resp.status, [json.loads(data)]
    return resp.status, [json.loads(line) for line in data.splitlines() if line.strip()]


def _context(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_context_compressions_and_bad_contexts(dockyardd, mode):
    body = _context({"Dockerfile": b"FROM busybox\nCOPY f /f\n", "f": mode.encode()}, mode)
    status, messages = _post_build(dockyardd, body)
    assert status == 200 and messages[-1]["stream"].startswith("Successfully built"), messages
    if mode != "w":
        return
    # a body that is no tar is taken as the Dockerfile itself (what `docker build - < Dockerfile` means)
    status, messages = _post_build(dockyardd, b"FROM busybox\nRUN echo plain-body\n")
    assert status == 200 and any("plain-body" in m.get("stream", "") for m in messages)
    status, messages = _post_build(dockyardd, b"this is not a tar archive at all\n" * 20)
    assert status == 400 and "unknown instruction: THIS" in messages[0]["message"]
    status, messages = _post_build(dockyardd, _context({"Dockerfile": b"FROM busybox\n", ".dockerignore": b"[x\n"}))
    assert status == 400 and "Error processing .dockerignore" in messages[0]["message"]
    status, messages = _post_build(dockyardd, _context({"Other": b"FROM busybox\n"}))
    assert status == 400 and "Cannot locate specified Dockerfile: Dockerfile" in messages[0]["message"]
    status, messages = _post_build(dockyardd, _context({"Other": b"FROM busybox\nRUN exit 9\n"}),
                                   "dockerfile=Other")
    assert status == 200 and messages[-1]["errorDetail"] == {
        "code": 9, "message": "The command '/bin/sh -c exit 9' returned a non-zero code: 9"}


def test_remote_context_and_add_url(dockyardd, tmp_path):
    import functools
    import http.server
    import threading
    (tmp_path / "ctx.tar").write_bytes(_context({"Dockerfile": b"FROM busybox\nCOPY f /from-remote\n", "f": b"r\n"}))
    (tmp_path / "Dockerfile.txt").write_text("FROM busybox\nRUN echo plain-remote-dockerfile\n")
    (tmp_path / "payload.txt").write_text("downloaded\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        r = build(dockyardd, None, "--help")  # the CLI is there; the remote builds go through the API
        assert r.returncode == 0
        status, messages = _post_build(dockyardd, b"", f"remote={base}/ctx.tar&t=remote-ctx")
        assert status == 200 and any("Successfully tagged remote-ctx:latest" in m.get("stream", "") for m in messages)
        assert ok(dockyardd, "run", "--rm", "remote-ctx", "cat", "/from-remote") == "r\n"
        status, messages = _post_build(dockyardd, b"", f"remote={base}/Dockerfile.txt")
        assert status == 200 and any("plain-remote-dockerfile" in m.get("stream", "") for m in messages)
        status, messages = _post_build(dockyardd, _context({
            "Dockerfile": f"FROM busybox\nADD {base}/payload.txt /dl/\n".encode()}), "t=add-url")
        assert status == 200, messages
        assert ok(dockyardd, "run", "--rm", "add-url", "sh", "-c", "cat /dl/payload.txt; stat -c %a /dl/payload.txt") \
            == "downloaded\n600\n"
        ok(dockyardd, "rmi", "remote-ctx", "add-url")
    finally:
        server.shutdown()
        thread.join()


def test_arg_before_from_shell_onbuild_and_builder_prune(dockyardd, ctx):
    (ctx / "Dockerfile").write_text(
        "ARG BASE=busybox\n"
        "FROM ${BASE} AS first\n"
        "ARG BASE\n"
        "SHELL [\"/bin/sh\", \"-xc\"]\n"
        "RUN echo base=$BASE\n"
        "ONBUILD RUN echo trigger-ran\n")
    parent = name()
    out = built(build(dockyardd, ctx, "-t", parent), dockyardd)
    assert "Step 1/6 : ARG BASE=busybox" in out and "base=busybox" in out
    (ctx / "Dockerfile").write_text(f"FROM {parent}\nRUN echo child\n")
    child = built(build(dockyardd, ctx, "-t", parent + "c"), dockyardd)
    assert "# Executing 1 build trigger" in child and "trigger-ran" in child
    config = json.loads(ok(dockyardd, "image", "inspect", "-f", "{{json .Config}}", parent + "c"))
    assert not config.get("OnBuild")
    r = dockyardd.docker("builder", "prune", "-f")
    assert r.returncode == 0, r.stderr.decode()
    rebuilt = built(build(dockyardd, ctx, "-t", parent + "c"), dockyardd)
    assert "Using cache" not in rebuilt  # the cache was forgotten
    ok(dockyardd, "rmi", parent + "c", parent)


def test_cache_from_an_image_without_local_cache(dockyardd, ctx):
    (ctx / "f.txt").write_text("f\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nENV X=1\nCOPY f.txt /\nRUN echo ran-once > /r\n")
    tag = name()
    built(build(dockyardd, ctx, "-t", tag), dockyardd)
    saved = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", tag).strip()
    ok(dockyardd, "builder", "prune", "-f")  # the local cache is forgotten; the image remains
    out = built(build(dockyardd, ctx, "--cache-from", tag, "-t", tag + "b"), dockyardd)
    assert out.count(" ---> Using cache") == 3 and "\nran-once\n" not in out, out
    assert ok(dockyardd, "run", "--rm", tag + "b", "cat", "/r", "/f.txt") == "ran-once\nf\n"
    assert saved
    ok(dockyardd, "rmi", tag, tag + "b")


def test_copy_exclude_and_add_checksum(dockyardd, ctx):
    (ctx / "src").mkdir()
    for n in ("a.txt", "b.log", "c.txt"):
        (ctx / "src" / n).write_text(n)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY --exclude=*.log src /dst/\nCOPY --exclude=c.txt src/*.txt /flat/\n"
                                    "RUN ls /dst /flat\n")
    out = built(build(dockyardd, ctx), dockyardd)
    listing = out.split("Running in", 1)[1]
    assert "a.txt" in listing and "b.log" not in listing
    assert listing.count("c.txt") == 1  # in /dst, not in /flat


def test_daemon_killed_mid_build_leaves_nothing(fresh_daemon):
    import signal
    from tests import daemon_harness
    d = fresh_daemon
    daemon_harness.load_busybox(d)
    with building(d, b"FROM busybox\nRUN echo $((40+2)); sleep 60\n") as proc:
        assert b"\n42\n" in read_until(proc, b"\n42\n")
        daemon_harness.stop(d, signal.SIGKILL)
    daemon_harness.start(d)
    assert ok(d, "ps", "-aq") == ""
    snapshots = d.data_root / "overlay"
    leftovers = [p.name for p in snapshots.rglob("build-*")] if snapshots.exists() else []
    assert leftovers == []


def test_run_options_and_symlinked_source(dockyardd, ctx):
    (ctx / "target.txt").write_text("through the link\n")
    os.symlink("target.txt", ctx / "link.txt")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link.txt /copied/\n"
                                    "RUN cat /copied/link.txt; grep myhost /etc/hosts; ip -o link | grep -c ': '\n")
    out = built(build(dockyardd, ctx, "--add-host", "myhost:10.1.2.3", "--network", "none", "--no-cache"), dockyardd)
    listing = out.split("Running in", 1)[1]
    assert "through the link\n" in listing and "10.1.2.3" in listing
    assert "\n1\n" in listing  # --network none: only lo


def test_cache_is_never_wrong(dockyardd, ctx):
    (ctx / "d").mkdir()
    (ctx / "d" / "a").write_text("a\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nARG V=1\nCOPY d /d/\nRUN ls -l /d; echo v=$V\n")

    def steps_cached(*args):
        return built(build(dockyardd, ctx, *args), dockyardd).count(" ---> Using cache")

    steps_cached()
    assert steps_cached() == 3
    os.utime(ctx / "d" / "a", (1, 1))
    assert steps_cached() == 3  # a new mtime alone is no change (as on dockerd)
    os.chmod(ctx / "d" / "a", 0o600)
    assert steps_cached() == 1  # mode: COPY and RUN again
    (ctx / "d" / "b").write_text("")
    assert steps_cached() == 1  # a new file
    assert steps_cached("--build-arg", "V=2") == 2  # ARG (cached: its default) ... RUN sees V=2
    assert steps_cached("--build-arg", "V=2") == 3
    (ctx / ".dockerignore").write_text("d/a\n")
    assert steps_cached() == 1  # the ignore file changed what COPY sees


def test_system_df_counts_the_build_cache(dockyardd, ctx):
    ok(dockyardd, "builder", "prune", "-f")
    (ctx / "f").write_text("12345678")
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nCOPY f /f\n")
    built(build(dockyardd, ctx), dockyardd)
    line = next(x for x in ok(dockyardd, "system", "df").splitlines() if x.startswith("Build Cache"))
    assert line.split()[2:4] == ["2", "0"] and "8B" in line
    pruned = ok(dockyardd, "builder", "prune", "-f")
    assert pruned.count("\n") >= 3
    line = next(x for x in ok(dockyardd, "system", "df").splitlines() if x.startswith("Build Cache"))
    assert line.split()[2] == "0"


def test_symlink_cannot_pull_a_host_file_into_the_image(dockyardd, ctx):
    os.symlink("/etc/hostname", ctx / "evil")
    os.symlink("../../../../../../etc", ctx / "up")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY evil /x\n")
    r = build(dockyardd, ctx)
    assert r.returncode == 1 and "not found" in r.stderr.decode()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY up/hostname /x\n")
    r = build(dockyardd, ctx)
    assert r.returncode == 1 and "not found" in r.stderr.decode()
    # the links themselves are ordinary content: copied as they are
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /c/\nRUN readlink /c/up; readlink /c/evil\n")
    out = built(build(dockyardd, ctx), dockyardd)
    assert "../../../../../../etc\n/etc/hostname\n" in out


def test_dockyard_cli_does_not_send_ignored_files(dockyardd, ctx):
    (ctx / "big").mkdir()
    (ctx / "big" / "blob").write_bytes(os.urandom(1 << 20))
    (ctx / "big" / "keep.txt").write_text("kept\n")
    (ctx / "small.txt").write_text("s\n")
    (ctx / ".dockerignore").write_text("big\n!big/keep.txt\nDockerfile\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /c/\nRUN find /c | sort\n")
    r = dockyardd.dockyard("build", str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    sent = out.splitlines()[0]
    assert sent.startswith("Sending build context to Docker daemon") and "MB" not in sent
    listing = out.split("Running in", 1)[1]
    assert "/c/big/keep.txt" in listing and "/c/big/blob" not in listing and "/c/small.txt" in listing
    assert "/c/Dockerfile" not in listing  # sent for the daemon to read, then dropped as ignored


def test_git_context_over_http(dockyardd, tmp_path):
    import functools
    import http.server
    import subprocess
    import threading
    work = tmp_path / "work"
    work.mkdir()
    (work / "sub").mkdir()
    (work / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY msg /msg\nCMD cat /msg\n")
    (work / "sub" / "msg").write_text("from git\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "clone", "-q", "--bare", str(work), str(tmp_path / "srv" / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "srv" / "repo.git"), "update-server-info"], check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/repo.git#main:sub"
        tag = name()
        from urllib.parse import quote
        status, messages = _post_build(dockyardd, b"", f"remote={quote(url, safe='')}&t={tag}")
        assert status == 200 and any(f"Successfully tagged {tag}:latest" in m.get("stream", "") for m in messages), \
            messages
        assert ok(dockyardd, "run", "--rm", tag) == "from git\n"
        status, messages = _post_build(dockyardd, b"", f"remote={quote(url.replace('main:sub', 'nobranch'), safe='')}")
        assert status == 400 and "git checkout" in messages[0]["message"]
        ok(dockyardd, "rmi", tag)
    finally:
        server.shutdown()
        thread.join()
