"""Shims forked from the zygote, for real (root): overlay rootfs, stdio, exit, reconnect, cleanup.

Runs with the test fork+exec runtime (tests.integration.test_shim_support); the
suite in test_shim_runtime.py runs the same shim with Dockyard's own runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.shim import protocol
from dockyard.shim.manager import ZygoteShimManager, spawn_request_to_json
from dockyard.shim.jsonlog_reader import read_logs
from tests.integration.test_shim_support import (FORK_EXEC_RUNTIME, Bundle, is_mounted,
                                                 make_bundle)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts)")

SUPPORT = "tests.integration.test_shim_support"
# the zygote imports this test package's runtime: give it the repository on its path
ZYGOTE_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def smaps_rollup(pid: int) -> dict[str, int]:
    """kB figures of /proc/<pid>/smaps_rollup (Rss, Pss, Private_Dirty, ...)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return {p[0].rstrip(":"): int(p[1]) for p in map(str.split, f) if len(p) >= 2 and p[1].isdigit()}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


async def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


class Harness:
    """A zygote of the test's own plus everything spawned, torn down even on failure."""

    def __init__(self, tmp_path: Path, runtime: str = FORK_EXEC_RUNTIME,
                 preload: tuple[str, ...] = (SUPPORT,)) -> None:
        self.tmp_path = tmp_path
        self.runtime = runtime
        self.runtime_root = tmp_path / "runtime"
        self.manager = ZygoteShimManager(tmp_path / "zygote.sock", preload=preload, env=ZYGOTE_ENV)
        self.spawned: list[tuple[Bundle, int, int]] = []  # bundle, shim pid, init pid
        self.count = 0

    def bundle(self, args: list[str], **kw) -> Bundle:
        self.count += 1
        return make_bundle(self.tmp_path / f"c{self.count}", args, **kw)

    async def spawn(self, b: Bundle, **kw):
        handle = await self.manager.spawn(b.request(self.runtime, self.runtime_root, **kw))
        self.spawned.append((b, handle.shim_pid, handle.pid))
        return handle

    async def cleanup(self) -> None:
        for b, shim_pid, init_pid in self.spawned:
            for pid in (init_pid, shim_pid):
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            await wait_gone(shim_pid)
            if is_mounted(b.rootfs):
                os.system(f"umount -l {b.rootfs}")
        await self.manager.close()


def run(tmp_path: Path, body, **kw) -> None:
    async def main() -> None:
        h = Harness(tmp_path, **kw)
        await h.manager.start()
        try:
            await body(h)
        finally:
            await h.cleanup()
    asyncio.run(main())


async def collect(stream) -> list[tuple[int, bytes]]:
    return [item async for item in stream.output()]


