"""DockyardRuntime against the real kernel (root): a busybox bundle with Docker's defaults.

Each test gets its own runtime root and cgroup parent (random suffix) and removes
them, its containers and their cgroups on the way out, even on failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.oci import defaults, runtime_spec as rs
from dockyard.runtime.cgroups import files
from dockyard.runtime.cgroups.v1 import hierarchies
from dockyard.runtime.devices import host_devices
from dockyard.runtime import caps, linux
from dockyard.runtime.linux import DockyardRuntime
from dockyard.runtime.runc import RuncRuntime

BUSYBOX = "/bin/busybox"
RUNC = "/usr/sbin/runc"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX), reason="needs root and busybox")


@pytest.fixture(scope="module")
def rootfs():
    base = Path(tempfile.mkdtemp(prefix="dy-rt-rootfs-"))
    try:
        root = base / "rootfs"
        (root / "bin").mkdir(parents=True)
        (root / "etc").mkdir()
        (root / "tmp").mkdir(mode=0o1777)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"], check=True)
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
        (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnobody:x:65534:\n")
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Harness:
    def __init__(self, runtime, rootfs: Path, workdir: Path, cgroup_parent: str, prepared: bool = False) -> None:
        self.runtime = runtime
        self.rootfs = rootfs
        self.workdir = workdir
        self.cgroup_parent = cgroup_parent
        self.prepared = prepared  # each create takes an init forked ahead (linux.prepare_init)
        self.ids: list[str] = []

    def spec(self, args: list[str], **kw) -> rs.Spec:
        spec = defaults.base_spec(args, [], "/", str(self.rootfs), "dockyard-test", **kw)
        return spec

    def bundle(self, spec: rs.Spec) -> Path:
        bundle = self.workdir / f"bundle-{secrets.token_hex(3)}"
        bundle.mkdir()
        (bundle / "config.json").write_bytes(rs.encode(spec))
        return bundle

    def create(self, spec: rs.Spec, **kw) -> tuple[str, int]:
        cid = f"t-{secrets.token_hex(4)}"
        spec.linux.cgroups_path = f"{self.cgroup_parent}/{cid}"
        self.ids.append(cid)
        kw.setdefault("stdio", None)
        bundle = self.bundle(spec)
        if self.prepared:
            linux.prepare_init()
            linux.preload_config(bundle / "config.json")
        return cid, self.runtime.create(cid, bundle, **kw)

    def run(self, args: list[str], spec: rs.Spec | None = None) -> tuple[int, str]:
        """create+start+wait with stdout/stderr captured; returns (exit code as the shim computes it, output)."""
        spec = spec or self.spec(args)
        spec.process.args = args
        out_r, out_w = os.pipe()
        try:
            cid, pid = self.create(spec, stdio=(_devnull(), out_w, out_w))
        finally:
            os.close(out_w)
        try:
            self.runtime.start(cid)
            status = _wait(pid)
        finally:
            output = _read_all(out_r)
        self.runtime.delete(cid)
        self.ids.remove(cid)
        return status, output

    def cleanup(self) -> None:
        linux.discard_prepared()  # one a failed create did not take
        for cid in self.ids:
            try:
                self.runtime.delete(cid, force=True)
            except errdefs.DockyardError:
                pass
        # runc also joins the hybrid host's cgroup2 mount
        for mountpoint in {*hierarchies().values(), "/sys/fs/cgroup/unified"}:
            path = os.path.join(mountpoint, self.cgroup_parent.lstrip("/"))
            for directory in sorted((d for d, _, _ in os.walk(path)), reverse=True) if os.path.isdir(path) else []:
                # anything still in our uniquely named cgroup is a container process a failed test left
                deadline = time.monotonic() + 5
                while (pids := files.procs(directory)) and time.monotonic() < deadline:
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.01)
                files.remove(directory, 5)


_null_fd = None


def _devnull() -> int:
    global _null_fd
    if _null_fd is None:
        _null_fd = os.open("/dev/null", os.O_RDONLY)
    return _null_fd


def _children() -> set[int]:
    """This process's children (of every thread), zombies included."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            found.update(int(p) for p in f.read().split())
    return found


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _read_all(fd: int) -> str:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(params=["forked", "prepared"])
def h(rootfs, request):
    workdir = Path(tempfile.mkdtemp(prefix="dy-rt-"))
    harness = Harness(DockyardRuntime(workdir / "state"), rootfs, workdir, f"/dytest-{secrets.token_hex(4)}",
                      prepared=request.param == "prepared")
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def runc_h(rootfs):
    if not os.path.exists(RUNC):
        pytest.skip("runc not installed")
    workdir = Path(tempfile.mkdtemp(prefix="dy-runc-"))
    harness = Harness(RuncRuntime(RUNC, workdir / "state"), rootfs, workdir, f"/dytest-{secrets.token_hex(4)}")
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


