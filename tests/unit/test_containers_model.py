"""State machine, names, user resolution, spec building: pure pieces of the container service."""

from __future__ import annotations

import os
import stat
import shutil
import tempfile
from pathlib import Path

import msgspec
import pytest

from dockyard import errdefs
from dockyard.apitypes.container import ContainerConfig, HostConfig, State
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import attach, create, names, spec, user
from dockyard.daemon.containers import state as st
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.daemon.interfaces import SandboxInfo
from dockyard.oci import runtime_spec as oci


# ---- state machine ---------------------------------------------------------------

def test_transitions_keep_flags():
    s = State()
    st.transition(s, st.RUNNING, "c", now="2026-01-01T00:00:00Z")
    assert (s.running, s.paused, s.started_at) == (True, False, "2026-01-01T00:00:00Z")
    st.transition(s, st.PAUSED, "c")
    assert s.running and s.paused
    st.transition(s, st.RUNNING, "c", now="2027-01-01T00:00:00Z")
    assert s.started_at == "2026-01-01T00:00:00Z"  # unpause is not a new start
    st.transition(s, st.EXITED, "c", now="2026-01-01T00:00:05Z")
    assert not s.running and s.finished_at == "2026-01-01T00:00:05Z" and s.pid == 0


@pytest.mark.parametrize("start,target,message", [
    (st.RUNNING, st.REMOVING, 'cannot remove container "/web": container is running: stop the container '
                              'before removing or force remove'),
    (st.CREATED, st.PAUSED, "Container web is not running"),
    (st.PAUSED, st.PAUSED, "Container web is already paused"),
    (st.REMOVING, st.RUNNING, "container is marked for removal and cannot be started"),
])
def test_illegal_moves_are_conflicts(start, target, message):
    with pytest.raises(errdefs.Conflict) as err:
        st.transition(State(status=start), target, "web")
    assert str(err.value) == message


def test_paused_cannot_start():
    with pytest.raises(errdefs.Conflict, match="cannot start a paused container, try unpause instead"):
        st.check_start(State(status=st.PAUSED, running=True, paused=True), "c")


# ---- names -------------------------------------------------------------------------

def test_names():
    assert names.validate_name("/web.1_a-b") == "web.1_a-b"
    for bad in ("x", "-web", "we b", "/", ""):
        with pytest.raises(errdefs.InvalidParameter, match=r"Invalid container name"):
            names.validate_name(bad)
    generated = names.generate_name(lambda n: False)
    assert names.VALID_NAME.match(generated) and "_" in generated
    cid = names.new_id(lambda c: False)
    assert len(cid) == 64 and not cid[:12].isdigit()


def test_find():
    pairs = [("abc111", "one"), ("abc222", "two"), ("def333", "abc")]
    assert names.find("abc111", pairs) == "abc111"
    assert names.find("/two", pairs) == "abc222"
    assert names.find("abc", pairs) == "def333"  # exact name wins over an ID prefix
    assert names.find("de", pairs) == "def333"
    with pytest.raises(errdefs.InvalidParameter, match="Multiple IDs found with provided prefix: abc"):
        names.find("abc", [("abc111", "x1"), ("abc222", "x2")])
    with pytest.raises(errdefs.NotFound, match="No such container: zz"):
        names.find("zz", pairs)


# ---- user -------------------------------------------------------------------------

