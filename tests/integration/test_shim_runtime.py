"""The shim with real runtimes (Dockyard's own, in-process, and runc) and Docker's default spec:
namespaces, cgroups, seccomp, pty, OOM. Root only; every test removes its cgroups and mounts."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from dockyard.oci import defaults
from dockyard.oci import runtime_spec as rs
from dockyard.runtime.cgroups.v1 import hierarchies
from dockyard.shim.jsonlog_reader import read_logs
from tests.integration.test_shim_support import Bundle, make_bundle
from tests.integration.test_shim_zygote import (Harness, collect, joined, run_to_exit, smaps_rollup,
                                                wait_gone)

RUNC = "/usr/sbin/runc"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
RUNTIMES = ["dockyard", pytest.param(RUNC, marks=pytest.mark.skipif(
    not os.path.exists(RUNC), reason="runc not installed"))]


def cgroup_dirs(relative: str) -> list[str]:
    """``relative`` in every mounted hierarchy, the v1 controllers and the unified one (where
    runc also makes its cgroups on a hybrid host)."""
    return [os.path.join(root, relative.lstrip("/"))
            for root in {*hierarchies().values(), "/sys/fs/cgroup/unified"}]


class RuntimeHarness(Harness):
    def __init__(self, tmp_path: Path, runtime: str) -> None:
        super().__init__(tmp_path, runtime=runtime, preload=())
        self.cgroup_parent = f"/dockyard-shimtest-{secrets.token_hex(4)}"

    def bundle(self, args: list[str], *, tty: bool = False, memory: int | None = None) -> Bundle:
        def spec_for(b: Bundle) -> rs.Spec:
            spec = defaults.base_spec(args, ["TERM=xterm"], "/", str(b.rootfs), "shimtest",
                                      terminal=tty)
            spec.linux.cgroups_path = f"{self.cgroup_parent}/{b.container_id}"
            if memory is not None:
                spec.linux.resources.memory = rs.Memory(limit=memory, swap=memory)
            return spec
        self.count += 1
        return make_bundle(self.tmp_path / f"c{self.count}", args, spec_for=spec_for)

    async def cleanup(self) -> None:
        await super().cleanup()
        for path in cgroup_dirs(self.cgroup_parent):
            if os.path.isdir(path):
                for directory in sorted((d for d, _, _ in os.walk(path)), reverse=True):
                    os.rmdir(directory)


def run(tmp_path: Path, runtime: str, body) -> None:
    async def main() -> None:
        h = RuntimeHarness(tmp_path, runtime)
        await h.manager.start()
        try:
            await body(h)
        finally:
            await h.cleanup()
    asyncio.run(main())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_output_exit_codes_and_cleanup(tmp_path: Path, runtime: str) -> None:
    async def body(h: RuntimeHarness) -> None:
        b = h.bundle(["sh", "-c", "echo hello; echo $$ >&2; exit 3"])
        handle = await h.spawn(b)
        status, chunks = await run_to_exit(handle)
        assert status.exit_code == 3
        assert joined(chunks, 1) == b"hello\n"
        assert joined(chunks, 2) == b"1\n"  # the init is pid 1 in its own PID namespace
        assert sorted((r.stream, r.data) for r in read_logs(b.log_path)[0]) == [
            ("stderr", b"1\n"), ("stdout", b"hello\n")]
        await handle.shutdown()
        assert await wait_gone(handle.shim_pid)
        assert not os.path.ismount(b.rootfs)
        assert not any(os.path.isdir(p) for p in cgroup_dirs(f"{h.cgroup_parent}/{b.container_id}"))
    run(tmp_path, runtime, body)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kill_tty_and_stdin(tmp_path: Path, runtime: str) -> None:
    async def body(h: RuntimeHarness) -> None:
        sleeper = await h.spawn(h.bundle(["sleep", "100"]))
        await sleeper.start()
        await sleeper.kill(signal.SIGKILL)
        assert (await asyncio.wait_for(sleeper.wait(), 10)).exit_code == 137

        tty = await h.spawn(h.bundle(["sh", "-c", "stty size; tty"], tty=True), tty=True)
        await tty.resize(30, 90)
        status, chunks = await run_to_exit(tty)
        assert status.exit_code == 0
        assert joined(chunks, 1) == b"30 90\r\n/dev/pts/0\r\n"  # as docker run -t

        cat = await h.spawn(h.bundle(["cat"]), open_stdin=True, stdin_once=True)
        stream = await cat.attach(stdin=True, stdout=True, stderr=True)
        output = asyncio.create_task(collect(stream))
        await cat.start()
        await stream.write_stdin(b"line\n" * 1000)
        await stream.close_stdin()
        assert (await asyncio.wait_for(cat.wait(), 10)).exit_code == 0
        assert joined(await asyncio.wait_for(output, 10), 1) == b"line\n" * 1000
        await stream.close()
        for handle in (sleeper, tty, cat):
            await handle.shutdown()
    run(tmp_path, runtime, body)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_attaches_and_starts_in_one_exchange(tmp_path: Path, runtime: str) -> None:
    """``run``: the attach sessions are in before the container starts (no output lost), with
    no start request; a start that fails ends the shim and raises the runtime's error."""
    async def body(h: RuntimeHarness) -> None:
        b = h.bundle(["sh", "-c", "echo first; echo err >&2; read x; echo got $x"])
        handle, (both, stdin_only) = await h.manager.run(
            b.request(h.runtime, h.runtime_root, open_stdin=True),
            [(False, True, True), (True, False, False)])
        h.spawned.append((b, handle.shim_pid, handle.pid))
        # a run's start may reach us from the create helper, ahead of the shim: init.pid is
        # there all the same (a restarted daemon reads it)
        assert int((b.state_dir / "init.pid").read_text()) == handle.pid
        output = asyncio.create_task(collect(both))
        assert (await handle.state()).status == "running"
        await stdin_only.write_stdin(b"it\n")
        assert (await asyncio.wait_for(handle.wait(), 10)).exit_code == 0
        chunks = await asyncio.wait_for(output, 10)
        assert joined(chunks, 1) == b"first\ngot it\n" and joined(chunks, 2) == b"err\n"
        for stream in (both, stdin_only):
            await stream.close()
        await handle.shutdown()

        detached, none = await h.manager.run(b.request(h.runtime, h.runtime_root))  # no attach
        h.spawned.append((b, detached.shim_pid, detached.pid))
        assert none == []
        assert (await asyncio.wait_for(detached.wait(), 10)).exit_code == 0  # read got EOF
        await detached.shutdown()

        missing = h.bundle(["/no/such/program"])
        with pytest.raises(Exception, match="no such file or directory"):
            await h.manager.run(missing.request(h.runtime, h.runtime_root), [(False, True, True)])
        assert not os.path.ismount(missing.rootfs)  # the shim was ended: runtime delete, unmount
        assert not (missing.state_dir / "shim.sock").exists()
        assert not any(os.path.isdir(p) for p in cgroup_dirs(f"{h.cgroup_parent}/{missing.container_id}"))
    run(tmp_path, runtime, body)


