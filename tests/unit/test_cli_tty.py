"""`run -it`: raw terminal, resize at start, detach keys, terminal restored (a pty stands in for the user)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.unit.test_cli_fake_api import FakeServer, fake_api  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def _spawn(server: FakeServer, *args: str) -> tuple[subprocess.Popen[bytes], int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = server.host  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, start_new_session=True)
    return proc, master, slave


def _read_all(master: int, proc: subprocess.Popen[bytes]) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
        if proc.poll() is not None and not data:
            break
    return out


def test_run_tty_detach_keys_restore_terminal(fake_api: FakeServer) -> None:  # noqa: F811
    fake_api.state.add_image("busybox:latest")
    proc, master, slave = _spawn(fake_api, "run", "-it", "--name", "tt", "busybox", "sleep")
    try:
        before = termios.tcgetattr(slave)
        deadline = time.time() + 10
        while not any(p.endswith("/resize") for _, p, _, _ in fake_api.state.requests):
            assert time.time() < deadline, "no resize request"
            time.sleep(0.05)
        assert termios.tcgetattr(slave)[3] & termios.ECHO == 0  # raw mode while attached
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q
        assert proc.wait(10) == 0
        assert termios.tcgetattr(slave) == before
        resize = next(q for _, p, q, _ in fake_api.state.requests if p.endswith("/resize"))
        assert resize == {"h": ["33"], "w": ["101"]}
        assert fake_api.state.find_container("tt").status == "running"
        body = next(b for _, p, _, b in fake_api.state.requests if p == "/containers/create")
        assert body["Tty"] and body["OpenStdin"] and body["AttachStdin"] and body["StdinOnce"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def test_run_tty_output_is_raw(fake_api: FakeServer) -> None:  # noqa: F811
    fake_api.state.add_image("busybox:latest")
    proc, master, slave = _spawn(fake_api, "run", "-t", "--rm", "busybox", "echo", "hi")
    try:
        assert proc.wait(10) == 0
        os.close(slave)
        slave = -1
        assert b"hi" in _read_all(master, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_tty_without_terminal_is_refused(fake_api: FakeServer) -> None:  # noqa: F811
    fake_api.state.add_image("busybox:latest")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = fake_api.host  # type: ignore[attr-defined]
    r = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "run", "-it", "busybox", "sh"], input=b"",
                       capture_output=True, env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr == b"the input device is not a TTY\n"


def _pty_output(argv: list[str], host: str) -> tuple[int, bytes]:
    import select
    import shutil

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = host
    cfg = None
    if argv[0] == "docker":
        import tempfile

        cfg = tempfile.mkdtemp(prefix="dockyard-cli-dockercfg-")
        env["DOCKER_CONFIG"] = cfg
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    out = b""
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        return proc.wait(10), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
        if cfg:
            shutil.rmtree(cfg)


@pytest.mark.parametrize("ref", ["hello:progress", "hello:plain"])
def test_pull_progress_on_a_terminal_like_docker(fake_api: FakeServer, ref: str) -> None:  # noqa: F811
    import shutil

    if not shutil.which("docker"):
        pytest.skip("no docker CLI to compare with")
    fake_api.state.add_image(ref, pullable_only=True)
    ours = _pty_output([sys.executable, "-m", "dockyard.cli.main", "pull", ref], fake_api.host)  # type: ignore[attr-defined]
    fake_api.state.images.clear()
    theirs = _pty_output(["docker", "pull", ref], fake_api.host)  # type: ignore[attr-defined]
    assert ours == theirs