@pytest.fixture
def layers():
    root = Path(tempfile.mkdtemp(prefix="dy-user-"))
    top, bottom = root / "top", root / "bottom"
    for layer in (top, bottom):
        (layer / "etc").mkdir(parents=True)
    (bottom / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nold:x:7:7::/:/bin/sh\n")
    (bottom / "etc/group").write_text("root:x:0:\nwheel:x:10:root,app\nstaff:x:50:app\n")
    (top / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n")
    try:
        yield [top, bottom]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_user_resolution(layers):
    assert user.resolve("", layers) == user.ExecUser(0, 0, [10], "/root")
    assert user.resolve("app", layers) == user.ExecUser(1000, 1001, [10, 50], "/home/app")
    assert user.resolve("1000", layers).home == "/home/app"
    assert user.resolve("4242:4343", layers) == user.ExecUser(4242, 4343, [], "/")
    assert user.resolve("app:staff", layers).gid == 50
    assert user.resolve("app", layers, group_add=["wheel", "99"]).additional_gids == [10, 50, 99]
    with pytest.raises(errdefs.InvalidParameter, match="unable to find user old: no matching entries"):
        user.resolve("old", layers)  # the top layer's passwd hides the bottom one
    with pytest.raises(errdefs.InvalidParameter, match="unable to find group nope"):
        user.resolve("app:nope", layers)


def test_user_whiteouts(layers):
    top, bottom = layers
    (top / "etc/passwd").unlink()
    os.mknod(top / "etc/passwd", 0o600 | 0o020000, os.makedev(0, 0))  # overlay whiteout
    assert user.read_image_file(layers, "etc/passwd") is None
    (top / "etc/passwd").unlink()
    assert "old:x:7" in user.read_image_file(layers, "etc/passwd")
    (top / "etc/.wh.group").write_text("")  # a Docker-style whiteout
    assert user.read_image_file(layers, "etc/group") is None


# ---- spec ---------------------------------------------------------------------------

def record(**hc) -> ContainerRecord:
    config = ContainerConfig(hostname="abc", image="busybox", env=["A=1"], working_dir="/w", tty=True)
    return ContainerRecord(id="c" * 64, name="web", created="", image_id="sha256:x", path="sh", args=["-c", "x"],
                           config=config, host_config=msgspec.convert(hc, HostConfig))


def build(rec: ContainerRecord, sandbox: SandboxInfo | None = None, volume_mounts=()) -> oci.Spec:
    return spec.build(rec, user.ExecUser(1, 2, [3], "/home/u"), rootfs="/b/rootfs",
                      sandbox=sandbox or SandboxInfo(netns_path="/run/netns/x"), cgroup_parent="/dockyard",
                      volume_mounts=volume_mounts)


def test_spec_basics():
    s = build(record())
    assert s.process.args == ["sh", "-c", "x"] and s.process.cwd == "/w" and s.process.terminal
    assert s.process.env[:3] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "HOSTNAME=abc", "TERM=xterm"]
    assert "A=1" in s.process.env and "HOME=/home/u" in s.process.env
    assert (s.process.user.uid, s.process.user.gid, s.process.user.additional_gids) == (1, 2, [3])
    assert s.hostname == "abc" and s.root.path == "/b/rootfs"
    assert s.linux.cgroups_path == "/dockyard/" + "c" * 64
    assert oci.Namespace(type="network", path="/run/netns/x") in s.linux.namespaces
    assert s.linux.seccomp is not None and s.linux.masked_paths


def test_spec_hostconfig_fields():
    dev = "/dev/null"
    s = build(record(Memory=64 << 20, MemorySwap=128 << 20, MemoryReservation=32 << 20, CpuShares=512,
                     NanoCpus=1_500_000_000, CpusetCpus="0", CpusetMems="0", PidsLimit=50,
                     BlkioWeight=300, BlkioDeviceReadBps=[{"Path": dev, "Rate": 1024}],
                     BlkioDeviceWriteBps=[{"Path": dev, "Rate": 2048}],
                     Ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 20}], ReadonlyRootfs=True,
                     CapAdd=["NET_ADMIN"], CapDrop=["MKNOD"], SecurityOpt=["no-new-privileges"],
                     Init=True, OomScoreAdj=100, Sysctls={"net.ipv4.ip_forward": "1"},
                     Tmpfs={"/run": "size=1m"}, ShmSize=1 << 20, PidMode="host"),
              volume_mounts=[oci.Mount(destination="/data", type="bind", source="/tmp",
                                       options=["rbind", "rprivate", "ro"]),
                             oci.Mount(destination="/dev/shm", type="bind", source="/srv/shm",
                                       options=["rbind", "rprivate", "rw"])])
    r = s.linux.resources
    assert (r.memory.limit, r.memory.swap, r.memory.reservation) == (64 << 20, 128 << 20, 32 << 20)
    assert (r.cpu.shares, r.cpu.quota, r.cpu.period, r.cpu.cpus, r.cpu.mems) == (512, 150000, 100000, "0", "0")
    assert r.pids.limit == 50 and r.block_io.weight == 300
    assert r.block_io.throttle_read_bps_device == [oci.ThrottleDevice(major=1, minor=3, rate=1024)]
    assert r.block_io.throttle_write_bps_device == [oci.ThrottleDevice(major=1, minor=3, rate=2048)]
    assert oci.Rlimit(type="RLIMIT_NOFILE", hard=20, soft=10) in s.process.rlimits
    assert s.root.readonly and s.process.no_new_privileges and s.process.oom_score_adj == 100
    caps = s.process.capabilities.bounding
    assert "CAP_NET_ADMIN" in caps and "CAP_MKNOD" not in caps
    assert s.process.args[:2] == ["/sbin/docker-init", "--"]
    assert s.linux.sysctl == {"net.ipv4.ip_forward": "1"}
    assert "pid" not in {n.type for n in s.linux.namespaces}
    mounts = {m.destination: m for m in s.mounts}
    assert mounts["/data"].options == ["rbind", "rprivate", "ro"] and mounts["/data"].source == "/tmp"
    assert mounts["/dev/shm"].source == "/srv/shm"  # a user's mount replaces the default one
    assert mounts["/run"].type == "tmpfs" and "size=1m" in mounts["/run"].options
    assert mounts["/sbin/docker-init"].source == "/usr/bin/tini-static"


