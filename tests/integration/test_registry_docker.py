"""The hub with real clients: the docker CLI through dockyardd (push, pull, login, search),
our own CLI, and dockyardd's registry client; digests survive the round trip."""

from __future__ import annotations


import pytest

from tests.integration import registry_hub as rh


@pytest.fixture
def hub_with_accounts():
    import bcrypt

    root = rh.tempfile.mkdtemp(prefix="dyhub-")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    (rh.Path(root) / "htpasswd").write_text(f"alice:{hashed}\n")
    with rh.running("--htpasswd", f"{root}/htpasswd", root=rh.Path(root)) as h:
        yield h


def test_docker_push_pull_round_trip(dockyardd, hub):
    d = dockyardd
    name = f"{hub.host}/x/busybox:1"
    image_id = d.docker("image", "inspect", "-f", "{{.Id}}", "busybox", check=True).stdout.decode().strip()
    d.docker("tag", "busybox", name, check=True)
    try:
        push = d.docker("push", name, timeout=120)
        assert push.returncode == 0, push.stderr.decode() + hub.log()
        pushed_digest = push.stdout.decode().strip().splitlines()[-1].split("digest: ")[1].split()[0]
        assert d.docker("rmi", name).returncode == 0
        pull = d.docker("pull", name, timeout=120)
        assert pull.returncode == 0, pull.stderr.decode() + hub.log()
        assert f"Digest: {pushed_digest}" in pull.stdout.decode()
        assert d.docker("image", "inspect", "-f", "{{.Id}}", name, check=True).stdout.decode().strip() == image_id
        # the hub holds what the daemon pushed, under the digest it reported
        reply = hub.request("GET", "/v2/x/busybox/manifests/1", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
        assert reply.status == 200 and reply.headers["docker-content-digest"] == pushed_digest
        assert hub.request("GET", "/v2/_catalog").json() == {"repositories": ["x/busybox"]}
        # a second push finds every layer already there
        again = d.docker("push", name, timeout=120)
        assert again.returncode == 0 and "Layer already exists" in again.stdout.decode()
        # our own CLI against the same hub, and a cross-repository mount
        other = f"{hub.host}/y/box:2"
        d.dockyard("tag", "busybox", other)
        ours = d.dockyard("push", other, timeout=120)
        assert ours.returncode == 0, ours.stderr.decode() + hub.log()
        assert hub.request("GET", "/v2/y/box/tags/list").json() == {"name": "y/box", "tags": ["2"]}
        d.dockyard("rmi", other)
        # pull counts and docker search
        assert hub.request("GET", "/api/repositories/x/busybox").json()["pull_count"] >= 1
        search = d.docker("search", "--format", "{{.Name}}", f"{hub.host}/busy")
        assert search.returncode == 0, search.stderr.decode()
        assert "x/busybox" in search.stdout.decode()
    finally:
        d.docker("rmi", name)


def test_docker_login_and_scopes(dockyardd, hub_with_accounts):
    import base64

    d, hub = dockyardd, hub_with_accounts
    bad = d.docker("login", "-u", "alice", "--password-stdin", hub.host, input=b"wrong")
    assert bad.returncode != 0
    good = d.docker("login", "-u", "alice", "--password-stdin", hub.host, input=b"s3cret")
    assert good.returncode == 0, good.stderr.decode() + hub.log()
    own, hidden, foreign = (f"{hub.host}/alice/busybox:1", f"{hub.host}/alice/hidden:1",
                            f"{hub.host}/bob/busybox:1")
    for name in (own, hidden, foreign):
        d.docker("tag", "busybox", name, check=True)
    try:
        for name in (own, hidden):
            push = d.docker("push", name, timeout=120)
            assert push.returncode == 0, push.stderr.decode() + hub.log()
        denied = d.docker("push", foreign, timeout=120)
        assert denied.returncode != 0
        assert "denied" in denied.stderr.decode()
        # the owner marks one repository private
        marked = hub.request("PATCH", "/api/repositories/alice/hidden", b'{"private": true}', {
            "Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()})
        assert marked.status == 200 and marked.json()["private"] is True
        d.docker("logout", hub.host)
        d.docker("rmi", own)
        d.docker("rmi", hidden)
        # anonymous: the public repository pulls, the private one is refused
        pull = d.docker("pull", own, timeout=120)
        assert pull.returncode == 0, pull.stderr.decode() + hub.log()
        refused = d.docker("pull", hidden, timeout=120)
        assert refused.returncode != 0 and "denied" in refused.stderr.decode()
        # signed in again, through our own CLI this time
        login = d.dockyard("login", "-u", "alice", "--password-stdin", hub.host, input=b"s3cret")
        assert login.returncode == 0, login.stderr.decode()
        again = d.dockyard("pull", hidden, timeout=120)
        assert again.returncode == 0, again.stderr.decode() + hub.log()
    finally:
        d.docker("logout", hub.host)
        for name in (own, hidden, foreign):
            d.docker("rmi", name)
