"""Shim wire format, spawn request encoding, rootfs mount options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.shim import protocol as P
from dockyard.shim.client import SpawnRequest
from dockyard.shim.manager import spawn_request_to_json
from dockyard.runtime.syscalls import MS_BIND, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC
from dockyard.shim.rootfs import mount_target, split_options
from dockyard.shim.shim import spawn_request_from_json


def test_frames_reassemble_from_any_split() -> None:
    wire = P.frame(P.STDOUT, b"hello") + P.json_frame(P.REPLY, {"ok": True}) + P.frame(P.OUTPUT_END)
    reader = P.FrameReader()
    got = []
    for i in range(len(wire)):
        got += reader.feed(wire[i:i + 1])
    assert got == [(P.STDOUT, b"hello"), (P.REPLY, b'{"ok":true}'), (P.OUTPUT_END, b"")]


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(ValueError):
        P.FrameReader().feed(P.HEADER.pack(P.STDIN, P.MAX_PAYLOAD + 1))


def test_errors_keep_their_class_across_the_wire() -> None:
    body = json.loads(json.dumps(P.error_reply(errdefs.Conflict("Container abc is not running"))))
    with pytest.raises(errdefs.Conflict, match="Container abc is not running"):
        P.raise_for_reply(body)
    with pytest.raises(errdefs.System, match="boom"):
        P.raise_for_reply(P.error_reply(OSError("boom")))
    with pytest.raises(errdefs.System):
        P.raise_for_reply({"ok": False, "error": "x", "kind": "DockyardError"})  # not a leaf class
    with pytest.raises(errdefs.System):
        P.raise_for_reply({"ok": False, "error": "x", "kind": "__class__"})

    class ExecNotFound(errdefs.InvalidParameter):
        pass
    assert P.error_reply(ExecNotFound("exec: nope"))["kind"] == "InvalidParameter"
    assert P.raise_for_reply({"ok": True, "pid": 5}) == {"ok": True, "pid": 5}


def test_spawn_request_round_trips() -> None:
    request = SpawnRequest(
        container_id="c1", bundle=Path("/run/b"), state_dir=Path("/run/s"), runtime="dockyard",
        runtime_root=Path("/run/r"), tty=True, open_stdin=True, stdin_once=False,
        rootfs_mounts=(Mount("overlay", "overlay", "", ("lowerdir=/l", "upperdir=/u", "workdir=/w")),),
        log_path=Path("/var/c.log"), log_max_size=1024, log_max_files=3)
    assert spawn_request_from_json(json.loads(json.dumps(spawn_request_to_json(request)))) == request
    without_log = SpawnRequest(**{**request.__dict__, "log_path": None})
    assert spawn_request_from_json(spawn_request_to_json(without_log)).log_path is None


def test_mount_options_split_into_flags_and_data() -> None:
    assert split_options(("lowerdir=/a:/b", "upperdir=/u", "workdir=/w")) == (
        0, "lowerdir=/a:/b,upperdir=/u,workdir=/w")
    assert split_options(("rbind", "ro", "nosuid")) == (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID, "")
    assert split_options(("ro", "rw")) == (0, "")
    assert split_options(("bind", "private")) == (MS_BIND | MS_PRIVATE, "")
    assert mount_target(Path("/b/rootfs"), Mount("overlay", "overlay")) == Path("/b/rootfs")
    assert mount_target(Path("/b/rootfs"), Mount("bind", "/x", "/data")) == Path("/b/rootfs/data")