def joined(chunks: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(d for s, d in chunks if s == stream)


async def run_to_exit(handle, stdin: bool = False, stdout: bool = True, stderr: bool = True):
    stream = await handle.attach(stdin=stdin, stdout=stdout, stderr=stderr)
    output = asyncio.create_task(collect(stream))
    await handle.start()
    status = await asyncio.wait_for(handle.wait(), 10)
    chunks = await asyncio.wait_for(output, 10)
    await stream.close()
    return status, chunks


def test_echo_reaches_attach_and_log_and_shutdown_cleans_up(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["sh", "-c", "echo hello; echo oops >&2; printf partial"])
        handle = await h.spawn(b)
        assert is_mounted(b.rootfs)
        assert (b.state_dir / "shim.sock").exists()
        assert int((b.state_dir / "init.pid").read_text()) == handle.pid
        status, chunks = await run_to_exit(handle)
        assert status.exit_code == 0 and not status.oom_killed
        assert joined(chunks, 1) == b"hello\npartial"
        assert joined(chunks, 2) == b"oops\n"
        records = list(read_logs(b.log_path)[0])
        assert [(r.stream, r.data) for r in records if r.stream == "stdout"] == [
            ("stdout", b"hello\n"), ("stdout", b"partial")]
        assert [(r.stream, r.data) for r in records if r.stream == "stderr"] == [
            ("stderr", b"oops\n")]
        line = json.loads(b.log_path.read_text().splitlines()[0])
        assert set(line) == {"log", "stream", "time"} and line["time"].endswith("Z")
        exit_json = json.loads((b.state_dir / "exit.json").read_text())
        assert exit_json["exit_code"] == 0 and exit_json["finished_at"] == status.finished_at
        await handle.shutdown()
        assert await wait_gone(handle.shim_pid)
        assert not is_mounted(b.rootfs)
        assert not (b.state_dir / "shim.sock").exists()
        assert not (h.runtime_root / b.container_id).exists()  # runtime delete ran
        assert await h.manager.connect(b.state_dir, b.container_id) is None
    run(tmp_path, body)


def test_exit_code_and_kill(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        three = await h.spawn(h.bundle(["sh", "-c", "exit 3"]))
        status, _ = await run_to_exit(three)
        assert status.exit_code == 3
        sleeper = await h.spawn(h.bundle(["sleep", "100"]))
        await sleeper.start()
        with pytest.raises(errdefs.Conflict):
            await sleeper.shutdown()  # refused while it runs
        await sleeper.kill(signal.SIGTERM)
        status = await asyncio.wait_for(sleeper.wait(), 10)
        assert status.exit_code == 128 + signal.SIGTERM
        with pytest.raises(errdefs.Conflict):
            await sleeper.kill(signal.SIGKILL)
        for handle in (three, sleeper):
            await handle.shutdown()
        # the daemon's discard after a failed start: kill the created init, shut down at once
        b = h.bundle(["sleep", "100"])
        never_started = await h.spawn(b)
        await never_started.kill(signal.SIGKILL, all_processes=True)
        await never_started.shutdown()
        assert await wait_gone(never_started.shim_pid)
        assert not is_mounted(b.rootfs)
    run(tmp_path, body)


def test_a_restart_reuses_the_exec_dir(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["sh", "-c", "echo run; exit 2"])
        for _ in range(2):
            handle = await h.spawn(b)
            assert not (b.state_dir / "exit.json").exists()  # the last run's record is void
            status, chunks = await run_to_exit(handle)
            assert status.exit_code == 2 and joined(chunks, 1) == b"run\n"
            await handle.shutdown()
        assert [r.data for r in read_logs(b.log_path)[0]] == [b"run\n", b"run\n"]  # appended
    run(tmp_path, body)


def test_tty_output_and_resize(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        handle = await h.spawn(h.bundle(["sh", "-c", "stty size; echo tty"], tty=True), tty=True)
        await handle.resize(40, 100)
        status, chunks = await run_to_exit(handle)
        assert status.exit_code == 0
        assert joined(chunks, 1) == b"40 100\r\ntty\r\n"
        assert not joined(chunks, 2)
        records, _ = read_logs(h.spawned[0][0].log_path)
        assert {r.stream for r in records} == {"stdout"}
        await handle.shutdown()
    run(tmp_path, body)


def test_stdin_is_forwarded_and_stdin_once_closes_it(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        handle = await h.spawn(h.bundle(["cat"]), open_stdin=True, stdin_once=True)
        stream = await handle.attach(stdin=True, stdout=True, stderr=True)
        output = asyncio.create_task(collect(stream))
        await handle.start()
        await stream.write_stdin(b"abc\n" * 3 + b"x" * 200_000)
        await stream.close_stdin()
        status = await asyncio.wait_for(handle.wait(), 10)
        chunks = await asyncio.wait_for(output, 10)
        assert status.exit_code == 0
        assert joined(chunks, 1) == b"abc\n" * 3 + b"x" * 200_000
        await stream.close()
        await handle.shutdown()
    run(tmp_path, body)


def test_reconnect_after_daemon_restart(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["sh", "-c", "read line; echo got $line; exit 4"])
        first = await h.spawn(b, open_stdin=True)
        await first.start()
        del first  # the daemon "restarts": no client objects survive
        await h.manager.close()  # nor the zygote
        again = ZygoteShimManager(h.tmp_path / "zygote.sock")  # a new daemon: connect needs no zygote
        handle = await again.connect(b.state_dir, b.container_id)
        assert handle is not None and handle.pid == h.spawned[0][2]
        assert handle.shim_pid == h.spawned[0][1]
        assert (await handle.state()).status == "running"
        stream = await handle.attach(stdin=True, stdout=True, stderr=False)
        output = asyncio.create_task(collect(stream))
        await stream.write_stdin(b"it\n")
        status = await asyncio.wait_for(handle.wait(), 10)
        assert status.exit_code == 4
        assert joined(await output, 1) == b"got it\n"
        await stream.close()
        # the container exited while no daemon listened: the shim keeps the status
        reconnected = await again.connect(b.state_dir, b.container_id)
        assert reconnected is not None
        assert (await reconnected.wait()).exit_code == 4
        await reconnected.shutdown()
        assert await again.connect(b.state_dir, b.container_id) is None
        assert json.loads((b.state_dir / "exit.json").read_text())["exit_code"] == 4
    run(tmp_path, body)


def test_create_failure_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["true"])
        (b.base / "lower").rename(b.base / "gone")
        with pytest.raises(errdefs.System, match="mount overlay overlay on .*No such file"):
            await h.manager.spawn(b.request(h.runtime, h.runtime_root))
        assert not is_mounted(b.rootfs)
        assert not (b.state_dir / "shim.sock").exists()
    run(tmp_path, body)


def test_a_shim_dying_during_create_does_not_hang_spawn(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["true"])
        runtime = f"{SUPPORT}:CrashAfterCreateRuntime"
        try:
            with pytest.raises(errdefs.System, match="died during create"):
                await asyncio.wait_for(h.manager.spawn(b.request(runtime, h.runtime_root)), 10)
        finally:
            pid_file = h.runtime_root / b.container_id / "pid"
            if pid_file.exists():  # (the runtime kills the shim's create helper: the shim
                init_pid = int(pid_file.read_text())  # itself deletes the container)
                os.kill(init_pid, signal.SIGKILL)  # the orphaned init, blocked before exec
                await wait_gone(init_pid)
            if is_mounted(b.rootfs):
                os.system(f"umount {b.rootfs}")
    run(tmp_path, body)


@pytest.mark.parametrize("when", ["during_create", "before_start"])
def test_a_daemon_leaving_during_the_spawn_leaves_nothing_behind(tmp_path: Path, when: str) -> None:
    """The daemon is killed (or gives the start up) once the shim has its request, during the
    create (its answer cannot be sent) or, in a run, after it but before the start (the shim
    waits for an attach that never comes): nobody will start or delete that container, and a
    restarted daemon may have looked for its shim.sock too early; the shim undoes the create
    itself (init killed, rootfs unmounted) and exits."""
    async def body(h: Harness) -> None:
        b = h.bundle(["sleep", "60"])
        runtime = f"{SUPPORT}:SlowCreateRuntime" if when == "during_create" else h.runtime
        spawn = {"op": "spawn", "request": spawn_request_to_json(b.request(runtime, h.runtime_root))}
        if when == "before_start":
            spawn["start"] = 1  # one attach to wait for: it never comes
        reader, writer = await asyncio.open_unix_connection(str(h.manager.zygote_socket))
        init_pid = shim_pid = 0

        async def reply() -> dict:
            header = await asyncio.wait_for(reader.readexactly(protocol.HEADER.size), 10)
            _, length = protocol.HEADER.unpack(header)
            return json.loads(await reader.readexactly(length))
        try:
            writer.write(protocol.frame(protocol.REQUEST, json.dumps(spawn).encode()))
            shim_pid = int((await reply())["shim_pid"])
            if when == "before_start":
                assert (await reply())["pid"] > 0  # created
            writer.close()  # the daemon is gone
            gone = await wait_gone(shim_pid, 10)
            pid_file = h.runtime_root / b.container_id / "pid"
            if pid_file.exists():
                init_pid = int(pid_file.read_text())
            assert gone and not pid_file.exists()  # runtime delete ran: its init was killed
            assert not is_mounted(b.rootfs)
            assert not (b.state_dir / "shim.sock").exists()
        finally:
            for pid in (init_pid, shim_pid):  # the shim's create helper leaves on its pair's EOF
                if pid and pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            if is_mounted(b.rootfs):
                os.system(f"umount {b.rootfs}")
    run(tmp_path, body)


def test_a_dead_zygote_is_replaced_on_the_next_spawn(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        zygote = h.manager._proc
        zygote.kill()
        await zygote.wait()
        handle = await h.spawn(h.bundle(["true"]))
        assert h.manager._proc is not zygote
        status, _ = await run_to_exit(handle)
        assert status.exit_code == 0
        await handle.shutdown()
    run(tmp_path, body)


def test_log_rotation(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        b = h.bundle(["sh", "-c", "seq 1 2000"])
        handle = await h.spawn(b, log_max_size=4096, log_max_files=3)
        status, chunks = await run_to_exit(handle, stderr=False)
        assert status.exit_code == 0
        assert len(joined(chunks, 1).splitlines()) == 2000
        sizes = [os.path.getsize(f"{b.log_path}{suffix}") for suffix in ("", ".1", ".2")]
        assert all(size <= 4096 for size in sizes)
        assert not os.path.exists(f"{b.log_path}.3")
        records, _ = read_logs(b.log_path, max_files=3)
        numbers = [int(r.data) for r in records]
        assert numbers == list(range(numbers[0], 2001))  # the newest lines, in order
        await handle.shutdown()
    run(tmp_path, body)


def test_measure_start_latency_and_idle_pss(tmp_path: Path) -> None:
    """Prints spawn->exit time for `true` and an idle shim's PSS and private memory (what each
    more shim costs: the zygote's pages are shared copy-on-write)."""
    async def body(h: Harness) -> None:
        bundles = [h.bundle(["true"]) for _ in range(5)]
        timings = []
        for b in bundles:
            t0 = time.perf_counter()
            handle = await h.spawn(b, log=False)
            await handle.start()
            await handle.wait()
            timings.append((time.perf_counter() - t0) * 1000)
            await handle.shutdown()
        idle = [await h.spawn(h.bundle(["sleep", "100"])) for _ in range(3)]
        for handle in idle:
            await handle.start()
        await asyncio.sleep(0.3)
        rollup = smaps_rollup(idle[0].shim_pid)
        uss_kb = rollup["Private_Clean"] + rollup["Private_Dirty"]
        print(f"\nshim spawn->start->exit of `true`: {', '.join(f'{t:.1f}' for t in timings)} ms; "
              f"idle shim (3 alive): PSS {rollup['Pss']} kB, private {uss_kb} kB")
        assert uss_kb < 4 * 1024
        for handle in idle:
            await handle.kill(signal.SIGKILL)
            await handle.wait()
            await handle.shutdown()
    run(tmp_path, body)


def test_page_lists_are_learned_once_and_go_with_their_zygote(tmp_path: Path) -> None:
    # runtime.pages: the first create helper of a zygote lists the pages it wrote, and those
    # its shim wrote, beside the zygote's socket; a list another zygote left is removed at
    # start, ours when we stop
    stale = tmp_path / "helper-pages.1"
    stale.write_bytes(b"\0" * 8)

    async def body(h: Harness) -> None:
        assert not stale.exists()
        for _ in range(2):
            handle = await h.spawn(h.bundle(["true"]))
            await handle.start()
            assert (await asyncio.wait_for(handle.wait(), 10)).exit_code == 0
            await handle.shutdown()
        for kind in ("helper", "shim"):
            listing = [p for p in tmp_path.iterdir() if p.name.startswith(f"{kind}-pages.")]
            assert len(listing) == 1 and listing[0].stat().st_size > 8 * 100, kind
    run(tmp_path, body)
    assert not [p for p in tmp_path.iterdir() if "-pages." in p.name]