def test_reconnect_and_oom(tmp_path: Path) -> None:
    async def body(h: RuntimeHarness) -> None:
        b = h.bundle(["sh", "-c", "sleep 0.3; tail /dev/zero"], memory=16 * 1024 * 1024)
        handle = await h.spawn(b)
        await handle.start()
        pid = handle.pid
        del handle
        await h.manager.close()  # the daemon goes away while the container runs
        await asyncio.sleep(0.5)
        handle = await h.manager.connect(b.state_dir, b.container_id)
        assert handle is not None and handle.pid == pid
        status = await asyncio.wait_for(handle.wait(), 20)
        assert status.exit_code == 137 and status.oom_killed
        await handle.shutdown()
    run(tmp_path, "dockyard", body)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_measure_start_latency_and_idle_memory(tmp_path: Path, runtime: str) -> None:
    """Prints spawn->start->exit of `true` with Docker's default spec (namespaces, cgroups,
    seccomp; no network setup) and an idle shim's PSS and private memory."""
    async def body(h: RuntimeHarness) -> None:
        timings = []
        for _ in range(5):
            b = h.bundle(["true"])
            t0 = time.perf_counter()
            handle = await h.spawn(b, log=False)
            await handle.start()
            status = await handle.wait()
            timings.append((time.perf_counter() - t0) * 1000)
            assert status.exit_code == 0
            await handle.shutdown()
        idle = [await h.spawn(h.bundle(["sleep", "100"])) for _ in range(3)]
        for handle in idle:
            await handle.start()
        await asyncio.sleep(0.3)
        rollup = smaps_rollup(idle[0].shim_pid)
        print(f"\n[{runtime}] spawn->start->exit of `true`: "
              f"{', '.join(f'{t:.1f}' for t in timings)} ms; idle shim (3 alive): "
              f"PSS {rollup['Pss']} kB, private {rollup['Private_Clean'] + rollup['Private_Dirty']} kB")
        for handle in idle:
            await handle.kill(signal.SIGKILL)
            await handle.wait()
            await handle.shutdown()
    run(tmp_path, runtime, body)
