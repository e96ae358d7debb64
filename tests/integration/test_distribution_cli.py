"""Our CLI's registry commands against dockyardd and real registries, beside the docker CLI:
push, pull (-a, --platform, -q), login/logout (config.json), search, manifest inspect."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration import distribution_registry as dr
from tests.integration.distribution_fake import BUSYBOX_SEARCH, FakeRegistry, docker_archive, make_image, make_index

pytestmark = pytest.mark.skipif(not dr.available(), reason="docker-registry is not installed")


def ours(d, *args, input=None):
    r = d.dockyard(*args, input=input, timeout=120)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def theirs(d, *args, input=None):
    r = d.docker(*args, input=input, timeout=120)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_push_pull_quiet_and_all_tags(dockyardd, registry):
    d = dockyardd
    name = f"{registry.host}/ours/busybox"
    for tag in ("a", "b"):
        assert ours(d, "tag", "busybox", f"{name}:{tag}")[0] == 0
    code, out, err = ours(d, "push", f"{name}:a")
    assert code == 0, err
    assert out.splitlines()[0] == f"The push refers to repository [{name}]"
    assert out.splitlines()[-1].startswith("a: digest: sha256:")
    code, out, err = ours(d, "push", "-q", f"{name}:b")
    assert (code, out) == (0, f"{name}:b\n"), err
    for tag in ("a", "b"):
        ours(d, "rmi", f"{name}:{tag}")
    code, out, err = ours(d, "pull", "-a", name)
    assert code == 0, err
    assert f"Status: Downloaded newer image for {name}" in out or f"Status: Image is up to date for {name}" in out
    assert out.splitlines()[-1] == name
    code, out, _ = ours(d, "pull", "-q", f"{name}:a")
    assert (code, out) == (0, f"{name}:a\n")
    for tag in ("a", "b"):
        ours(d, "rmi", f"{name}:{tag}")


def test_pull_platform(dockyardd):
    d = dockyardd
    with FakeRegistry() as fake:
        amd = make_image([{"arch": b"amd64"}], arch="amd64")
        arm = make_image([{"arch": b"arm64"}], arch="arm64")
        for image in (amd, arm):
            fake.add("multi", image.digest, image)
        media_type, index = make_index([(amd, {"os": "linux", "architecture": "amd64"}),
                                        (arm, {"os": "linux", "architecture": "arm64"})])
        fake.add_index("multi", "latest", media_type, index)
        code, out, err = ours(d, "pull", "--platform", "linux/arm64", f"{fake.host}/multi")
        assert code == 0, err
        code, out, _ = ours(d, "image", "inspect", "-f", "{{.Architecture}}", f"{fake.host}/multi")
        assert out.strip() == "arm64"
        code, out, err = ours(d, "manifest", "inspect", f"{fake.host}/multi")
        assert code == 0, err
        assert [m["platform"]["architecture"] for m in json.loads(out)["manifests"]] == ["amd64", "arm64"]
        ours(d, "rmi", f"{fake.host}/multi")


def test_login_logout_and_config_file(dockyardd):
    d = dockyardd
    registry = dr.start(htpasswd=("frank", "pw1"))
    config = d.root / "docker-config" / "config.json"
    try:
        code, out, err = ours(d, "login", "-u", "frank", "--password-stdin", registry.host, input=b"bad\n")
        assert code == 1 and "401 Unauthorized" in err
        code, out, err = ours(d, "login", "-u", "frank", "--password-stdin", registry.host, input=b"pw1\n")
        assert (code, out) == (0, "Login Succeeded\n"), err
        assert "WARNING! Your credentials are stored unencrypted" in err
        assert json.loads(config.read_text())["auths"][registry.host]["auth"]
        name = f"{registry.host}/frank/app"
        ours(d, "tag", "busybox", f"{name}:1")
        code, out, err = ours(d, "push", f"{name}:1")
        assert code == 0, err
        # the docker CLI reads what we stored, and we read what it stores
        assert theirs(d, "pull", f"{name}:1")[0] == 0
        code, out, _ = ours(d, "logout", registry.host)
        assert (code, out) == (0, f"Removing login credentials for {registry.host}\n")
        assert ours(d, "logout", registry.host)[1] == f"Removing login credentials for {registry.host}\n"  # as docker 28
        code, _, err = ours(d, "pull", f"{name}:1")
        assert code == 1 and "no basic auth credentials" in err
        assert theirs(d, "login", "-u", "frank", "--password-stdin", registry.host, input=b"pw1\n")[0] == 0
        assert ours(d, "pull", f"{name}:1")[0] == 0
        ours(d, "rmi", f"{name}:1")
        code, _, err = ours(d, "logout", registry.host)
        code, _, err = ours(d, "login", registry.host)  # nothing stored, stdin not a terminal
        assert code == 1 and "Cannot perform an interactive login from a non TTY device" in err
    finally:
        dr.stop(registry)


def test_search_matches_docker(dockyardd):
    d = dockyardd
    with FakeRegistry() as fake:
        fake.search_results = list(BUSYBOX_SEARCH)
        for args in ([], ["--no-trunc"], ["--limit", "1"], ["--filter", "is-official=true"],
                     ["--format", "{{.Name}} {{.StarCount}} {{.IsOfficial}}"], ["--format", "json"]):
            mine = ours(d, "search", *args, f"{fake.host}/busybox")
            docker = theirs(d, "search", *args, f"{fake.host}/busybox")
            assert mine == docker, (args, mine, docker)


def test_manifest_inspect_of_a_pushed_image(dockyardd, registry):
    d = dockyardd
    image = make_image([{"m": os.urandom(100)}])
    name = f"{registry.host}/ours/manifest"
    assert ours(d, "load", input=docker_archive(image, f"{name}:v1"))[0] == 0
    assert ours(d, "push", f"{name}:v1")[0] == 0
    code, out, err = ours(d, "manifest", "inspect", f"{name}:v1")
    assert code == 0, err
    docker = theirs(d, "manifest", "inspect", "--insecure", f"{name}:v1")
    assert json.loads(out) == json.loads(docker[1])
    code, _, err = ours(d, "manifest", "inspect", f"{name}:nope")
    assert code == 1 and f"no such manifest: {name}:nope" in err
    ours(d, "rmi", "-f", image.id)
