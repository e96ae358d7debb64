"""A slow volume plugin delays only the request that uses it: while a container create waits
on the plugin's VolumeDriver.Create, the daemon still answers /_ping at once."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests import daemon_harness


class HeldPlugin:
    """A volume plugin (in this process) that holds its answer to VolumeDriver.Create until
    ``release`` is set; every other call is answered at once."""

    def __init__(self, sock_path: Path, state: Path) -> None:
        self.create_arrived = threading.Event()
        self.release = threading.Event()
        self.state = state
        state.mkdir(parents=True)
        sock_path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(sock_path))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            path = head.split(b" ")[1].decode()
            name = (json.loads(body) if body.strip() else {}).get("Name", "")
            answer: dict = {"Err": ""}
            if path == "/Plugin.Activate":
                answer = {"Implements": ["VolumeDriver"]}
            elif path == "/VolumeDriver.Create":
                self.create_arrived.set()
                self.release.wait(30)
                (self.state / name).mkdir(exist_ok=True)
            elif path in ("/VolumeDriver.Mount", "/VolumeDriver.Path"):
                answer = {"Mountpoint": str(self.state / name), "Err": ""}
            elif path == "/VolumeDriver.Get":
                answer = {"Volume": {"Name": name, "Mountpoint": str(self.state / name)}, "Err": ""}
            elif path == "/VolumeDriver.List":
                answer = {"Volumes": [], "Err": ""}
            elif path == "/VolumeDriver.Capabilities":
                answer = {"Capabilities": {"Scope": "local"}}
            out = json.dumps(answer).encode()
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(out)).encode() + b"\r\nConnection: close\r\n\r\n" + out)
            except OSError:
                pass

    def close(self) -> None:
        self.release.set()
        self.sock.close()


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(self._path))


def _ping_seconds(sock: Path) -> float:
    conn = _Unix(sock)
    try:
        started = time.monotonic()
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"OK"
        return time.monotonic() - started
    finally:
        conn.close()


@pytest.fixture
def env():
    root = Path(tempfile.mkdtemp(prefix="dy-vol-slow-"))
    plugin = HeldPlugin(root / "plugins/held.sock", root / "state")
    handle = None
    try:
        handle = daemon_harness.new_daemon(["--plugin-dir", str(root / "plugins")])
        daemon_harness.load_busybox(handle)
        yield handle, plugin
    finally:
        plugin.close()
        if handle is not None:
            daemon_harness.destroy(handle)
        shutil.rmtree(root, ignore_errors=True)


def test_slow_plugin_does_not_stall_the_daemon(env):
    handle, plugin = env
    create = subprocess.Popen(
        [daemon_harness.DOCKER, "create", "--network", "none", "--mount",
         "type=volume,src=slowvol,dst=/data,volume-driver=held", "busybox", "true"],
        env=handle.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert plugin.create_arrived.wait(30), handle.log()[-2000:]
        # the create is now held inside the plugin; the daemon answers other requests meanwhile
        pings = [_ping_seconds(handle.socket) for _ in range(5)]
        assert create.poll() is None, "the create did not wait for the plugin"
        assert max(pings) < 1.0, pings
        r = handle.docker("volume", "ls", "--format", "{{.Name}}")
        assert r.returncode == 0
    finally:
        plugin.release.set()
        out, err = create.communicate(timeout=60)
    assert create.returncode == 0, err.decode()
    cid = out.decode().strip()
    mounts = json.loads(handle.docker("inspect", "-f", "{{json .Mounts}}", cid).stdout)
    assert (mounts[0]["Name"], mounts[0]["Driver"]) == ("slowvol", "held")
    assert handle.docker("rm", cid).returncode == 0
