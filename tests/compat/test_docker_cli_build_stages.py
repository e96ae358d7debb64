"""Build: --squash, independent stages in parallel, and platforms (FROM --platform, --platform),
through the real docker CLI 28 (classic builder, DOCKER_BUILDKIT=0) and docker-py."""

import io
import json
import tarfile
import time

import pytest

from tests.compat.helpers import building, until
from tests.compat.test_docker_cli_build import build, built, name, ok
from tests.integration.ports import free_port

CLOSED = "127.0.0.1:9"  # a registry address nobody listens on: a pull from it fails at once


def _saved(d, tag, tmp_path):
    """The image as `docker save` writes it: (config, {layer diff path: tar member names})."""
    path = tmp_path / f"{tag}.tar"
    ok(d, "save", "-o", str(path), tag)
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
        layers = {}
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(tar.extractfile(layer).read())) as inner:
                layers[layer] = [m.name.rstrip("/") for m in inner.getmembers()]
    return config, [layers[layer] for layer in manifest["Layers"]]


def test_squash_merges_the_final_stage_into_one_layer(dockyardd, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("copied\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS helper\n"
        "RUN echo from-helper > /h\n"
        "FROM busybox\n"
        "RUN echo added > /added && echo temp > /temp && mkdir -p /d/sub && echo x > /d/sub/x\n"
        "RUN rm /temp /etc/group && rm -rf /d/sub && echo y > /d/y \\\n"
        "    && rm -rf /var && mkdir -p /var/new && echo v > /var/new/v\n"
        "COPY f.txt /f.txt\n"
        "COPY --from=helper /h /h\n"
        "ENV A=1\n")
    tag = name()
    out = built(build(dockyardd, ctx, "--squash", "-t", tag), dockyardd)
    base_id = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    image_id = ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", tag).strip()
    assert f"Successfully built {image_id[7:19]}" in out
    base_config, base_layers = _saved(dockyardd, "busybox", tmp_path)
    config, layers = _saved(dockyardd, tag, tmp_path)
    assert len(layers) == len(base_layers) + 1
    assert config["rootfs"]["diff_ids"][:-1] == base_config["rootfs"]["diff_ids"]
    history = config["history"]
    kept = len(base_config["history"])
    assert history[:kept] == base_config["history"]
    steps = history[kept:-1]
    assert len(steps) == 5 and all(h.get("empty_layer") for h in steps)
    assert "echo added" in steps[0]["created_by"] and "ENV A=1" in steps[-1]["created_by"]
    unsquashed = history[-1]["comment"].split()[1]
    assert history[-1]["comment"] == f"merge {unsquashed} to {base_id}" and "created_by" not in history[-1]
    assert unsquashed != image_id and config["config"]["Env"][-1] == "A=1"
    merged = set(layers[-1])
    assert {"added", "d", "d/y", "f.txt", "h", "etc/.wh.group", "var/.wh..wh..opq", "var/new/v"} <= merged
    # added then deleted: neither the file nor a whiteout; a base file deleted: a whiteout
    assert not {"temp", ".wh.temp", "d/sub", "d/sub/x", "d/.wh.sub", "etc/group"} & merged
    listing = ok(dockyardd, "run", "--rm", tag, "sh", "-c",
                 "cat /added /d/y /f.txt /h; ls /temp /etc/group /d/sub 2>&1 | wc -l; ls /var")
    assert listing == "added\ny\ncopied\nfrom-helper\n3\nnew\n"  # /var: opaque, the base's entries hidden
    # the builder's own image stays (as on dockerd); the cache keeps working with --squash
    again = built(build(dockyardd, ctx, "--squash", "-t", tag), dockyardd)
    assert again.count(" ---> Using cache") == 6
    ok(dockyardd, "rmi", tag)


def test_squash_with_docker_py_and_from_scratch(dockyardd, tmp_path):
    import docker
    client = docker.DockerClient(base_url=dockyardd.host, version="auto", timeout=120)
    try:
        (tmp_path / "a").write_text("a\n")
        (tmp_path / "b").write_text("b\n")
        (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nCOPY b /b\nCMD [\"/a\"]\n")
        tag = name()
        image, logs = client.images.build(path=str(tmp_path), tag=tag, squash=True, rm=True)
        lines = list(logs)
        ids = [line["aux"]["ID"] for line in lines if "aux" in line]
        assert len(ids) == 2 and ids[-1] == image.id  # the builder's image, then the squashed one
        config, layers = _saved(dockyardd, tag, tmp_path)
        assert len(layers) == 1 and sorted(layers[0]) == ["a", "b"]
        assert config["history"][-1]["comment"] == f"create new from {ids[0]}"
        assert [bool(h.get("empty_layer")) for h in config["history"]] == [True, True, True, False]
        client.images.remove(tag)
    finally:
        client.close()


PARALLEL = (
    "FROM busybox AS a\n"
    "ARG PORT\n"
    # waits for stage b to connect: finishes only if b runs while a does (else times out and fails)
    "RUN timeout 60 nc -l -p $PORT > /got; cat /got; cat /proc/uptime > /start; sleep 1; cat /proc/uptime > /end\n"
    "FROM busybox AS b\n"
    "ARG PORT\n"
    "RUN i=0; until echo from-b | nc 127.0.0.1 $PORT; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.1; done; "
    "cat /proc/uptime > /start; sleep 1; cat /proc/uptime > /end\n"
    "FROM busybox AS unused\n"
    "RUN exit 7\n"
    "FROM busybox\n"
    "COPY --from=a /start /a.start\n"
    "COPY --from=a /end /a.end\n"
    "COPY --from=b /start /b.start\n"
    "COPY --from=b /end /b.end\n")


def test_independent_stages_run_in_parallel_and_show_in_order(dockyardd, tmp_path):
    (tmp_path / "Dockerfile").write_text(PARALLEL)
    tag = name()
    port = str(free_port())
    t0 = time.monotonic()
    out = built(build(dockyardd, tmp_path, "--network", "host", "--build-arg", f"PORT={port}", "-t", tag),
                dockyardd)
    elapsed = time.monotonic() - t0
    assert "from-b" in out and "exit 7" not in out
    # the stream is the sequential builder's: stage a whole, then stage b, numbered in order
    steps = [line for line in out.splitlines() if line.startswith("Step ")]
    assert [s.split()[1] for s in steps] == [f"{i}/11" for i in range(1, 12)]
    assert out.index("\nfrom-b\n") < out.index("Step 4/11 : FROM busybox AS b")
    times = ok(dockyardd, "run", "--rm", tag, "sh", "-c",
               "for f in a.start a.end b.start b.end; do cut -d' ' -f1 /$f; done").split()
    a_start, a_end, b_start, b_end = map(float, times)
    assert a_start < b_end and b_start < a_end  # both slept at the same time
    # two `sleep 1` took well under 2 s together (only the rendezvous separates their starts)
    assert max(a_end, b_end) - min(a_start, b_start) < 1.8, times
    assert elapsed < 60
    cached = built(build(dockyardd, tmp_path, "--network", "host", "--build-arg", f"PORT={port}", "-t", tag),
                   dockyardd)
    assert cached.count(" ---> Using cache") == 8 and "Running in" not in cached
    ok(dockyardd, "rmi", tag)


def test_a_failing_stage_stops_the_others(dockyardd, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS slow\n"
        "RUN echo slow-started; sleep 60\n"
        "FROM busybox AS bad\n"
        "RUN echo bad-ran; exit 3\n"
        "FROM busybox AS after\n"
        "COPY --from=bad /bin/true /t\n"
        "FROM busybox\n"
        "COPY --from=slow /bin/true /s\n"
        "COPY --from=after /t /t\n")
    t0 = time.monotonic()
    r = build(dockyardd, tmp_path)
    assert r.returncode == 3, r.stderr.decode()
    assert time.monotonic() - t0 < 40  # not after the slow stage's 60 s
    out = r.stdout.decode()
    assert "bad-ran" in out and "Step 5/9" not in out  # the stage after `bad` never starts
    assert "The command '/bin/sh -c echo bad-ran; exit 3' returned a non-zero code: 3" in r.stderr.decode()
    assert until(lambda: ok(dockyardd, "ps", "-aq") == "")


def test_a_client_that_leaves_cancels_every_stage(dockyardd):
    with building(dockyardd, b"FROM busybox AS one\nRUN echo $((40+2)); sleep 60\n"
                             b"FROM busybox AS two\nRUN echo $((50+3)); sleep 60\n"
                             b"FROM busybox\nCOPY --from=one /bin/true /1\nCOPY --from=two /bin/true /2\n"):
        until(lambda: len(ok(dockyardd, "ps", "-q").split()) >= 2, timeout=30)
        assert len(ok(dockyardd, "ps", "-q").split()) == 2  # both RUNs at once
    assert until(lambda: ok(dockyardd, "ps", "-aq") == "", timeout=15)


def test_platform_args_and_from_platform(dockyardd, tmp_path):
    (tmp_path / "f").write_text("f\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG TARGETARCH\n"
        "FROM --platform=$BUILDPLATFORM busybox:${TARGETARCH:+latest}\n"
        "ARG TARGETPLATFORM\n"
        "ARG BUILDARCH\n"
        "RUN echo \"t=$TARGETPLATFORM b=$BUILDARCH o=$TARGETOS.\"\n")
    out = built(build(dockyardd, tmp_path, "--no-cache"), dockyardd)
    assert "t=linux/amd64 b=amd64 o=.\n" in out  # TARGETOS was not redeclared in the stage
    built(build(dockyardd, tmp_path, "--platform", "linux/amd64"), dockyardd)

    # an arm64 image in the store: built FROM scratch for that platform
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    arm = f"{CLOSED}/t/arm{name()}:1"
    built(build(dockyardd, tmp_path, "--platform", "linux/arm64", "-t", arm), dockyardd)
    assert ok(dockyardd, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", arm) == "linux/arm64\n"
    (tmp_path / "Dockerfile").write_text(f"FROM --platform=linux/arm64 {arm}\nCOPY f /g\n")
    tag = name()
    built(build(dockyardd, tmp_path, "-t", tag), dockyardd)
    assert ok(dockyardd, "image", "inspect", "-f", "{{.Architecture}}", tag) == "arm64\n"
    built(build(dockyardd, tmp_path, "--platform", "linux/arm64"), dockyardd)

    # the host's platform is wanted, the store has only arm64 and the registry cannot help
    (tmp_path / "Dockerfile").write_text(f"FROM {arm}\nCOPY f /g\n")
    r = build(dockyardd, tmp_path)
    assert r.returncode == 1
    assert (f"image with reference {arm} was found but does not match the specified platform: "
            "wanted linux/amd64, actual: linux/arm64") in r.stderr.decode()
    bb = f"{CLOSED}/t/bb{name()}:1"
    ok(dockyardd, "tag", "busybox", bb)
    (tmp_path / "Dockerfile").write_text(f"FROM {bb}\nRUN true\n")
    r = build(dockyardd, tmp_path, "--platform", "linux/arm64")
    assert r.returncode == 1 and "wanted linux/arm64, actual: linux/amd64" in r.stderr.decode()
    r = build(dockyardd, tmp_path, "--platform", "linux/x/y/z")
    assert r.returncode == 1 and "unknown operating system or architecture" in r.stderr.decode()
    ok(dockyardd, "rmi", tag, arm, bb)


def test_platform_with_docker_py(dockyardd, tmp_path):
    import docker
    client = docker.DockerClient(base_url=dockyardd.host, version="auto", timeout=120)
    try:
        (tmp_path / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH\n")
        image, _ = client.images.build(path=str(tmp_path), platform="linux/arm64", rm=True)
        assert image.attrs["Architecture"] == "arm64" and image.labels == {"arch": "arm64"}
        with pytest.raises(docker.errors.APIError, match="unknown operating system or architecture"):
            client.images.build(path=str(tmp_path), platform="linux/a/b/c", rm=True)
    finally:
        client.close()


def test_from_platform_pulls_that_platform(dockyardd, tmp_path):
    from tests.integration import distribution_registry as dr
    if not dr.available():
        pytest.skip("docker-registry is not installed")
    with dr.running() as registry:
        (tmp_path / "f").write_text("f\n")
        (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
        arm = f"{registry.host}/build/arm:1"
        built(build(dockyardd, tmp_path, "--platform", "linux/arm64", "-t", arm), dockyardd)
        ok(dockyardd, "push", arm)
        ok(dockyardd, "rmi", arm)
        (tmp_path / "Dockerfile").write_text(f"FROM --platform=linux/arm64 {arm}\nCOPY f /g\n")
        tag = name()
        out = built(build(dockyardd, tmp_path, "-t", tag), dockyardd)
        assert "Pulling from build/arm" in out
        assert ok(dockyardd, "image", "inspect", "-f", "{{.Architecture}}", tag) == "arm64\n"
        # the host's platform: the registry has only arm64, and the local copy is arm64 too
        (tmp_path / "Dockerfile").write_text(f"FROM {arm}\nCOPY f /g\n")
        r = build(dockyardd, tmp_path)
        assert r.returncode == 1
        assert "does not match the specified platform: wanted linux/amd64, actual: linux/arm64" in r.stderr.decode()
        ok(dockyardd, "rmi", tag, arm)