def test_spec_network_files_and_host_mode():
    sandbox = SandboxInfo(netns_path=None, hosts_path=Path("/d/hosts"), resolv_conf_path=Path("/d/resolv.conf"),
                          hostname_path=Path("/d/hostname"))
    s = build(record(ReadonlyRootfs=True), sandbox)
    assert "network" not in {n.type for n in s.linux.namespaces}
    mounts = {m.destination: m for m in s.mounts}
    assert mounts["/etc/resolv.conf"].source == "/d/resolv.conf"
    assert mounts["/etc/hosts"].options == ["rbind", "rprivate", "ro"]


def test_spec_seccomp_and_privileged():
    assert build(record(SecurityOpt=["seccomp=unconfined"])).linux.seccomp is None
    profile = ('{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":['
               '{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},'
               '{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}')
    sec = build(record(SecurityOpt=["seccomp=" + profile])).linux.seccomp
    assert sec.default_action == "SCMP_ACT_ERRNO" and [c.names for c in sec.syscalls] == [["read", "write"]]
    p = build(record(Privileged=True))
    assert p.linux.seccomp is None and not p.linux.masked_paths
    assert len(p.process.capabilities.bounding) > 30
    with pytest.raises(errdefs.InvalidParameter, match="invalid --security-opt"):
        spec.parse_security_opts(["bogus"])


# ---- create-time validation -----------------------------------------------------------

@pytest.mark.parametrize("hc,message", [
    ({"Memory": 5 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"NanoCpus": 1, "CpuPeriod": 1000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
    ({"CpusetCpus": "0-99"}, "Requested CPUs are not available - requested 0-99"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: bogus"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
     "maximum retry count can only be used with 'on-failure'"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "can't create 'AutoRemove' container"),
    ({"LogConfig": {"Type": "syslog"}}, "logger: no log driver named 'syslog' is registered"),
    ({"CapDrop": ["BOGUS"]}, 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
])
def test_create_validation(hc, message):
    host_config = msgspec.convert(hc, HostConfig)
    with pytest.raises(errdefs.InvalidParameter) as err:
        create.validate_resources(host_config, [])
        create.validate_restart(host_config)
        create.validate_capabilities(host_config)
        create.validate_logging(host_config, DaemonConfig())
    assert message in str(err.value)


def test_memory_swap_default():
    hc = HostConfig(memory=64 << 20)
    create.validate_resources(hc, [])
    assert hc.memory_swap in (128 << 20, -1)


def test_merge_image_config():
    cfg = create.merge_image_config(ContainerConfig(entrypoint=["/bin/x"], env=["A=1"]),
                                    {"Cmd": ["sh"], "Env": ["A=0", "B=2"], "Entrypoint": ["/e"],
                                     "WorkingDir": "/w", "User": "app", "Labels": {"a": "1"}})
    assert cfg.cmd is None and cfg.entrypoint == ["/bin/x"]  # a user entrypoint drops the image's Cmd
    assert cfg.env == ["A=1", "B=2"] and cfg.working_dir == "/w" and cfg.user == "app"
    assert cfg.labels == {"a": "1"}


# ---- detach keys ---------------------------------------------------------------------------

def test_detach_keys():
    assert attach.parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert attach.parse_detach_keys("a,ctrl-@") == b"a\x00"
    with pytest.raises(errdefs.InvalidParameter, match="Invalid detach keys"):
        attach.parse_detach_keys("ctrl-pp")
    f = attach.EscapeFilter(b"\x10\x11")
    assert f.feed(b"ab\x10") == (b"ab", False)
    assert f.feed(b"c") == (b"\x10c", False)
    assert f.feed(b"\x10\x11rest") == (b"", True)



def test_top_parses_ps():
    from dockyard.daemon.containers.top import parse_ps
    out = ("UID   PID  PPID CMD\n"
           "root    1     0 /sbin/init splash\n"
           "root  4242    1 sleep 100 200\n")
    result = parse_ps(out, {4242})
    assert result.titles == ["UID", "PID", "PPID", "CMD"]
    assert result.processes == [["root", "4242", "1", "sleep 100 200"]]
    with pytest.raises(errdefs.System, match="Couldn't find PID field"):
        parse_ps("USER CMD\n", set())


def test_changes(tmp_path):
    from dockyard.daemon.containers.changes import Change, changes
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("root")
    (lower / "bin").mkdir()
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("root\nx")
    (upper / "etc/new").write_text("n")
    (upper / "bin").mkdir()
    os.mknod(upper / "bin/ls", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    assert changes(upper, [lower]) == [Change("/bin", 0), Change("/bin/ls", 2), Change("/etc", 0),
                                       Change("/etc/new", 1), Change("/etc/passwd", 0)]
