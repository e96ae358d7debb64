"""docker cp (HEAD/GET/PUT /containers/{id}/archive) through the real docker CLI and docker-py,
including the symlink-escape cases of CVE-2018-15664 / CVE-2019-14271: a host file must never
be read or written through a symlink in the container."""

import io
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest


def ok(d, *args, input=None, timeout=60):
    r = d.docker(*args, input=input, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}\n{d.log()[-3000:]}"
    return r.stdout.decode()


@pytest.fixture
def host_dir():
    path = Path(tempfile.mkdtemp(prefix="dockyard-cp-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def box(dockyardd):
    """A running busybox with a few files, symlinks to the host's places, and a volume."""
    name = f"cp-{uuid.uuid4().hex[:8]}"
    ok(dockyardd, "run", "-d", "--name", name, "-v", f"{name}-vol:/vol", "busybox", "sh", "-c",
       "mkdir -p /data/sub && echo hello > /data/a.txt && echo deep > /data/sub/b.txt"
       " && echo inside > /etc/owned && ln -sfn / /rootlink && ln -sfn /etc /etclink"
       " && ln -sfn /data/a.txt /alink && echo vol > /vol/v.txt && touch /ready && sleep 300")
    for _ in range(100):
        if dockyardd.docker("exec", name, "test", "-e", "/ready").returncode == 0:
            break
    try:
        yield name
    finally:
        dockyardd.docker("rm", "-f", "-v", name)
        dockyardd.docker("volume", "rm", f"{name}-vol")


def test_cp_file_and_dir_out_of_running_and_stopped(dockyardd, box, host_dir):
    ok(dockyardd, "cp", f"{box}:/data/a.txt", str(host_dir / "a.txt"))
    assert (host_dir / "a.txt").read_text() == "hello\n"
    ok(dockyardd, "cp", f"{box}:/data", str(host_dir / "d"))
    assert (host_dir / "d" / "sub" / "b.txt").read_text() == "deep\n"
    ok(dockyardd, "cp", f"{box}:/vol/v.txt", str(host_dir))  # from inside a volume
    assert (host_dir / "v.txt").read_text() == "vol\n"

    ok(dockyardd, "stop", "-t", "0", box)
    ok(dockyardd, "cp", f"{box}:/data/.", str(host_dir / "stopped"))
    assert (host_dir / "stopped" / "a.txt").read_text() == "hello\n"
    ok(dockyardd, "cp", f"{box}:/vol/v.txt", str(host_dir / "v2.txt"))
    assert (host_dir / "v2.txt").read_text() == "vol\n"


def test_cp_into_running_and_stopped(dockyardd, box, host_dir):
    (host_dir / "f.txt").write_text("from host\n")
    (host_dir / "tree" / "in").mkdir(parents=True)
    (host_dir / "tree" / "in" / "x").write_text("x\n")
    ok(dockyardd, "cp", str(host_dir / "f.txt"), f"{box}:/data/")  # file into a dir
    ok(dockyardd, "cp", str(host_dir / "f.txt"), f"{box}:/data/renamed.txt")  # a new name
    ok(dockyardd, "cp", str(host_dir / "tree"), f"{box}:/data/")  # dir into a dir
    ok(dockyardd, "cp", str(host_dir / "tree"), f"{box}:/newtree")  # dir to a new name
    ok(dockyardd, "cp", str(host_dir / "f.txt"), f"{box}:/vol/")  # into the volume
    out = ok(dockyardd, "exec", box, "cat", "/data/f.txt", "/data/renamed.txt", "/data/tree/in/x",
             "/newtree/in/x", "/vol/f.txt")
    assert out == "from host\nfrom host\nx\nx\nfrom host\n"

    ok(dockyardd, "stop", "-t", "0", box)
    (host_dir / "g.txt").write_text("while stopped\n")
    ok(dockyardd, "cp", str(host_dir / "g.txt"), f"{box}:/data/")
    ok(dockyardd, "cp", str(host_dir / "g.txt"), f"{box}:/vol/")
    ok(dockyardd, "start", box)
    assert ok(dockyardd, "exec", box, "cat", "/data/g.txt", "/vol/g.txt") == "while stopped\n" * 2


def test_cp_archive_mode_keeps_ids(dockyardd, box, host_dir):
    src = host_dir / "owned.txt"
    src.write_text("ids\n")
    os.chown(src, 1234, 5678)
    ok(dockyardd, "cp", "-a", str(src), f"{box}:/data/")
    assert ok(dockyardd, "exec", box, "stat", "-c", "%u:%g", "/data/owned.txt").strip() == "1234:5678"


def test_cp_stdin_tar_and_stdout_tar(dockyardd, box):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("piped.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"piped\n"))
    ok(dockyardd, "cp", "-", f"{box}:/data", input=buf.getvalue())
    assert ok(dockyardd, "exec", box, "cat", "/data/piped.txt") == "piped\n"

    r = dockyardd.docker("cp", f"{box}:/data/sub", "-")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        names = sorted(m.name for m in tar)
        assert names == ["sub", "sub/b.txt"]
        assert tar.extractfile("sub/b.txt").read() == b"deep\n"


def test_cp_symlinks_follow_dockers_rules(dockyardd, box, host_dir):
    r = dockyardd.docker("cp", f"{box}:/alink", "-")  # the link itself
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        (member,) = tar.getmembers()
        assert member.issym() and member.name == "alink" and member.linkname == "/data/a.txt"
    ok(dockyardd, "cp", "-L", f"{box}:/alink", str(host_dir / "followed"))  # -L: its target
    assert (host_dir / "followed").read_text() == "hello\n"


def test_cp_missing_paths(dockyardd, box, host_dir):
    r = dockyardd.docker("cp", f"{box}:/no/such", str(host_dir))
    assert r.returncode == 1
    assert f"Could not find the file /no/such in container {box}" in r.stderr.decode()
    (host_dir / "f").write_text("x")
    r = dockyardd.docker("cp", str(host_dir / "f"), f"{box}:/no/such/dir/")
    assert r.returncode == 1
    assert b"Could not find the file /no/such/dir" in r.stderr or b"no such directory" in r.stderr
    r = dockyardd.docker("cp", str(host_dir / "nope"), f"{box}:/data")
    assert r.returncode == 1 and b"no such file or directory" in r.stderr


def test_cve_symlinks_never_reach_the_host(dockyardd, box, host_dir):
    """A symlink to / or /etc in the container must resolve inside the container, both ways."""
    sentinel = host_dir / "sentinel"
    sentinel.write_text("host secret\n")
    ok(dockyardd, "exec", box, "ln", "-s", str(host_dir), "/hostdir")  # the host's temp dir, by name
    ok(dockyardd, "exec", box, "sh", "-c", f"mkdir -p {host_dir} && echo container > {host_dir}/sentinel")

    # out: through /rootlink and /etclink the daemon reads the container's files
    r = dockyardd.docker("cp", f"{box}:/etclink/owned", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert tar.extractfile("owned").read() == b"inside\n"
    ok(dockyardd, "cp", f"{box}:/rootlink{host_dir}/sentinel", str(host_dir / "got"))
    assert (host_dir / "got").read_text() == "container\n"
    ok(dockyardd, "cp", f"{box}:/hostdir/sentinel", str(host_dir / "got2"))
    assert (host_dir / "got2").read_text() == "container\n"

    # in: writes through the links land in the container, never on the host
    (host_dir / "payload").mkdir()
    (host_dir / "payload" / "sentinel").write_text("overwritten!\n")
    ok(dockyardd, "cp", str(host_dir / "payload" / "sentinel"), f"{box}:/hostdir/")
    ok(dockyardd, "cp", str(host_dir / "payload" / "sentinel"), f"{box}:/rootlink{host_dir}/")
    assert sentinel.read_text() == "host secret\n"
    assert ok(dockyardd, "exec", box, "cat", f"{host_dir}/sentinel") == "overwritten!\n"

    # and for a stopped container as well
    ok(dockyardd, "stop", "-t", "0", box)
    ok(dockyardd, "cp", str(host_dir / "payload" / "sentinel"), f"{box}:/hostdir/")
    ok(dockyardd, "cp", f"{box}:/etclink/owned", str(host_dir / "owned"))
    assert (host_dir / "owned").read_text() == "inside\n"
    assert sentinel.read_text() == "host secret\n"


def test_put_archive_refuses_escaping_tar_and_changes_nothing(dockyardd, box, docker_client, host_dir):
    container = docker_client.containers.get(box)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("first.txt", f"../../../..{host_dir}/escaped"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"bad\n"))
    import docker.errors
    with pytest.raises(docker.errors.APIError) as err:
        container.put_archive("/data", buf.getvalue())
    assert err.value.status_code == 400
    assert "outside the destination" in str(err.value)
    assert not (host_dir / "escaped").exists()
    assert dockyardd.docker("exec", box, "test", "-e", "/data/first.txt").returncode == 1

    link = io.BytesIO()  # a relative symlink climbing out of the destination
    with tarfile.open(fileobj=link, mode="w") as tar:
        info = tarfile.TarInfo("up")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc"
        tar.addfile(info)
    with pytest.raises(docker.errors.APIError) as err:
        container.put_archive("/data", link.getvalue())
    assert err.value.status_code == 400


def test_docker_py_put_and_get_archive(dockyardd, box, docker_client):
    import time
    since = int(time.time()) - 1
    container = docker_client.containers.get(box)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("py.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"py\n"))
    assert container.put_archive("/data", buf.getvalue()) is True
    stream, stat = container.get_archive("/data/py.txt")
    assert stat["name"] == "py.txt" and stat["size"] == 3 and stat["mode"] == 0o644
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert tar.extractfile("py.txt").read() == b"py\n"
    _, stat = container.get_archive("/data")
    assert stat["mode"] & (1 << 31)  # Go's os.ModeDir
    import docker.errors
    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/nope")
    with pytest.raises(docker.errors.NotFound):
        container.put_archive("/nope", buf.getvalue())
    events = docker_client.events(since=since, until=int(time.time()) + 1, decode=True,
                                  filters={"container": box})
    actions = [e["Action"] for e in events]
    assert "extract-to-dir" in actions and "archive-path" in actions  # as dockerd; HEAD emits none


def test_read_only_rootfs_and_volume(dockyardd, docker_client, host_dir):
    name = f"cp-ro-{uuid.uuid4().hex[:8]}"
    ok(dockyardd, "create", "--name", name, "--read-only", "-v", f"{host_dir}:/ro:ro", "-v", "/w", "busybox")
    try:
        (host_dir / "f").write_text("x")
        r = dockyardd.docker("cp", str(host_dir / "f"), f"{name}:/tmp/")
        assert r.returncode == 1 and b"container rootfs is marked read-only" in r.stderr
        r = dockyardd.docker("cp", str(host_dir / "f"), f"{name}:/ro/")
        assert r.returncode == 1 and b"marked read-only" in r.stderr
        ok(dockyardd, "cp", str(host_dir / "f"), f"{name}:/w/")  # a writable volume is fine
        import docker.errors
        with pytest.raises(docker.errors.APIError) as err:
            docker_client.containers.get(name).put_archive("/etc", _tar_of("x", b"x"))
        assert err.value.status_code == 400  # as dockerd (errdefs.InvalidParameter)
        assert not (host_dir / "x").exists()
    finally:
        dockyardd.docker("rm", "-f", "-v", name)


def dy(d, *args, input=None):
    r = d.dockyard(*args, input=input)
    assert r.returncode == 0, f"dockyard {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}"
    return r


def test_dockyard_cli_cp_both_ways(dockyardd, box, host_dir):
    """Our own CLI lands files where docker's does."""
    dy(dockyardd, "cp", f"{box}:/data/a.txt", str(host_dir / "a.txt"))
    dy(dockyardd, "cp", f"{box}:/data", str(host_dir / "newname"))  # a dir to a new name
    (host_dir / "existing").mkdir()
    dy(dockyardd, "cp", f"{box}:/data", str(host_dir / "existing"))  # into an existing dir
    dy(dockyardd, "cp", f"{box}:/data/.", str(host_dir / "contents"))  # "/." copies the contents
    dy(dockyardd, "cp", "-L", f"{box}:/alink", str(host_dir / "followed"))
    assert (host_dir / "a.txt").read_text() == "hello\n"
    assert (host_dir / "newname" / "sub" / "b.txt").read_text() == "deep\n"
    assert (host_dir / "existing" / "data" / "a.txt").read_text() == "hello\n"
    assert (host_dir / "contents" / "sub" / "b.txt").read_text() == "deep\n"
    assert (host_dir / "followed").read_text() == "hello\n"
    out = dy(dockyardd, "container", "cp", f"{box}:/data/sub", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert sorted(m.name for m in tar) == ["sub", "sub/b.txt"]

    src = host_dir / "up"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "f").write_text("f\n")
    os.chown(src / "inner" / "f", 4321, 8765)
    dy(dockyardd, "cp", str(src / "inner" / "f"), f"{box}:/data/")
    dy(dockyardd, "cp", str(src / "inner" / "f"), f"{box}:/data/g")
    dy(dockyardd, "cp", str(src), f"{box}:/data/")
    dy(dockyardd, "cp", str(src), f"{box}:/uploaded")
    dy(dockyardd, "cp", "-a", str(src / "inner" / "f"), f"{box}:/vol/")
    dy(dockyardd, "cp", "-", f"{box}:/data", input=_tar_of("s.txt", b"s\n"))
    out = ok(dockyardd, "exec", box, "cat", "/data/f", "/data/g", "/data/up/inner/f", "/uploaded/inner/f", "/data/s.txt")
    assert out == "f\n" * 4 + "s\n"
    assert ok(dockyardd, "exec", box, "stat", "-c", "%u:%g", "/vol/f").strip() == "4321:8765"

    r = dockyardd.dockyard("cp", f"{box}:/no/such", str(host_dir))
    assert r.returncode == 1
    assert f"Could not find the file /no/such in container {box}" in r.stderr.decode()


def _tar_of(name, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