# --- isolation -----------------------------------------------------------------


def test_hostname_pid1_and_namespaces(h):
    code, out = h.run(["sh", "-c", "hostname; echo pid=$$; for n in mnt pid uts ipc net cgroup; do readlink /proc/1/ns/$n; done"])
    assert code == 0, out
    lines = out.split()
    assert lines[0] == "dockyard-test"
    assert lines[1] == "pid=1"
    host = {os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "pid", "uts", "ipc", "net", "cgroup")}
    assert not host & set(lines[2:]), "container shares a namespace with the host"


def test_default_capabilities_and_seccomp(h):
    code, out = h.run(["sh", "-c", "grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status"])
    assert code == 0, out
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert fields["CapEff"] == fields["CapBnd"] == "00000000a80425fb"  # Docker's 14
    assert fields["Seccomp"] == "2"
    code, out = h.run(["unshare", "-U", "true"])
    assert code != 0 and "Operation not permitted" in out


def test_cap_add_and_privileged_drop_seccomp(h):
    code, out = h.run(["sh", "-c", "grep CapEff /proc/self/status"], h.spec(["sh"], cap_add=["NET_ADMIN"], cap_drop=["CHOWN"]))
    assert int(out.split()[1], 16) == 0xA80425FB & ~1 | (1 << 12)
    spec = h.spec(["sh"], privileged=True)
    spec.linux.devices = host_devices()  # what the daemon adds for --privileged
    code, out = h.run(["sh", "-c", "grep -E 'CapEff|Seccomp:' /proc/self/status; ls /dev"], spec)
    assert "kmsg" in out.split() and "full" in out.split()
    own = next(line for line in open("/proc/self/status") if line.startswith("CapEff"))
    assert own.strip() in out  # everything the runtime holds
    assert "Seccomp:\t0" in out


def test_masked_and_readonly_paths(h):
    code, out = h.run(
        ["sh", "-c", "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname; echo rc=$?"]
    )
    lines = out.split()
    assert lines[0] == "0" and lines[1] == "0"
    assert "Read-only file system" in out and "rc=1" in out


def test_readonly_root_and_bind_mount_of_host_file(h):
    spec = h.spec(["sh", "-c", "touch /x; echo rc=$?; /sbin/docker-init --version"], readonly_rootfs=True)
    spec.mounts.append(rs.Mount(destination="/sbin/docker-init", type="bind", source="/usr/bin/tini-static", options=["rbind", "ro"]))
    code, out = h.run(spec.process.args, spec)
    assert "rc=1" in out and "Read-only file system" in out
    assert "tini version" in out


def test_init_runs_as_pid1_via_tini(h):
    spec = h.spec(["/sbin/docker-init", "--", "sh", "-c", "echo child=$$; exit 4"])
    spec.mounts.append(rs.Mount(destination="/sbin/docker-init", type="bind", source="/usr/bin/tini-static", options=["rbind", "ro"]))
    code, out = h.run(spec.process.args, spec)
    assert code == 4 and "child=" in out and "child=1\n" not in out


