"""The real docker CLI 28 through dockyardd to registries: push, pull (progress, -a, digest,
--platform), login/logout with basic auth, search errors, and a pull killed halfway."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests import daemon_harness
from tests.integration import distribution_registry as dr
from tests.integration.distribution_fake import BUSYBOX_SEARCH, FakeRegistry, docker_archive, make_image
from tests.integration.ports import free_port

pytestmark = pytest.mark.skipif(not dr.available(), reason="docker-registry is not installed")


def ok(d, *args, input=None, timeout=120):
    r = d.docker(*args, input=input, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout.decode()


def fail(d, *args, timeout=120):
    r = d.docker(*args, timeout=timeout)
    assert r.returncode != 0, f"docker {' '.join(args)} succeeded:\n{r.stdout.decode()}"
    return r.stderr.decode()


def test_push_rmi_pull_round_trip(dockyardd, registry):
    d = dockyardd
    image_id = ok(d, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    name = f"{registry.host}/cli/busybox"
    ok(d, "tag", "busybox", f"{name}:1")
    out = ok(d, "push", f"{name}:1")
    assert f"The push refers to repository [{name}]" in out
    digest_line = out.strip().splitlines()[-1]
    assert digest_line.startswith("1: digest: sha256:") and " size: " in digest_line
    digest = digest_line.split()[2]
    assert ": Layer already exists" in ok(d, "push", f"{name}:1")
    # the repository's last tag goes with its digest reference (moby); busybox keeps the image
    out = ok(d, "rmi", f"{name}:1")
    assert f"Untagged: {name}@{digest}" in out
    out = ok(d, "pull", f"{name}:1")
    assert "1: Pulling from cli/busybox" in out
    assert f"Digest: {digest}" in out and f"Status: Image is up to date for {name}:1" in out or \
        f"Status: Downloaded newer image for {name}:1" in out
    assert ok(d, "image", "inspect", "-f", "{{.Id}}", f"{name}:1").strip() == image_id
    digests = json.loads(ok(d, "image", "inspect", "-f", "{{json .RepoDigests}}", f"{name}:1"))
    assert f"{name}@{digest}" in digests
    # pulled fresh, into a daemon of its own, by digest, quietly
    assert ok(d, "pull", "-q", f"{name}@{digest}").strip() == f"{name}@{digest}"
    ok(d, "rmi", f"{name}:1")


def test_pull_progress_and_errors(dockyardd, registry):
    d = dockyardd
    image = make_image([{f"f{i}": os.urandom(50_000)} for i in range(3)])
    name = f"{registry.host}/cli/three"
    ok(d, "load", input=docker_archive(image, f"{name}:v1"))
    ok(d, "push", f"{name}:v1")
    ok(d, "rmi", "-f", image.id[7:19])
    out = ok(d, "pull", f"{name}:v1")
    assert out.count("Pull complete") == 3
    err = fail(d, "pull", f"{registry.host}/cli/nothere")
    assert f"Error response from daemon: manifest for {registry.host}/cli/nothere:latest not found: manifest unknown" in err
    port = free_port()
    err = fail(d, "pull", f"127.0.0.1:{port}/cli/three")
    # dockerd's wording (Go's net package), not Python's "[Errno 111] Connection refused"
    assert f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused' in err
    ok(d, "rmi", image.id[7:19])


def test_pull_all_tags(dockyardd, registry):
    d = dockyardd
    name = f"{registry.host}/cli/tags"
    for tag in ("a", "b"):
        ok(d, "tag", "busybox", f"{name}:{tag}")
        ok(d, "push", "-q", f"{name}:{tag}")
        ok(d, "rmi", f"{name}:{tag}")
    out = ok(d, "pull", "-a", name)
    assert f"Status: Downloaded newer image for {name}" in out
    rows = ok(d, "images", "--format", "{{.Repository}} {{.Tag}}").splitlines()
    assert sorted(row.split()[1] for row in rows if row.split()[0] == name) == ["a", "b"]
    ok(d, "rmi", f"{name}:a", f"{name}:b")


def test_login_push_pull_logout_basic_auth(dockyardd):
    d = dockyardd
    with dr.running(htpasswd=("carol", "pa55word")) as registry:
        name = f"{registry.host}/carol/app"
        r = d.docker("login", "-u", "carol", "--password-stdin", registry.host, input=b"wrong\n")
        assert r.returncode != 0 and b"401 Unauthorized" in r.stderr, r.stderr
        ok(d, "tag", "busybox", f"{name}:1")
        err = fail(d, "push", f"{name}:1")
        assert "no basic auth credentials" in err
        out = ok(d, "login", "-u", "carol", "--password-stdin", registry.host, input=b"pa55word\n")
        assert "Login Succeeded" in out
        config = json.loads((d.root / "docker-config" / "config.json").read_text())
        assert registry.host in config["auths"]
        ok(d, "push", f"{name}:1")
        ok(d, "rmi", f"{name}:1")
        ok(d, "pull", f"{name}:1")
        ok(d, "logout", registry.host)
        ok(d, "rmi", f"{name}:1")
        err = fail(d, "pull", f"{name}:1")
        assert "no basic auth credentials" in err


def test_search_against_a_registry_without_search(dockyardd, registry):
    err = fail(dockyardd, "search", f"{registry.host}/busybox")
    assert "Error response from daemon: Unexpected status code 404" in err


def test_pull_killed_halfway_resumes(fresh_daemon):
    d = fresh_daemon
    with FakeRegistry() as fake:
        image = make_image([{f"f{i}": os.urandom(200_000)} for i in range(4)])
        fake.add("slow/app", "v1", image)
        from tests.integration.distribution_fake import digest_of
        layers = [digest_of(b) for _, b in image.layers]
        fake.stall_seconds = 60
        fake.faults[layers[3]] = ["stall"] * 10
        proc = daemon_harness.subprocess.Popen(
            [daemon_harness.DOCKER, "pull", f"{fake.host}/slow/app:v1"], env=d.env,
            stdout=daemon_harness.subprocess.PIPE, stderr=daemon_harness.subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(fake.blob_gets.get(x) for x in layers):
            time.sleep(0.05)
        time.sleep(0.5)  # the first three are committed by now
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        proc.wait(timeout=30)
        daemon_harness.start(d)
        assert ok(d, "images", "-q", "--filter", "dangling=false") .strip() == ""
        fake.faults.clear()
        before = dict(fake.blob_gets)
        out = ok(d, "pull", f"{fake.host}/slow/app:v1")
        assert "Downloaded newer image" in out
        assert [fake.blob_gets[x] - before[x] for x in layers] == [0, 0, 0, 1]
        assert ok(d, "image", "inspect", "-f", "{{.Id}}", f"{fake.host}/slow/app:v1").strip() == image.id


def test_import_from_url(dockyardd):
    from tests.integration.distribution_fake import layer_tar
    d = dockyardd
    with FakeRegistry() as fake:
        fake.files["/rootfs.tar"] = layer_tar({"hello.txt": b"imported over http\n"})
        out = ok(d, "import", f"http://{fake.host}/rootfs.tar", "fromurl:1").splitlines()
        assert out[0] == f"Downloading from http://{fake.host}/rootfs.tar"
        assert out[-1].startswith("sha256:")
        assert ok(d, "image", "inspect", "-f", "{{.Id}}", "fromurl:1").strip() == out[-1]
        err = fail(d, "import", f"http://{fake.host}/missing.tar", "fromurl:2")
        assert f"failed to GET http://{fake.host}/missing.tar with status 404" in err
        ok(d, "rmi", "fromurl:1")


def test_search_through_the_daemon(dockyardd):
    with FakeRegistry() as fake:
        fake.search_results = list(BUSYBOX_SEARCH)
        out = ok(dockyardd, "search", f"{fake.host}/busybox").splitlines()
        assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
        assert out[1].split()[:1] == ["busybox"] and out[1].rstrip().endswith("[OK]")
        assert "…" in out[2]
        assert fake.search_queries[-1] == "busybox"
        out = ok(dockyardd, "search", "--filter", "is-official=true", "--format", "{{.Name}}:{{.StarCount}}",
                 f"{fake.host}/busybox")
        assert out == "busybox:3000\n"
        out = ok(dockyardd, "search", "--limit", "1", "--format", "{{.Name}}", f"{fake.host}/busybox")
        assert out == "busybox\n"


def test_registry_endpoints_fit_the_spec(dockyardd, registry):
    from tests.compat.openapi import validate
    from tests.compat.test_api_errors import call

    d = dockyardd
    name = f"{registry.host}/spec/busybox"
    ok(d, "tag", "busybox", f"{name}:1")
    ok(d, "push", f"{name}:1")
    status, _, body = call(d, "GET", f"/v1.50/distribution/{name}:1/json")
    assert status == 200, body
    validate("get", "/distribution/{name}/json", 200, json.loads(body))
    status, _, body = call(d, "POST", "/v1.50/auth", json.dumps({"serveraddress": registry.host}).encode(),
                           {"Content-Type": "application/json"})
    assert status == 200, body
    validate("post", "/auth", 200, json.loads(body))
    with FakeRegistry() as fake:
        fake.search_results = [{"name": "busybox", "description": "d", "star_count": 1, "is_official": True,
                                "is_automated": False}]
        status, _, body = call(d, "GET", f"/v1.50/images/search?term={fake.host}/busybox")
        assert status == 200, body
        validate("get", "/images/search", 200, json.loads(body))
    ok(d, "rmi", f"{name}:1")


def test_run_pulls_a_missing_image_and_runs_it(dockyardd, registry):
    d = dockyardd
    name = f"{registry.host}/cli/runme"
    ok(d, "tag", "busybox", f"{name}:1")
    ok(d, "push", f"{name}:1")
    ok(d, "rmi", f"{name}:1")
    # the busybox layers are still here (busybox:latest); a fresh image name is pulled by run
    r = d.docker("run", "--rm", f"{name}:1", "echo", "pulled and ran")
    assert r.returncode == 0, r.stderr.decode() + d.log()
    assert r.stdout.decode() == "pulled and ran\n"
    assert "Unable to find image" in r.stderr.decode()
    r = d.docker("run", "--rm", "--pull", "never", f"{registry.host}/cli/absent:1", "true")
    assert r.returncode != 0
    ok(d, "rmi", f"{name}:1")


def test_image_pulled_into_an_empty_store_runs(fresh_daemon, registry):
    d = fresh_daemon
    daemon_harness.load_busybox(d)
    image_id = ok(d, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    name = f"{registry.host}/cli/fresh"
    ok(d, "tag", "busybox", f"{name}:1")
    ok(d, "push", f"{name}:1")
    ok(d, "rmi", "-f", image_id)
    assert ok(d, "images", "-q") == ""
    out = ok(d, "pull", f"{name}:1")
    assert "Pull complete" in out
    assert ok(d, "run", "--rm", f"{name}:1", "sh", "-c", "echo $((6*7))") == "42\n"
    assert ok(d, "image", "inspect", "-f", "{{.Id}}", f"{name}:1").strip() == image_id


def test_docker_cli_with_our_hub(dockyardd, tmp_path):
    import subprocess as sp

    from tests.integration import registry_hub as rh

    d = dockyardd
    sp.run(["htpasswd", "-Bbc", str(tmp_path / "htpasswd"), "hanna", "hubpw"], check=True, capture_output=True)
    with rh.running("--htpasswd", str(tmp_path / "htpasswd"), root=tmp_path, keep=True) as hub:
        name = f"{hub.host}/hanna/busybox"
        ok(d, "tag", "busybox", f"{name}:1")
        assert "denied: requested access to the resource is denied" in fail(d, "push", f"{name}:1")
        assert "Login Succeeded" in ok(d, "login", "-u", "hanna", "--password-stdin", hub.host, input=b"hubpw\n")
        out = ok(d, "push", f"{name}:1")
        assert out.strip().splitlines()[-1].startswith("1: digest: sha256:")
        ok(d, "rmi", f"{name}:1")
        ok(d, "logout", hub.host)
        assert "Status: " in ok(d, "pull", f"{name}:1")  # public: anonymous pull
        assert "hanna/busybox" in ok(d, "search", "--format", "{{.Name}}", f"{hub.host}/busybox")
        ok(d, "rmi", f"{name}:1")


def test_rmi_of_the_last_tag_drops_its_digest_references(dockyardd):
    """moby: untagging a repository's last tag removes that repository's digest references,
    so a pulled image does not survive as <none>@sha256."""
    with dr.running() as registry:
        repo = f"{registry.host}/rmi/busybox"
        assert dockyardd.docker("tag", "busybox", f"{repo}:1").returncode == 0
        assert dockyardd.docker("push", f"{repo}:1").returncode == 0
        assert dockyardd.docker("rmi", f"{repo}:1").returncode == 0
        assert dockyardd.docker("pull", f"{repo}:1").returncode == 0
        out = dockyardd.docker("rmi", f"{repo}:1").stdout.decode()
        assert f"Untagged: {repo}:1" in out and f"Untagged: {repo}@sha256:" in out
        digests = dockyardd.docker("images", "--digests", "--format", "{{.Repository}}", "-a").stdout.decode()
        assert repo not in digests
