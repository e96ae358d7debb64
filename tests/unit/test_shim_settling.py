"""A shim defers every request but attaches until it serves: a run's create helper tells the
daemon of the start before the shim has taken the create's and the start's answers."""

from __future__ import annotations

import json
import os
import selectors
import socket
from pathlib import Path

from dockyard.runtime.linux import DockyardRuntime
from dockyard.shim import protocol as P
from dockyard.shim import shim


def test_requests_other_than_attach_wait_until_the_shim_serves(tmp_path: Path) -> None:
    request = shim.spawn_request_from_json({
        "container_id": "0" * 64, "bundle": str(tmp_path), "state_dir": str(tmp_path), "runtime": "dockyard",
        "runtime_root": str(tmp_path), "tty": False, "open_stdin": False, "stdin_once": False,
        "rootfs_mounts": []})
    ours, theirs = socket.socketpair()
    s = shim.Shim(request, DockyardRuntime(tmp_path))
    try:
        s.clients[ours.fileno()] = shim._Client(ours)
        s.sel.register(ours, selectors.EVENT_READ, s._on_client)
        theirs.sendall(P.json_frame(P.REQUEST, {"op": "state"}))
        s._on_client(ours.fileno(), selectors.EVENT_READ)
        theirs.setblocking(False)
        assert _replies(theirs) == []  # still creating: it waits
        s.status, s.init_pid = "running", 1
        s.serve_deferred()
        assert [r["status"] for r in _replies(theirs)] == ["running"]
    finally:
        s.sel.close()
        ours.close()
        theirs.close()


def _replies(sock: socket.socket) -> list[dict]:
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return []
    return [json.loads(payload) for _, payload in P.FrameReader().feed(data)]


def test_stdin_sent_before_the_create_answer_is_written_then_closed(tmp_path: Path) -> None:
    """A run's attach session may write and close the container's stdin as soon as the helper
    told the daemon of the start: before the shim has the stdin pipe from the create's answer.
    What came is written once the pipe is there, then the pipe closed (StdinOnce)."""
    request = shim.spawn_request_from_json({
        "container_id": "0" * 64, "bundle": str(tmp_path), "state_dir": str(tmp_path), "runtime": "dockyard",
        "runtime_root": str(tmp_path), "tty": False, "open_stdin": True, "stdin_once": True,
        "rootfs_mounts": []})
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    s = shim.Shim(request, DockyardRuntime(tmp_path))
    try:
        client = s.clients[ours.fileno()] = shim._Client(ours)
        client.attached = client.stdin = True
        s.sel.register(ours, selectors.EVENT_READ, s._on_client)
        theirs.sendall(P.frame(P.STDIN, b"piped\n") + P.frame(P.STDIN_CLOSE))
        s._on_client(ours.fileno(), selectors.EVENT_READ)
        s._take_stdio(["stdin"], [write_end])  # what create() does with the answer
        s._flush_early_stdin()
        assert os.read(read_end, 100) == b"piped\n"
        assert os.read(read_end, 100) == b""  # and closed: the process sees EOF
    finally:
        s.sel.close()
        ours.close()
        theirs.close()
        os.close(read_end)