def test_user_switch(h):
    spec = h.spec(["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status; echo $HOME; echo via-proc > /proc/self/fd/1"], user=rs.User(uid=65534, gid=65534))
    code, out = h.run(spec.process.args, spec)
    assert code == 0 and "via-proc" in out
    lines = out.split("\n")
    assert lines[0] == "65534" and lines[1] == "65534"
    assert "0000000000000000" in lines[2]
    assert lines[3] == "/nonexistent"


# --- cgroups -------------------------------------------------------------------


def test_memory_limit_visible_in_cgroup(h):
    spec = h.spec(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"])
    spec.linux.resources.memory = rs.Memory(limit=64 << 20, swap=128 << 20)
    code, out = h.run(spec.process.args, spec)
    assert out.split() == [str(64 << 20), str(128 << 20)]


def test_pids_limit_enforced(h):
    spec = h.spec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done"])
    spec.linux.resources.pids = rs.Pids(limit=4)
    code, out = h.run(spec.process.args, spec)
    assert "can't fork" in out or "Resource temporarily unavailable" in out


def test_refused_limit_fails_create_and_leaves_nothing(h):
    # the cgroup is made and limited while the init sets itself up: a refusal must still undo
    # all of it (the init killed and reaped, its cgroup and state gone)
    spec = h.spec(["true"])
    spec.linux.resources.cpu = rs.CPU(cpus=f"{os.cpu_count() + 64}")
    children = _children()
    with pytest.raises(errdefs.System, match=r"^container cgroup .*/cpuset.cpus: Numerical result out of range$"):
        h.create(spec)
    assert not any((h.workdir / "state").iterdir())
    assert _children() <= children  # the init is gone, reaped (no zombie left)
    cgroup = spec.linux.cgroups_path.lstrip("/")
    assert not [m for m in hierarchies().values() if os.path.isdir(os.path.join(m, cgroup))]


def test_pause_resume_and_kill(h):
    spec = h.spec(["sleep", "30"])
    cid, pid = h.create(spec)
    assert h.runtime.state(cid).status == "created"
    h.runtime.start(cid)
    assert h.runtime.state(cid).status == "running"
    h.runtime.pause(cid)
    assert h.runtime.state(cid).status == "paused"
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().split(") ")[1][0] in "DS"  # frozen tasks sleep in the freezer
    h.runtime.resume(cid)
    assert h.runtime.state(cid).status == "running"
    with pytest.raises(errdefs.Conflict):
        h.runtime.delete(cid)
    h.runtime.kill(cid, signal.SIGKILL)
    assert _wait(pid) == 137
    assert h.runtime.state(cid).status == "stopped"
    h.runtime.delete(cid)
    h.ids.remove(cid)
    with pytest.raises(errdefs.NotFound):
        h.runtime.state(cid)


# --- exit status and errors ----------------------------------------------------


def test_exit_codes(h):
    assert h.run(["sh", "-c", "exit 3"])[0] == 3
    spec = h.spec(["sleep", "30"])
    cid, pid = h.create(spec)
    h.runtime.start(cid)
    h.runtime.kill(cid, signal.SIGTERM)  # PID 1 without a handler ignores it, as in Docker
    time.sleep(0.05)
    assert h.runtime.state(cid).status == "running"
    h.runtime.kill(cid, signal.SIGKILL, all_processes=True)
    assert _wait(pid) == 137


def test_missing_binary_and_permission_errors(h):
    with pytest.raises(errdefs.InvalidParameter, match=r'^exec: "nope": executable file not found in \$PATH$'):
        h.create(h.spec(["nope"]))
    with pytest.raises(errdefs.InvalidParameter, match=r'^exec: "/etc/passwd": permission denied$'):
        h.create(h.spec(["/etc/passwd"]))
    # a failed create leaves nothing behind
    assert not any((h.workdir / "state").iterdir())


def test_bad_cwd_reported_by_create(h):
    # as runc: the cwd is entered before the init reports ready, so create fails
    spec = h.spec(["true"])
    spec.process.cwd = "/does/not/exist"
    with pytest.raises(errdefs.InvalidParameter, match=r'^chdir to cwd \("/does/not/exist"\) set in config.json '
                                                        r'failed: no such file or directory$'):
        h.create(spec)
    assert not any((h.workdir / "state").iterdir())


def test_exec_failure_after_start_goes_to_stderr(h, rootfs):
    # executable by its mode, not by its content: only execve itself can tell; runc's report
    junk = rootfs / "junk"
    junk.write_bytes(b"\x00\x01 not a program\n")
    junk.chmod(0o755)
    try:
        status, output = h.run(["/junk"])
    finally:
        junk.unlink()
    assert (status, output) == (1, "exec /junk: exec format error\n")


def test_prepared_init_not_taken_by_a_host_pid_namespace(h):
    # the init forked ahead is PID 1 of a new PID namespace: a container in the host's cannot
    # use it, so it is let go (and reaped) and a fresh init forked
    h.prepared = False
    linux.prepare_init()
    prepared = linux._prepared.pid
    spec = h.spec(["sh", "-c", "echo $$"])
    spec.linux.namespaces = [ns for ns in spec.linux.namespaces if ns.type != "pid"]
    code, out = h.run(spec.process.args, spec)
    assert code == 0 and int(out) not in (1, prepared)
    with pytest.raises(ChildProcessError):
        os.waitpid(prepared, os.WNOHANG)


def test_prepared_init_not_taken_by_a_container_with_more_capabilities(h):
    # the prepared init dropped what Docker's default set leaves out of the bounding set: a
    # privileged container (or --cap-add) gets a fresh init, with the whole set we have
    h.prepared = False
    linux.prepare_init()
    prepared = linux._prepared.pid
    every = sorted(defaults.CAPABILITY_NUMBERS, key=defaults.CAPABILITY_NUMBERS.get)[:caps.last_cap() + 1]
    spec = h.spec(["sh", "-c", "grep CapBnd /proc/self/status"])
    spec.process.capabilities = rs.Capabilities(bounding=every, effective=every, permitted=every)
    code, out = h.run(spec.process.args, spec)
    assert code == 0 and int(out.split()[1], 16) == caps.bounding_set()  # ours: all this host allows
    with pytest.raises(ChildProcessError):
        os.waitpid(prepared, os.WNOHANG)


def test_default_capabilities_bounding_set(h):
    # the same set whether the init was prepared (most dropped ahead) or forked (all dropped now)
    code, out = h.run(["sh", "-c", "grep CapBnd /proc/self/status"])
    assert code == 0
    assert int(out.split()[1], 16) == caps.mask(list(defaults.DEFAULT_CAPABILITIES), caps.last_cap())


def test_prepared_inits_learn_their_pages_once(h):
    # the first prepared init lists the pages it wrote up to "ready"; the next ones copy them
    # ahead and run as well
    h.prepared = False
    listing = h.workdir / "init-pages"
    for round in range(3):
        linux.prepare_init(pages=str(listing))
        assert h.run(["echo", "round", str(round)]) == (0, f"round {round}\n")
        assert listing.stat().st_size > 8 * 100
    assert sorted(p.name for p in h.workdir.iterdir() if "pages" in p.name) == ["init-pages"]


def test_prepared_init_decodes_again_when_the_preload_named_another_config(h):
    h.prepared = False
    other = h.bundle(h.spec(["echo", "from the preload"]))
    linux.prepare_init()
    linux.preload_config(other / "config.json")
    assert h.run(["echo", "from the order"]) == (0, "from the order\n")
    assert linux._prepared is None  # taken


# --- terminal ------------------------------------------------------------------


def test_terminal_via_console_socket(h):
    sock_path = str(h.workdir / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    try:
        spec = h.spec(["sh", "-c", "tty; stty size; echo $$"], terminal=True)
        spec.process.console_size = rs.ConsoleSize(height=33, width=101)
        cid, pid = h.create(spec, console_socket=Path(sock_path))
        conn, _ = server.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        master = fds[0]
        assert name.startswith(b"/dev/pts/")
        h.runtime.start(cid)
        assert _wait(pid) == 0
        output = b""
        try:
            while chunk := os.read(master, 4096):
                output += chunk
        except OSError:  # EIO once the slave side is gone
            pass
        os.close(master)
        text = output.decode().replace("\r", "")
        assert "/dev/pts/0" in text and "33 101" in text
    finally:
        server.close()


# --- speed ---------------------------------------------------------------------


def test_create_start_wait_true_is_fast(h, capsys):
    spec = h.spec(["true"])
    spec.linux.cgroups_path = f"{h.cgroup_parent}/bench"
    bundle = h.bundle(spec)
    samples = []
    for i in range(12):
        cid = f"bench{i}"
        t0 = time.perf_counter()
        pid = h.runtime.create(cid, bundle, stdio=(_devnull(), _devnull(), _devnull()))
        h.runtime.start(cid)
        os.waitpid(pid, 0)
        samples.append((time.perf_counter() - t0) * 1000)
        h.runtime.delete(cid)
    best = sorted(samples)[len(samples) // 2]
    with capsys.disabled():
        print(f"\ncreate+start+wait of `true`: median {best:.1f} ms, min {min(samples):.1f} ms")
    assert best < 100


# --- runc on the same bundles ----------------------------------------------------


def test_runc_same_bundle(runc_h):
    code, out = runc_h.run(["sh", "-c", "hostname; echo $$; grep -E '^(CapEff|Seccomp):' /proc/self/status; exit 3"])
    assert code == 3
    assert out.split()[:2] == ["dockyard-test", "1"]
    assert "a80425fb" in out and "Seccomp:\t2" in out
    with pytest.raises(errdefs.InvalidParameter, match='exec: "nope": executable file not found in \\$PATH'):
        runc_h.create(runc_h.spec(["nope"]))


# --- spec knobs the daemon uses ------------------------------------------------------


def test_sysctl_rlimits_groups_nnp_domainname_and_bind_options(h, tmp_path):
    shared = tmp_path / "vol"
    shared.mkdir()
    (shared / "f").write_text("from-host")
    spec = h.spec(
        [
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward; ulimit -n; id -G; grep NoNewPrivs /proc/self/status; "
            "cat /proc/sys/kernel/domainname; cat /proc/self/oom_score_adj; cat /vol/f; echo; echo x > /vol/g; echo rc=$?",
        ],
        user=rs.User(uid=65534, gid=65534, additional_gids=[5, 10]),
        domainname="example.org",
    )
    spec.linux.sysctl = {"net.ipv4.ip_forward": "1"}
    spec.process.rlimits = [rs.Rlimit(type="RLIMIT_NOFILE", soft=1000, hard=2000)]
    spec.process.no_new_privileges = True
    spec.process.oom_score_adj = 500
    spec.mounts.append(rs.Mount(destination="/vol", type="bind", source=str(shared), options=["rbind", "ro", "rprivate"]))
    code, out = h.run(spec.process.args, spec)
    lines = out.split("\n")
    assert lines[0] == "1" and lines[1] == "1000"
    assert lines[2].split() == ["65534", "5", "10"]
    assert lines[3].split() == ["NoNewPrivs:", "1"]
    assert lines[4] == "example.org" and lines[5] == "500" and lines[6] == "from-host"
    assert "Read-only file system" in out and "rc=1" in out
    assert not (shared / "g").exists()


def test_join_network_namespace_by_path_and_kill_all(h):
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(netns) == os.readlink("/proc/self/ns/net") and time.monotonic() < deadline:
            time.sleep(0.01)  # until unshare has run
        spec = h.spec(["sh", "-c", "sleep 30 & sleep 30 & readlink /proc/self/ns/net; wait"])
        spec.linux.namespaces = [ns if ns.type != "network" else rs.Namespace(type="network", path=netns) for ns in spec.linux.namespaces]
        out_r, out_w = os.pipe()
        cid, pid = h.create(spec, stdio=(_devnull(), out_w, out_w))
        os.close(out_w)
        h.runtime.start(cid)
        line = b""
        while not line.endswith(b"\n"):
            line += os.read(out_r, 100)
        assert line.decode().strip() == os.readlink(netns)
        cgroup_pids = __import__("dockyard.runtime.cgroups", fromlist=["manager_for"]).manager_for(spec.linux.cgroups_path).pids()
        assert len(cgroup_pids) >= 3  # sh and two sleeps (readlink may not be reaped yet)
        h.runtime.kill(cid, signal.SIGKILL, all_processes=True)
        assert _wait(pid) == 137
        os.close(out_r)
    finally:
        holder.kill()
        holder.wait()


def test_cli_verbs(h):
    import json
    import sys

    spec = h.spec(["sleep", "30"])
    spec.linux.cgroups_path = f"{h.cgroup_parent}/cli"
    bundle = h.bundle(spec)
    root = str(h.workdir / "cli-root")

    def cli(*args: str) -> subprocess.CompletedProcess:
        # the container inherits create's stdio: a captured pipe would stay open as long as it runs
        output = subprocess.DEVNULL if args[0] == "create" else subprocess.PIPE
        return subprocess.run([sys.executable, "-m", "dockyard.runtime", "--root", root, *args],
                              stdout=output, stderr=output, text=True, timeout=30, stdin=subprocess.DEVNULL)

    try:
        assert cli("create", "--bundle", str(bundle), "c1").returncode == 0
        state = json.loads(cli("state", "c1").stdout)
        assert state["status"] == "created" and state["pid"] > 0 and state["bundle"] == str(bundle)
        assert cli("start", "c1").returncode == 0
        assert json.loads(cli("state", "c1").stdout)["status"] == "running"
        refused = cli("delete", "c1")
        assert refused.returncode == 1 and "that is not stopped: running" in refused.stderr
        assert cli("kill", "c1", "KILL").returncode == 0
        deadline = time.monotonic() + 5
        while json.loads(cli("state", "c1").stdout)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        assert cli("delete", "--force", "c1").returncode == 0
    assert "container does not exist" in cli("state", "c1").stderr
    spec.process.args = ["sh", "-c", "exit 7"]
    (bundle / "config.json").write_bytes(rs.encode(spec))
    assert cli("run", "--bundle", str(bundle), "c2").returncode == 7


@pytest.mark.parametrize("prepared", [False, True])
def test_siblings_are_reaped_by_the_callers_parent(rootfs, prepared):
    """With ``siblings`` (the shim's create helper) the init is the caller's parent's child: the
    parent (the shim) reaps it and hears of its exit while the caller is still alive."""
    workdir = Path(tempfile.mkdtemp(prefix="dy-rt-"))
    harness = Harness(DockyardRuntime(workdir / "state", siblings=True), rootfs, workdir,
                      f"/dytest-{secrets.token_hex(4)}")
    ready_r, ready_w = os.pipe()
    caller = os.fork()
    if caller == 0:  # the caller: creates and starts, then stays
        try:
            os.close(ready_r)
            if prepared:
                linux.prepare_init(sibling=True)
            cid, pid = harness.create(harness.spec(["sh", "-c", "exit 7"]))
            harness.runtime.start(cid)
            os.write(ready_w, f"{cid} {pid}".encode())
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        os.close(ready_w)
        cid, pid = os.read(ready_r, 100).decode().split()
        harness.ids.append(cid)
        assert int(pid) in _children()
        assert _wait(int(pid)) == 7
        assert os.waitpid(caller, os.WNOHANG) == (0, 0)  # the caller is still there
    finally:
        os.kill(caller, signal.SIGKILL)
        os.waitpid(caller, 0)
        os.close(ready_r)
        harness.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
