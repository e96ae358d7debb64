"""Layers made without a tar (a build's COPY / WORKDIR steps move their snapshot's upper dir, RUN
and docker commit copy it): `docker save` regenerates each diff, which must hash to the diff ID
the config names, and the saved image loads back into another daemon as the same image."""

import hashlib
import json
import subprocess
import tarfile
import uuid

from tests.daemon_harness import DOCKER


def _ok(d, *args, input=None, env=None, timeout=120) -> bytes:
    r = subprocess.run([DOCKER, *args], env={**d.env, **(env or {})}, input=input, capture_output=True,
                       timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()}"
    return r.stdout


def test_saved_layers_of_a_build_and_a_commit_match_their_diff_ids(dockyardd, fresh_daemon, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "dir/sub").mkdir(parents=True)
    (ctx / "dir/sub/data.bin").write_bytes(bytes(range(256)) * 4096)
    (ctx / "dir/top.txt").write_text("top\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "WORKDIR /work/here\n"
        "COPY dir /copied/\n"
        "RUN rm -rf /etc/passwd /copied/sub && mkdir -p /copied/sub && echo new > /copied/sub/new && "
        "ln /copied/top.txt /copied/link\n")
    tag = "bl" + uuid.uuid4().hex[:8]
    _ok(dockyardd, "build", "-t", tag, str(ctx), env={"DOCKER_BUILDKIT": "0"})
    container = _ok(dockyardd, "create", tag, "true").decode().strip()
    committed = tag + "-commit"
    try:
        _ok(dockyardd, "commit", container, committed)
    finally:
        _ok(dockyardd, "rm", container)

    archive = tmp_path / "saved.tar"
    _ok(dockyardd, "save", "-o", str(archive), tag, committed)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert len(manifest) == 2
        for entry in manifest:
            config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
            diff_ids = config["rootfs"]["diff_ids"]
            assert len(diff_ids) == len(entry["Layers"]) >= 4  # busybox, WORKDIR, COPY, RUN (+ commit)
            for path, diff_id in zip(entry["Layers"], diff_ids):
                assert "sha256:" + hashlib.sha256(tar.extractfile(path).read()).hexdigest() == diff_id  # type: ignore[union-attr]

    image_ids = [_ok(dockyardd, "image", "inspect", "-f", "{{.Id}}", ref).decode().strip() for ref in (tag, committed)]
    _ok(fresh_daemon, "load", "-i", str(archive))
    assert [_ok(fresh_daemon, "image", "inspect", "-f", "{{.Id}}", ref).decode().strip()
            for ref in (tag, committed)] == image_ids
    out = _ok(fresh_daemon, "run", "--rm", tag, "sh", "-c",
              "pwd; ls /copied; ls /copied/sub; cat /copied/link; test -e /etc/passwd || echo gone")
    assert out.decode().split() == ["/work/here", "link", "sub", "top.txt", "new", "top", "gone"]
    _ok(dockyardd, "rmi", tag, committed)
