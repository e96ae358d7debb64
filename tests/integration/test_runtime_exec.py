"""Runtime ``exec`` (ours and runc) against the real kernel: a process joins a running container."""

from __future__ import annotations

import os

import pytest

from dockyard import errdefs
from dockyard.oci import runtime_spec as rs
from tests.integration.test_runtime_linux import (  # noqa: F401 - fixtures
    _devnull, _read_all, _wait, h, rootfs, runc_h,
)


def _running(harness) -> tuple[str, int]:
    spec = harness.spec(["sleep", "1000"])
    cid, pid = harness.create(spec, stdio=(_devnull(), _devnull(), _devnull()))
    harness.runtime.start(cid)
    return cid, pid


def _exec(harness, cid: str, args: list[str], **kw) -> tuple[int, str]:
    process = rs.Process(args=args, cwd=kw.pop("cwd", "/"), env=["PATH=/bin", *kw.pop("env", [])], **kw)
    out_r, out_w = os.pipe()
    try:
        pid = harness.runtime.exec(cid, process, stdio=(_devnull(), out_w, out_w))
    finally:
        os.close(out_w)
    try:
        status = _wait(pid)
    finally:
        output = _read_all(out_r)
    return status, output


def test_exec_joins_namespaces_cgroup_and_user(h):
    _check_exec_joins(h)


def test_exec_joins_namespaces_cgroup_and_user_runc(runc_h):
    _check_exec_joins(runc_h)


def _check_exec_joins(harness) -> None:
    cid, init_pid = _running(harness)
    try:
        status, out = _exec(harness, cid, ["sh", "-c", "hostname; cat /proc/1/cmdline; echo; id -u; pwd; "
                                               "echo $FOO; cat /proc/self/cgroup | grep -c pids"],
                            cwd="/tmp", env=["FOO=bar"], user=rs.User(uid=65534, gid=65534))
        assert status == 0, out
        lines = out.splitlines()
        assert lines[0] == "dockyard-test"
        assert lines[1].replace("\0", " ").strip() == "sleep 1000"
        assert lines[2:5] == ["65534", "/tmp", "bar"]
        # the exec'd process is in the container's pids cgroup (its own namespace root)
        assert lines[5] == "1"
        assert _exec(harness, cid, ["sh", "-c", "exit 5"])[0] == 5
    finally:
        os.kill(init_pid, 9)
        _wait(init_pid)


def test_exec_errors_as_runc(h):
    cid, init_pid = _running(h)
    try:
        with pytest.raises(errdefs.InvalidParameter, match=r'exec: "nope": executable file not found in \$PATH'):
            _exec(h, cid, ["nope"])
        with pytest.raises(errdefs.InvalidParameter, match=r'exec: "/etc/passwd": permission denied'):
            _exec(h, cid, ["/etc/passwd"])
    finally:
        os.kill(init_pid, 9)
        _wait(init_pid)
    with pytest.raises(errdefs.Conflict, match="is not running"):
        _exec(h, cid, ["true"])


def test_exec_is_in_every_cgroup_and_namespace_of_the_init(h):
    cid, init_pid = _running(h)
    try:
        process = rs.Process(args=["sleep", "5"], cwd="/", env=["PATH=/bin"])
        pid = h.runtime.exec(cid, process, stdio=(_devnull(), _devnull(), _devnull()))
        try:
            with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init_pid}/cgroup") as b:
                assert a.read() == b.read()
            for ns in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
                assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init_pid}/ns/{ns}"), ns
        finally:
            os.kill(pid, 9)
            _wait(pid)
    finally:
        os.kill(init_pid, 9)
        _wait(init_pid)
