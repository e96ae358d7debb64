"""The per-container shim: one small single-threaded supervisor per container.

Forked from the zygote (``dockyard.shim.zygote``), detached from the daemon. Its
``Helper`` (a child forked ahead, with the spare shim) mounts the container's rootfs,
makes its stdio (pipes or a pty), creates and starts it through the runtime, and
exits; the shim owns the stdio, copies output to the log and to attached clients,
reaps the init (our runtime's helper forks it as our child; another runtime's
comes to us when the helper exits, as we are a child subreaper), records
``exit.json``, and serves ``<state_dir>/shim.sock`` (protocol:
``dockyard.shim.protocol``). A selectors loop, no asyncio, no threads: after the
fork it touches few Python objects so most of the zygote's pages stay shared
(that is also why the create and start run in the short-lived helper).

Life of a shim::

    create (the helper: mount, stdio, runtime create) -> created
        created --start (the helper: runtime start; it exits)--> running <-pause/resume-> paused
        running/paused --init reaped--> draining (output to EOF, at most DRAIN_TIMEOUT)
        draining --> stopped (exit.json written, waiters answered, attach streams ended,
                              then runtime delete and unmount)
        created/stopped --shutdown (or EXITED_LINGER without one)--> runtime delete, unmount, exit
"""

from __future__ import annotations

import errno
import fcntl
import functools
import importlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import termios
import time
import traceback
from pathlib import Path

import msgspec

from dockyard import errdefs
from dockyard.mount import Mount
from dockyard.oci import defaults, runtime_spec
from dockyard.oci.defaults import capability_list
from dockyard.oci.seccomp_default import default_seccomp
from dockyard.runtime import caps, pages
from dockyard.runtime import syscalls as sc
from dockyard.runtime.base import Runtime
from dockyard.runtime.cgroups import manager_for
from dockyard.runtime.linux import (DockyardRuntime, compiled_seccomp, discard_prepared, preload_config,
                                    prepare_init)
from dockyard.runtime.runc import RuncRuntime
from dockyard.runtime.validate import validate
from dockyard.shim import protocol as P
from dockyard.shim import rootfs
from dockyard.shim.client import SpawnRequest
from dockyard.shim.jsonlog import format_time
from dockyard.shim.logwriter import LogWriter, open_log_writer
from dockyard.shim.sockpath import short_path

DRAIN_TIMEOUT = 2.0  # after the init exits, how long orphans may keep its output open
EXITED_LINGER = 24 * 3600.0  # a stopped shim waits this long for the daemon to collect the exit
ORPHAN_CHECK = 10.0  # how often a stopped shim looks whether its container was removed
HIGH_WATER = 256 * 1024  # per-client output backlog at which the shim stops reading the container
CONSOLE_TIMEOUT = 10.0
HELPER_REPLY_MAX = 65536  # one create request or reply between a shim and its helper


def load_runtime(name: str, root: Path, helper: bool = False) -> Runtime:
    """``dockyard`` -> our in-process runtime; ``module:factory`` -> a Python factory called with
    ``root`` (tests and embedders); anything else -> the path of a runc-compatible binary.
    ``helper``: for the create helper, whose inits are the shim's children (``siblings``)."""
    if name == "dockyard":
        return DockyardRuntime(root, siblings=helper)
    if ":" in name:
        module, _, factory = name.partition(":")
        return getattr(importlib.import_module(module), factory)(root)
    return RuncRuntime(name, root)


def warm_up() -> None:
    """Run once in the zygote, so every shim inherits the results: msgspec builds its decoder
    for ``Spec`` on first use (after the fork that would be ~1 MB private per shim), and the
    BPF of Docker's default seccomp profile is compiled once instead of per container, and the
    kernel's last capability, the host's cgroup mounts and the zygote's own cgroups (a shim's
    too) are read once (0.6 ms)."""
    spec = runtime_spec.Spec(process=runtime_spec.Process(args=["true"], cwd="/"),
                             root=runtime_spec.Root(path="/"))
    runtime_spec.decode(runtime_spec.encode(spec))
    compiled_seccomp(default_seccomp(capability_list()))
    caps.last_cap()
    manager_for("/")
    _rehearse_requests()
    _REHEARSAL.append(_sample_create())


def _sample_create() -> tuple[bytes, bytes]:
    """A spawn request and config.json like the daemon's, for the helpers' rehearsal."""
    cid = "0" * 64
    spec = defaults.base_spec(["true"], ["PATH=/usr/bin:/bin"], "/", f"/nonexistent/{cid}/rootfs", cid[:12])
    spec.linux.cgroups_path = f"/nonexistent/{cid}"
    request = {"container_id": cid, "bundle": f"/nonexistent/{cid}", "state_dir": f"/nonexistent/{cid}",
               "runtime": DockyardRuntime.name, "runtime_root": "/nonexistent", "tty": False,
               "open_stdin": False, "stdin_once": False, "log_path": f"/nonexistent/{cid}/log.json",
               "log_max_size": None, "log_max_files": 1, "log_driver": "json-file", "log_compress": False,
               "log_attrs": [], "rootfs_mounts": [{"type": "overlay", "source": "overlay", "target": "",
                                                   "options": ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"]}]}
    return json.dumps({"op": "spawn", "request": request, "start": 1}).encode(), runtime_spec.encode(spec)


_REHEARSAL: list[tuple[bytes, bytes]] = []  # the sample create (the zygote's warm_up makes it)
# where this zygote's prepared inits and create helpers list the pages they write (runtime.pages)
PAGE_LISTS: dict[str, str] = {}


def place_page_lists(directory: str, owner: int) -> None:
    """Put the page lists in ``directory``, named for the zygote ``owner`` (its pid: the layout
    they describe), and remove lists and temp files any earlier zygote left there."""
    kinds = ("init", "helper", "shim")
    for name in os.listdir(directory):
        if name.lstrip(".").startswith(tuple(f"{kind}-pages." for kind in kinds)):
            Path(directory, name).unlink(missing_ok=True)
    PAGE_LISTS.update((kind, os.path.join(directory, f"{kind}-pages.{owner}")) for kind in kinds)


def _rehearse_create() -> None:
    """What a create runs first (the request and config.json decoded, the runtime loaded and
    its checks, the cgroup manager, the seccomp program's lookup, the reply encoded), run on the
    sample while the helper waits for its request: the pages this touches are copied from the
    zygote now instead of on the start path (~250 copy-on-write faults, ~0.8 ms here)."""
    for spawn, config in _REHEARSAL:
        request = spawn_request_from_json(json.loads(spawn)["request"])
        load_runtime(request.runtime, request.runtime_root, helper=True)
        spec = runtime_spec.decode(config)
        validate(spec)
        manager_for(spec.linux.cgroups_path)
        compiled_seccomp(spec.linux.seccomp)
        json.dumps({"ok": True, "pid": 0, "root": spec.root.path, "cgroups_path": spec.linux.cgroups_path,
                    "fds": ["stdout", "stderr"]})


WARM_ROUNDS = 64  # enough calls for CPython to quicken and specialize the code


def _rehearse_requests() -> None:
    """Run what every shim runs for the daemon (a spawn request decoded, framed requests read,
    dispatched and answered) until the interpreter has specialized that code: it rewrites a
    code object's bytecode in place as it warms up, which after the fork would dirty those
    pages in every shim (~300 kB measured on a comparable slice)."""
    body = {"container_id": "0" * 64, "bundle": "/", "state_dir": "/", "runtime": "dockyard",
            "runtime_root": "/", "tty": False, "open_stdin": False, "stdin_once": False,
            "rootfs_mounts": [{"type": "overlay", "source": "overlay", "options": ["lowerdir=/"]}]}
    request = spawn_request_from_json(body)
    ours, theirs = socket.socketpair()
    rehearsal = Shim(request, DockyardRuntime(Path("/")))
    rehearsal.deferred = None  # serving
    try:
        client = _Client(ours)
        rehearsal.clients[ours.fileno()] = client
        rehearsal.sel.register(ours, selectors.EVENT_READ, rehearsal._on_client)
        reader = P.FrameReader()
        for _ in range(WARM_ROUNDS):
            spawn_request_from_json(body)
            theirs.sendall(P.json_frame(P.REQUEST, {"op": "state"}))
            rehearsal._on_client(ours.fileno(), selectors.EVENT_READ)
            reader.feed(theirs.recv(65536))
    finally:
        rehearsal.sel.close()
        os.close(rehearsal.sigchld_r)
        os.close(rehearsal.sigchld_w)
        ours.close()
        theirs.close()


def spawn_request_from_json(body: dict) -> SpawnRequest:
    return SpawnRequest(
        container_id=body["container_id"],
        bundle=Path(body["bundle"]),
        rootfs_mounts=tuple(Mount(type=m["type"], source=m["source"], target=m.get("target", ""),
                                  options=tuple(m.get("options", ())))
                            for m in body["rootfs_mounts"]),
        state_dir=Path(body["state_dir"]),
        runtime=body["runtime"],
        runtime_root=Path(body["runtime_root"]),
        tty=bool(body["tty"]),
        open_stdin=bool(body["open_stdin"]),
        stdin_once=bool(body["stdin_once"]),
        log_path=Path(body["log_path"]) if body.get("log_path") else None,
        log_max_size=body.get("log_max_size"),
        log_max_files=int(body.get("log_max_files", 1)),
        log_driver=body.get("log_driver", "json-file"),
        log_compress=bool(body.get("log_compress", False)),
        log_attrs=tuple((str(k), str(v)) for k, v in body.get("log_attrs", ())),
    )


def write_state_file(path: Path, data: bytes) -> None:
    """Write a file of the exec dir (shim.pid, init.pid, exit.json) atomically: temp file then
    rename, so a reader never sees half of it. No fsync: these describe processes, which a
    power loss ends anyway, and on a disk-backed /run each fsync pair costs ~1 ms of start time."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class _Client:
    """One connection on shim.sock."""

    __slots__ = ("sock", "frames", "wbuf", "events", "stdin", "stdout", "stderr", "attached",
                 "closing", "stdin_done", "exec")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = P.FrameReader()
        self.wbuf = bytearray()
        self.events = selectors.EVENT_READ
        self.attached = self.stdin = self.stdout = self.stderr = False
        self.closing = False  # close once wbuf is flushed
        self.stdin_done = False
        self.exec: _Process | None = None  # the exec'd process this connection started and streams


class _Process:
    """A process of the container whose stdio the shim owns: the init (id "") or one exec'd
    into it. Its stdio (pipes or a pty master); for an exec, the client that streams it (none
    when detached: the output is dropped) and its exit."""

    __slots__ = ("id", "pid", "tty", "master", "outputs", "stdin_fd", "stdin_buf", "stdin_closing",
                 "client", "exit_code", "drain_deadline", "paused")

    def __init__(self, exec_id: str, tty: bool) -> None:
        self.id = exec_id
        self.pid = 0
        self.tty = tty
        self.master: int | None = None
        self.outputs: dict[int, str] = {}  # our read ends -> "stdout"/"stderr"
        self.stdin_fd: int | None = None
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.client: _Client | None = None
        self.exit_code: int | None = None
        self.drain_deadline: float | None = None
        self.paused = False  # output not read while a client's backlog is over HIGH_WATER


class Shim:
    def __init__(self, request: SpawnRequest, runtime: Runtime) -> None:
        self.request = request
        self.id = request.container_id
        self.runtime = runtime
        self.state_dir = request.state_dir
        self.sock_path = request.state_dir / "shim.sock"
        self.status = "creating"
        self.init_pid = 0
        self.exit: dict | None = None  # exit.json's object once stopped
        self.pending_exit: dict = {}  # exit code and time, while the output drains
        self.root = Path()
        self.cgroups_path: str | None = None
        self.mounted = False
        self.sel = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.init = _Process("", request.tty)  # the container's own stdio
        self.stdin_once_used = False
        self.log: LogWriter | None = None
        self.clients: dict[int, _Client] = {}
        self.waiters: list[_Client] = []
        self.shutdown_waiters: list[_Client] = []
        self.drain_deadline: float | None = None
        self.linger_deadline: float | None = None
        self.running = True
        self.execs: dict[str, _Process] = {}  # started and not yet finished
        self.exec_pids: dict[int, _Process] = {}  # not yet reaped
        self.exec_exits: dict[str, int] = {}  # finished, until exec_wait collects them
        self.exec_waiters: dict[str, list[_Client]] = {}
        self.sigchld_r, self.sigchld_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.helper: Helper | None = None  # creates and starts the container (see Helper)
        self.release_due = False  # stopped, the container not yet released (see _finish)
        # a spawn that also starts (``run``): its connection, which gets the start's outcome once
        # ``start_after`` clients are attached (the daemon's attach sessions waiting for the run)
        self.start_conn: socket.socket | None = None
        self.start_after = 0
        self.start_sent = False  # the helper was told to start (maybe before its create's reply)
        self.told = False  # the helper told the daemon the init's pid and the start itself
        # until serve(): requests other than attaches wait here, for the daemon may hear of the
        # start (from the helper) before we have taken the create's and the start's answers
        self.deferred: list[tuple[_Client, bytes]] | None = []

    # ---- create -------------------------------------------------------------

    def prepare(self, helper: Helper) -> None:
        """What the shim sets up while ``helper`` creates the container (``Helper.spawn``):
        the log writer and ``shim.sock``, bound from here on (attach requests may queue on it)."""
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd gets written
        signal.set_wakeup_fd(self.sigchld_w)
        self.sel.register(self.sigchld_r, selectors.EVENT_READ, self._on_sigchld)
        self.helper = helper  # until the start
        try:
            self.log = open_log_writer(self.request)
            # while the helper works (the init, forked by the helper, cannot inherit it)
            self._listen()
        except BaseException:
            self._undo_create()
            raise

    def create(self) -> None:
        """Take the result of the helper's create: the init's pid and our ends of its stdio; on
        failure undo everything and raise. Meanwhile shim.sock is served: a run's attach requests
        are taken as they come, and the start sent to the helper as soon as they are in."""
        helper = self.helper
        assert helper is not None
        try:
            self._serve_until_readable(helper.sock, helper.pidfd)
            # the init is our child (our runtime's ``siblings``), or the helper's, then ours
            # when the helper exits (we are a child subreaper)
            created, fds = helper.created()
            self.mounted = True
            self.root = Path(created["root"])
            self.cgroups_path = created.get("cgroups_path")
            self.init_pid = int(created["pid"])
            self.told = bool(created.get("told"))
            self._take_stdio(created["fds"], fds)
            self._flush_early_stdin()
        except BaseException:
            self._undo_create()
            raise
        self.status = "created"
        if not self.told:  # else the helper wrote it
            write_state_file(self.state_dir / "init.pid", str(self.init_pid).encode())

    def _serve_until_readable(self, *fds: int | socket.socket) -> None:
        """Dispatch shim.sock's events (accepts, requests) until one of ``fds`` is readable."""
        for fd in fds:
            self.sel.register(fd, selectors.EVENT_READ, None)
        try:
            while True:
                ready = self.sel.select()
                if any(key.data is None for key, _ in ready):
                    return
                for key, events in ready:
                    if key.data in (self._accept, self._on_client):
                        try:
                            key.data(key.fd, events)
                        except Exception:  # as in serve: log it, the create goes on
                            traceback.print_exc()
        finally:
            for fd in fds:
                self.sel.unregister(fd)

    def _undo_create(self) -> None:
        try:
            self._cleanup(delete=True)
        except Exception:  # the create error is the one to report; this goes to shim.log
            traceback.print_exc()

    def request_start(self, conn: socket.socket, attaches: int) -> None:
        """Start the container once ``attaches`` clients have attached (at once for none) and
        answer the outcome on ``conn``: the daemon's run without a start request of its own.
        Called before the create: the helper gets the start as early as it can."""
        self.start_conn, self.start_after = conn, attaches
        self._start_if_attached()

    def watch_start_conn(self) -> None:
        """Created, waiting for the attaches: an EOF on the spawn connection now means the daemon
        gave the run up (or died)."""
        if self.start_conn is not None:
            self.sel.register(self.start_conn, selectors.EVENT_READ, self._on_start_conn)

    def _on_start_conn(self, fd: int, events: int) -> None:
        try:
            gone = not self.start_conn or not self.start_conn.recv(1)
        except OSError:
            gone = True
        if gone:
            print(f"shim: the daemon left before the start of {self.id}; deleting it", file=sys.stderr)
            self.sel.unregister(fd)
            self.start_conn = None
            self._cleanup(delete=True)
            self.running = False

    def _start_if_attached(self) -> None:
        if (self.start_conn is None or self.start_sent
                or sum(c.attached for c in self.clients.values()) < self.start_after):
            return
        assert self.helper is not None
        self.start_sent = True
        try:
            self.helper.send_start()
        except OSError:  # the helper is gone (a failed create): created() reports why
            return
        if self.status == "created":
            self.report_start()

    def report_start(self) -> None:
        """Take the helper's answer to the start sent and tell the daemon (spawn connection)."""
        conn, self.start_conn = self.start_conn, None
        assert conn is not None
        if self.sel.get_map().get(conn.fileno()) is not None:  # watched for the daemon's EOF
            self.sel.unregister(conn)
        try:
            self._await_started()
            reply = {"ok": True}
        except Exception as err:
            reply = P.error_reply(err)
        if not self.told:
            _tell(conn, reply)
        conn.close()

    def _take_stdio(self, names: list[str], fds: list[int]) -> None:
        """Our ends of the container's stdio, as the helper named them: a pty master, or the
        stdin pipe's write end and the stdout/stderr pipes' read ends (non-blocking)."""
        for name, fd in zip(names, fds):
            if name == "master":
                self.init.master = fd
                self.init.outputs[fd] = "stdout"
                if self.request.open_stdin:
                    self.init.stdin_fd = os.dup(fd)  # its own selector entry for writes
            elif name == "stdin":
                self.init.stdin_fd = fd
                continue
            else:
                self.init.outputs[fd] = name
            self.sel.register(fd, selectors.EVENT_READ, self._on_output)

    def _flush_early_stdin(self) -> None:
        """What attach sessions sent before the stdin came (``_stdin_to_come``): written now,
        and the stdin closed after it if a session closed it; dropped without a stdin."""
        init = self.init
        if init.stdin_fd is None:
            init.stdin_buf.clear()
            init.stdin_closing = False
        elif init.stdin_buf or init.stdin_closing:
            self._flush_stdin(init, init.stdin_fd, selectors.EVENT_WRITE)

    def _listen(self) -> None:
        self.listener = unix_listener(self.sock_path)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, self._accept)

    # ---- loop ---------------------------------------------------------------

    def serve(self) -> None:
        self._reap()  # the init may have died before the handler was of use
        self.serve_deferred()
        while self.running:
            timeout = None
            deadlines = [d for d in (self.drain_deadline or self.linger_deadline,
                                     *(ex.drain_deadline for ex in self.execs.values())) if d is not None]
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic())
            if self.linger_deadline is not None:
                timeout = min(timeout, ORPHAN_CHECK) if timeout is not None else ORPHAN_CHECK
            for key, events in self.sel.select(timeout):
                try:
                    key.data(key.fd, events)
                except Exception:  # a bug must not orphan the container: log it, keep serving
                    traceback.print_exc()
                    client = self.clients.get(key.fd)
                    if client is not None:
                        self._drop(client)
                if not self.running:
                    break
            now = time.monotonic()
            for ex in list(self.execs.values()):
                if ex.drain_deadline is not None and now >= ex.drain_deadline:
                    self._finish_exec(ex)
            if self.drain_deadline is not None and now >= self.drain_deadline:
                self._finish()
            elif self.linger_deadline is not None and (now >= self.linger_deadline
                                                       or not self.state_dir.exists()):
                # nobody came for the exit in time, or the container was removed meanwhile
                # (its state dir is gone): nothing is left to serve
                self.running = False
                try:
                    self._cleanup(delete=True)
                except Exception:  # leaving is what matters now; say why cleanup failed
                    traceback.print_exc()
        self.sel.close()

    def serve_deferred(self) -> None:
        """Answer the requests that came before we served (see ``deferred``); serve from now on."""
        deferred, self.deferred = self.deferred or [], None
        for client, payload in deferred:
            if client.sock.fileno() >= 0:
                self._request(client, payload)

    def _accept(self, fd: int, events: int) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = _Client(sock)
        self.clients[sock.fileno()] = client
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)
        self.linger_deadline = None if self.linger_deadline is None \
            else time.monotonic() + EXITED_LINGER  # the daemon is back: give it time again

    def _on_client(self, fd: int, events: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        if events & selectors.EVENT_WRITE:
            self._flush(client)
            if client.sock.fileno() < 0:
                return
        if events & selectors.EVENT_READ:
            try:
                data = client.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop(client)
                return
            try:
                frames = client.frames.feed(data)
            except ValueError:
                self._drop(client)
                return
            for kind, payload in frames:
                if kind == P.REQUEST:
                    self._request(client, payload)
                elif client.exec is not None:
                    if kind == P.STDIN:
                        self._write_stdin(client.exec, payload)
                    elif kind == P.STDIN_CLOSE:
                        self._stdin_eof(client.exec)
                elif kind == P.STDIN and client.stdin and not client.stdin_done:
                    self._write_stdin(self.init, payload)
                elif kind == P.STDIN_CLOSE and client.stdin:
                    self._client_stdin_closed(client)

    def _send(self, client: _Client, data: bytes) -> None:
        if client.closing or client.sock.fileno() < 0:
            return
        client.wbuf += data
        self._flush(client)

    def _reply(self, client: _Client, body: dict) -> None:
        self._send(client, P.json_frame(P.REPLY, body))

    def _flush(self, client: _Client) -> None:
        if client.wbuf:
            try:
                sent = client.sock.send(client.wbuf)
                del client.wbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(client)
                return
        if not client.wbuf and client.closing:
            self._drop(client)
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.wbuf else 0)
        if wanted != client.events:
            client.events = wanted
            self.sel.modify(client.sock, wanted, self._on_client)
        if client.exec is not None:
            self._pause_output(client.exec, len(client.wbuf) > HIGH_WATER)
        else:
            self._update_output_pause()

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd < 0:
            return
        self.sel.unregister(client.sock)
        client.sock.close()
        self.clients.pop(fd, None)
        if client in self.waiters:
            self.waiters.remove(client)
        if client in self.shutdown_waiters:
            self.shutdown_waiters.remove(client)
        for waiters in self.exec_waiters.values():
            if client in waiters:
                waiters.remove(client)
        if client.exec is not None:
            ex, client.exec = client.exec, None
            ex.client = None
            self._pause_output(ex, False)  # nobody reads it now: drain and drop
            self._stdin_eof(ex)  # a vanished client's stdin counts as EOF (moby: CloseStdin)
        elif client.stdin and not client.stdin_done:
            self._client_stdin_closed(client)  # a vanished stdin client counts as EOF
        self._update_output_pause()

    # ---- requests -----------------------------------------------------------

    def _request(self, client: _Client, payload: bytes) -> None:
        try:
            req = json.loads(payload)
            op = req.get("op")
            if self.deferred is not None and op != "attach":
                self.deferred.append((client, payload))
                return
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise errdefs.InvalidParameter(f"shim: unknown request {op!r}")
            body = handler(client, req)
        except Exception as err:  # every failure becomes an error reply, the shim keeps serving
            self._reply(client, P.error_reply(err))
            return
        if body is not None:
            self._reply(client, {"ok": True, **body})

    def _not_running(self) -> errdefs.Conflict:
        return errdefs.Conflict(f"Container {self.id} is not running")

    def _op_state(self, client: _Client, req: dict) -> dict:
        return {"status": self.status, "pid": self.init_pid, "exit": self.exit}

    def _op_start(self, client: _Client, req: dict) -> dict:
        self._start()
        return {}

    def _start(self) -> None:
        if self.status != "created":
            raise errdefs.Conflict(f"container {self.id} is {self.status}, not created")
        assert self.helper is not None  # it leaves after the start (or with the container)
        self.helper.send_start()
        self.start_sent = True
        self._await_started()

    def _await_started(self) -> None:
        helper, self.helper = self.helper, None
        assert helper is not None
        try:
            helper.started()
        finally:
            helper.close()
        self.status = "running"

    def _op_kill(self, client: _Client, req: dict) -> dict:
        if self.status not in ("created", "running", "paused"):
            raise self._not_running()
        self.runtime.kill(self.id, int(req["signal"]), bool(req.get("all", False)))
        return {}

    def _op_pause(self, client: _Client, req: dict) -> dict:
        if self.status != "running":
            raise self._not_running() if self.status != "paused" \
                else errdefs.Conflict(f"Container {self.id} is already paused")
        self.runtime.pause(self.id)
        self.status = "paused"
        return {}

    def _op_resume(self, client: _Client, req: dict) -> dict:
        if self.status != "paused":
            raise errdefs.Conflict(f"Container {self.id} is not paused")
        self.runtime.resume(self.id)
        self.status = "running"
        return {}

    def _op_resize(self, client: _Client, req: dict) -> dict:
        if self.init.master is None:
            raise errdefs.Conflict(f"container {self.id} has no TTY to resize")
        if self.status == "stopped":
            raise self._not_running()
        fcntl.ioctl(self.init.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0))
        return {}

    def _op_wait(self, client: _Client, req: dict) -> dict | None:
        if self.exit is not None:
            self._reply(client, {"ok": True, "exit": self.exit})
            self._release_early()
            return None
        self.waiters.append(client)
        return None

    def _op_attach(self, client: _Client, req: dict) -> dict | None:
        client.attached = True
        # while creating (a run's attach), whether the init will have a stdin to write to
        has_stdin = self.request.open_stdin if self.status == "creating" else self.init.stdin_fd is not None
        client.stdin = bool(req.get("stdin")) and has_stdin
        client.stdout = bool(req.get("stdout"))
        client.stderr = bool(req.get("stderr"))
        self._reply(client, {"ok": True})
        if not self.init.outputs and self.status in ("stopped", "draining"):
            self._end_attach(client)
        self._start_if_attached()
        return None

    def _op_shutdown(self, client: _Client, req: dict) -> dict | None:
        if self.status in ("running", "paused"):
            raise errdefs.Conflict(
                f"container {self.id} is {self.status}: stop it before shutting its shim down")
        self.shutdown_waiters.append(client)
        if self.status != "draining":  # else once the exit is recorded (a kill just landed)
            self._shutdown()
        return None

    def _shutdown(self) -> None:
        """Clean up, answer the shutdown requests, leave the loop; on failure answer the error
        and keep serving (the daemon may retry)."""
        try:
            self._cleanup(delete=True)
        except Exception as err:
            traceback.print_exc()
            for client in self.shutdown_waiters:
                self._reply(client, P.error_reply(err))
            self.shutdown_waiters.clear()
            return
        self._reap()  # the execs runtime delete killed
        for ex in list(self.execs.values()):
            if ex.exit_code is None:
                ex.exit_code = 128 + signal.SIGKILL
            self._finish_exec(ex)
        for client in self.shutdown_waiters:
            self._reply(client, {"ok": True})
        for client in list(self.clients.values()):
            try:  # the loop ends now: deliver the answers before the shim exits
                client.sock.setblocking(True)
                client.sock.settimeout(5)
                client.sock.sendall(client.wbuf)
            except OSError:
                pass
        self.running = False

    # ---- exec ---------------------------------------------------------------

    def _op_exec(self, client: _Client, req: dict) -> dict:
        """Start a process in the container; with ``attach`` this connection then carries its
        stdio (as an attach does the container's) and ends with OUTPUT_END once it exited."""
        if self.status == "paused":
            raise errdefs.Conflict(f"Container {self.id} is paused, unpause the container before exec")
        if self.status != "running":
            raise errdefs.Conflict(f"container {self.id} is not running")
        exec_id = str(req["exec_id"])
        if exec_id in self.execs or exec_id in self.exec_exits:
            raise errdefs.Conflict(f"exec {exec_id} already exists in container {self.id}")
        process = msgspec.convert(req["process"], runtime_spec.Process)
        ex = _Process(exec_id, tty=process.terminal)
        child_fds: list[int] = []
        console = None
        console_path = self.state_dir / f"exec-{exec_id[:12]}.sock"
        try:
            if ex.tty:
                console = unix_listener(console_path)
                with short_path(console_path) as reachable:
                    ex.pid = self.runtime.exec(self.id, process, console_socket=Path(reachable))
                ex.master = accept_console(console, f"exec {exec_id}")
                ex.outputs[ex.master] = "stdout"
                if req.get("stdin"):
                    ex.stdin_fd = os.dup(ex.master)
            else:
                ex.stdin_fd, stdio, outputs = _stdio_pipes(bool(req.get("stdin")), child_fds)
                ex.outputs.update(outputs)
                ex.pid = self.runtime.exec(self.id, process, stdio=stdio)
        except BaseException:
            for fd in [*ex.outputs, *([ex.stdin_fd] if ex.stdin_fd is not None else [])]:
                os.close(fd)
            raise
        finally:
            _drop_child_side(child_fds, console, console_path)
        for fd in ex.outputs:
            self.sel.register(fd, selectors.EVENT_READ, functools.partial(self._on_exec_output, ex))
        self.execs[exec_id] = ex
        self.exec_pids[ex.pid] = ex
        if req.get("attach"):
            ex.client = client
            client.exec = ex
        return {"pid": ex.pid}

    def _op_exec_wait(self, client: _Client, req: dict) -> dict | None:
        exec_id = str(req["exec_id"])
        if exec_id in self.exec_exits:
            return {"exit_code": self.exec_exits.pop(exec_id)}
        if exec_id not in self.execs:
            raise errdefs.NotFound(f"no such exec: {exec_id}")
        self.exec_waiters.setdefault(exec_id, []).append(client)
        return None

    def _op_exec_resize(self, client: _Client, req: dict) -> dict:
        ex = self.execs.get(str(req["exec_id"]))
        if ex is None:
            raise errdefs.NotFound(f"no such exec: {req['exec_id']}")
        if ex.master is None:
            raise errdefs.Conflict(f"exec {ex.id} has no TTY to resize")
        fcntl.ioctl(ex.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0))
        return {}

    def _on_exec_output(self, ex: _Process, fd: int, events: int) -> None:
        data = _read_output(fd)
        if data is None:
            return
        if not data:
            self._close_output(ex, fd)
            if not ex.outputs and ex.exit_code is not None:
                self._finish_exec(ex)
            return
        if ex.client is not None:
            self._send(ex.client, P.frame(P.STDOUT if ex.outputs[fd] == "stdout" else P.STDERR, data))

    def _finish_exec(self, ex: _Process) -> None:
        """Reaped and drained (or the drain timed out): answer the waiters, end the stream."""
        ex.drain_deadline = None
        for fd in list(ex.outputs):
            self._close_output(ex, fd)
        self._close_stdin(ex)
        if ex.master is not None:
            os.close(ex.master)
            ex.master = None
        self.execs.pop(ex.id, None)
        self.exec_pids.pop(ex.pid, None)
        assert ex.exit_code is not None
        waiters = self.exec_waiters.pop(ex.id, [])
        for waiter in waiters:
            self._reply(waiter, {"ok": True, "exit_code": ex.exit_code})
        if not waiters:
            self.exec_exits[ex.id] = ex.exit_code
        if ex.client is not None:
            client, ex.client = ex.client, None
            client.exec = None
            self._end_attach(client)

    # ---- stdio --------------------------------------------------------------

    def _on_output(self, fd: int, events: int) -> None:
        data = _read_output(fd)
        if data is None:
            return
        stream = self.init.outputs[fd]
        if not data:
            self._close_output(self.init, fd)
            if not self.init.outputs and self.status == "draining":
                self._finish()
            return
        if self.log is not None:
            self.log.write(stream, data)
        kind = P.STDOUT if stream == "stdout" else P.STDERR
        out = P.frame(kind, data)
        for client in list(self.clients.values()):
            if client.attached and (client.stdout if kind == P.STDOUT else client.stderr):
                self._send(client, out)

    def _close_output(self, proc: _Process, fd: int) -> None:
        stream = proc.outputs.pop(fd)
        if not proc.paused:
            self.sel.unregister(fd)
        if fd != proc.master:
            os.close(fd)
        if proc is self.init and self.log is not None:
            self.log.end_stream(stream)

    def _update_output_pause(self) -> None:
        """Back-pressure: while a client's backlog is over HIGH_WATER, stop reading the container."""
        self._pause_output(self.init, any(len(c.wbuf) > HIGH_WATER
                                          for c in self.clients.values() if c.exec is None))

    def _pause_output(self, proc: _Process, full: bool) -> None:
        """Stop (``full``) or resume reading ``proc``'s output."""
        if full == proc.paused:
            return
        proc.paused = full
        reader = self._on_output if proc is self.init else functools.partial(self._on_exec_output, proc)
        for fd in proc.outputs:
            if full:
                self.sel.unregister(fd)
            else:
                self.sel.register(fd, selectors.EVENT_READ, reader)

    def _write_stdin(self, proc: _Process, data: bytes) -> None:
        if proc.stdin_closing or (proc.stdin_fd is None and not self._stdin_to_come(proc)):
            return
        proc.stdin_buf += data
        if proc.stdin_fd is not None:
            self._flush_stdin(proc, proc.stdin_fd, selectors.EVENT_WRITE)

    def _stdin_eof(self, proc: _Process) -> None:
        """The stdin ended: close the process's stdin once what was sent is written (a pty has
        no separate stdin to close: the master stays)."""
        if proc.tty or (proc.stdin_fd is None and not self._stdin_to_come(proc)):
            return
        proc.stdin_closing = True
        if proc.stdin_fd is not None:
            self._flush_stdin(proc, proc.stdin_fd, selectors.EVENT_WRITE)

    def _stdin_to_come(self, proc: _Process) -> bool:
        """Whether ``proc``'s stdin is still to come with the create's answer (``create``):
        until then what a client sends is kept. A run's create helper tells the daemon of the
        start before we have that answer, so its attach sessions may write (and close) first."""
        return proc is self.init and self.status == "creating"

    def _flush_stdin(self, proc: _Process, fd: int, events: int) -> None:
        try:
            while proc.stdin_buf:
                del proc.stdin_buf[:os.write(fd, proc.stdin_buf)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # EPIPE: the process closed its stdin; drop what it will never read
            proc.stdin_buf.clear()
        registered = self.sel.get_map().get(fd) is not None
        if proc.stdin_buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, functools.partial(self._flush_stdin, proc))
        elif not proc.stdin_buf:
            if registered:
                self.sel.unregister(fd)
            if proc.stdin_closing:
                self._close_stdin(proc)

    def _close_stdin(self, proc: _Process) -> None:
        if proc.stdin_fd is None:
            return
        if self.sel.get_map().get(proc.stdin_fd) is not None:
            self.sel.unregister(proc.stdin_fd)
        os.close(proc.stdin_fd)
        proc.stdin_fd = None
        proc.stdin_buf.clear()

    def _client_stdin_closed(self, client: _Client) -> None:
        """Docker's rule: with StdinOnce (and no TTY) the first client's EOF closes the
        container's stdin; otherwise the end of a client's stdin ends that attach session."""
        client.stdin_done = True
        if self.request.stdin_once and not self.request.tty:
            if not self.stdin_once_used:
                self.stdin_once_used = True
                self._stdin_eof(self.init)
        elif client.sock.fileno() >= 0 and client.attached:
            self._end_attach(client)

    def _end_attach(self, client: _Client) -> None:
        self._send(client, P.frame(P.OUTPUT_END))
        client.closing = True
        self._flush(client)

    # ---- exit ---------------------------------------------------------------

    def _on_sigchld(self, fd: int, events: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _reap(self) -> None:
        """Reap every exited child (we are a subreaper: orphans of the container come to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ex = self.exec_pids.pop(pid, None)
            if ex is not None:
                code = os.waitstatus_to_exitcode(status)
                ex.exit_code = 128 - code if code < 0 else code
                if ex.outputs:
                    ex.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
                else:
                    self._finish_exec(ex)
                continue
            if pid == self.init_pid and self.status in ("created", "running", "paused"):
                code = os.waitstatus_to_exitcode(status)
                self.pending_exit = {"exit_code": 128 - code if code < 0 else code,
                                     "finished_at": format_time(time.time_ns())}
                self.status = "draining"
                if self.init.outputs:
                    self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
                else:
                    self._finish()

    def _finish(self) -> None:
        """Output drained (or the drain timed out): record the exit and tell everyone."""
        self.drain_deadline = None
        for fd in list(self.init.outputs):
            self._close_output(self.init, fd)
        if self.log is not None:
            self.log.close()
            self.log = None
        self._close_stdin(self.init)
        self.exit = {**self.pending_exit, "oom_killed": self._oom_killed(), "error": ""}
        write_state_file(self.state_dir / "exit.json", json.dumps(self.exit).encode())
        self.status = "stopped"
        for client in self.waiters:
            self._reply(client, {"ok": True, "exit": self.exit})
        answered = bool(self.waiters)
        self.waiters.clear()
        for client in list(self.clients.values()):
            if client.attached:
                self._end_attach(client)
        self.linger_deadline = time.monotonic() + EXITED_LINGER
        if self.shutdown_waiters:
            self._shutdown()
            return
        # The daemon asks for the shutdown as soon as it has the exit: release the container
        # while that answer travels, instead of after the request (the shutdown repeats it). Not
        # before the daemon's wait is answered, though: for a short-lived container it often
        # arrives just after the exit, and would wait behind the release.
        self.release_due = True
        if answered:
            self._release_early()

    def _release_early(self) -> None:
        if not self.release_due:
            return
        self.release_due = False
        try:
            self._release()
        except Exception:  # the shutdown tries again and reports it
            traceback.print_exc()

    def _oom_killed(self) -> bool:
        """Whether the kernel OOM-killed anything in the container's memory cgroup (v1 or v2)."""
        if not self.cgroups_path or ":" in self.cgroups_path:
            return False
        rel = self.cgroups_path.lstrip("/")
        for path in (Path("/sys/fs/cgroup/memory", rel, "memory.oom_control"),
                     Path("/sys/fs/cgroup", rel, "memory.events")):
            try:
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value) > 0
            except OSError:
                continue
        return False

    # ---- teardown -----------------------------------------------------------

    def _release(self, delete: bool = True) -> None:
        """What the container held: the runtime's state and cgroup (runtime delete: kills what is
        left in it), the pty, the rootfs mounts. Safe to repeat."""
        if self.helper is not None:  # never started: the helper leaves (its init dies below)
            self.helper.close()
            self.helper = None
        if delete:
            try:
                self.runtime.delete(self.id, force=True)
            except errdefs.NotFound:
                pass
        if self.init.master is not None:
            os.close(self.init.master)
            self.init.master = None
        if self.mounted:
            rootfs.unmount_all(self.request.rootfs_mounts, self.root)
            self.mounted = False

    def _cleanup(self, delete: bool) -> None:
        """runtime delete, unmount the rootfs, remove the socket. Keeps exit.json as the record."""
        self._release(delete)
        if self.listener is not None:
            self.sock_path.unlink(missing_ok=True)
            self.listener.close()
            self.listener = None


def _read_output(fd: int) -> bytes | None:
    """A chunk of a container's or exec's output; b"" at its end, None when there is none yet."""
    try:
        return os.read(fd, P.OUTPUT_CHUNK)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as err:  # EIO: the pty's last slave is closed
        if err.errno != errno.EIO:
            raise
        return b""


def accept_console(console: socket.socket, what: str) -> int:
    """The pty master the runtime sends on a console socket (non-blocking)."""
    console.settimeout(CONSOLE_TIMEOUT)
    conn, _ = console.accept()
    with conn:
        conn.settimeout(CONSOLE_TIMEOUT)
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise errdefs.System(f"{what}: the runtime sent no console")
    os.set_blocking(fds[0], False)
    return fds[0]


def unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    with short_path(path) as reachable:
        sock.bind(reachable)
    sock.listen(16)
    return sock


def _drop_child_side(child_fds: list[int], console: socket.socket | None, console_path: Path) -> None:
    """After a create or an exec, what only the child needed: its ends of the stdio pipes and
    the console socket the runtime sent the pty master through."""
    for fd in child_fds:
        os.close(fd)
    if console is not None:
        console.close()
        console_path.unlink(missing_ok=True)


def _stdio_pipes(with_stdin: bool, child_fds: list[int],
                 ) -> tuple[int | None, tuple[int, int, int], dict[int, str]]:
    """Pipes for a process's stdio: (our stdin write end or None, the child's 0/1/2, our
    non-blocking read ends -> stream name). The child's ends are added to ``child_fds``."""
    stdin_w = None
    if with_stdin:
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(stdin_w, False)
    else:
        stdin_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    child_fds.append(stdin_r)
    ends, outputs = [], {}
    for stream in ("stdout", "stderr"):
        r, w = os.pipe2(os.O_CLOEXEC)
        child_fds.append(w)
        os.set_blocking(r, False)
        outputs[r] = stream
        ends.append(w)
    return stdin_w, (stdin_r, ends[0], ends[1]), outputs


# ---- the create helper --------------------------------------------------------
#
# The work of a create and a start (decoding config.json, mounting, cgroups, forking the init and
# waiting for it, releasing it) allocates and frees many Python objects and runs much code, and so
# dirties pages inherited from the zygote: done in the shim, they stayed private to every
# long-lived shim. A helper forked ahead (with the spare, off the start path) does both instead
# and exits after the start, or when the shim closes its pair.


class Helper:
    """The create helper of a (spare) shim: its pid and our end of its socket pair."""

    def __init__(self, zygote: socket.socket) -> None:
        """Fork it; it waits on ``zygote`` (the zygote's pair) for the spawn connection, and
        leaves at once if either pair closes unused."""
        self.sock, theirs = socket.socketpair(socket.AF_UNIX,
                                              socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.pid = sc.fork()
        if self.pid == 0:
            code = 1
            try:
                self.sock.close()
                code = _create_helper(theirs, zygote)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        self.pidfd = os.pidfd_open(self.pid)  # readable once it exited (it may be reaped meanwhile)

    def spawn(self) -> tuple[socket.socket | None, bytes]:
        """The daemon's spawn connection and its request (JSON as it came), once the helper has
        them (it is creating by then: the shim sets itself up meanwhile and takes the result
        with ``created``); (None, b"") if the helper left (the zygote is gone)."""
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, HELPER_REPLY_MAX, 1)
        except OSError:
            return None, b""
        if not fds:
            return None, b""
        return socket.socket(fileno=fds[0]), data

    def created(self) -> tuple[dict, list[int]]:
        """The successful reply (``fds`` names the fds that came with it) or its error raised."""
        return self._reply("create")

    def send_start(self) -> None:
        """Release the init (``runtime start``) once created: it may be sent before the create's
        reply, the helper then starts at once after it. The helper exits after the start."""
        self.sock.send(b"start")

    def started(self) -> None:
        """The start's outcome (raised if it failed)."""
        self._reply("start")

    def _reply(self, what: str) -> tuple[dict, list[int]]:
        """The reply is awaited together with the helper's exit: the socket alone cannot tell,
        as the init it forked (blocked before exec) holds its end."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        while not any(fd == self.sock.fileno() for fd, _ in poller.poll()):
            if not select.select([self.sock], [], [], 0.5)[0]:  # a reply sent just before exiting
                break
        data, fds = b"", []
        for _ in range(2):
            try:
                if select.select([self.sock], [], [], 0)[0]:
                    data, fds, _, _ = socket.recv_fds(self.sock, HELPER_REPLY_MAX, 4)
                break
            except ConnectionResetError:
                # it left with our start unread (its create failed): the kernel reports that
                # once, ahead of the reply still queued
                continue
        if not data:
            raise errdefs.System(f"the shim's create helper (pid {self.pid}) died during {what} "
                                 f"(see shim.log)")
        return P.raise_for_reply(json.loads(data)), fds

    def close(self) -> None:
        self.sock.close()
        os.close(self.pidfd)


def _create_helper(pair: socket.socket, zygote: socket.socket) -> int:
    # the init first, so that the rehearsal makes the pages it touches ours again
    # the init is the shim's child: the shim hears of its exit at once, not once we exited
    prepare_init(_REHEARSAL[0][1] if _REHEARSAL else None, PAGE_LISTS.get("init"), sibling=True)
    try:
        _rehearse_create()
        listing = PAGE_LISTS.get("helper")
        learn = listing is not None and not pages.populate(listing)
        data, daemon = _take_spawn(pair, zygote)
        if daemon is None:
            return 0
        # the first helper of a zygote lists the pages its create and start write, after them,
        # and those its shim wrote to set itself up, by the end of the create (``_spare``)
        recorder = pages.recorder(listing) if learn else None
        shim_listing = PAGE_LISTS.get("shim")
        shim_recorder = pages.recorder(shim_listing) if learn and shim_listing is not None else None
        try:
            return _serve_create(pair, data, daemon, shim_recorder)
        finally:
            daemon.close()
            if recorder is not None:
                recorder.record()
    finally:
        discard_prepared()  # a create that did not take it (another runtime, a failure)


REQUEST_TIMEOUT = 5.0  # for the daemon's spawn request, once its connection is handed to us


def _take_spawn(pair: socket.socket, zygote: socket.socket) -> tuple[bytes, socket.socket | None]:
    """Wait for the zygote to hand us a spawn connection; read its request and pass both on to
    our shim. Returns the request (JSON as it came) and the connection (ours to answer a run's
    start on, see ``_serve_create``), or (b"", None) if the zygote or the shim went away first."""
    poller = select.poll()
    poller.register(zygote, select.POLLIN)
    poller.register(pair, select.POLLIN)
    if any(fd == pair.fileno() for fd, _ in poller.poll()):
        return b"", None  # our shim left (it only ever sends after the spawn)
    try:
        _, fds, _, _ = socket.recv_fds(zygote, 1, 1)
    except OSError:
        return b"", None
    zygote.close()
    if not fds:
        return b"", None  # the zygote is gone
    conn = socket.socket(fileno=fds[0])
    try:
        data = _read_request(conn)
        conn.setblocking(True)
        socket.send_fds(pair, [data], [conn.fileno()])
    except Exception as err:
        try:
            conn.sendall(P.json_frame(P.REPLY, P.error_reply(err)))
        except OSError:
            pass
        conn.close()
        return b"", None
    return data, conn


def _read_request(conn: socket.socket) -> bytes:
    """The spawn request frame's payload (JSON), as it came."""
    conn.settimeout(REQUEST_TIMEOUT)
    reader = P.FrameReader()
    while True:
        data = conn.recv(65536)
        if not data:
            raise EOFError("the daemon closed the spawn connection")
        frames = reader.feed(data)
        if frames:
            kind, payload = frames[0]
            if kind != P.REQUEST:
                raise ValueError(f"expected a request frame, got type {kind}")
            return payload


def _serve_create(pair: socket.socket, data: bytes, daemon: socket.socket,
                  shim_recorder: pages.Recorder | None = None) -> int:
    """Create, answer the shim, start when it says so. A run's container started here (its
    start came during the create) is reported to the ``daemon`` by us, ahead of the shim: the
    init's pid, then the start (the shim's first answer, its pid, went out before it sent the
    start); the shim's answers then say ``told``."""
    ours: list[int] = []  # the stdio ends that go to the shim with the reply
    try:
        spawn = json.loads(data)
        if spawn.get("op") != "spawn":
            raise ValueError(f"create helper: unknown request {spawn.get('op')!r}")
        request = spawn_request_from_json(spawn["request"])
        request.state_dir.mkdir(parents=True, exist_ok=True)
        os.chdir(request.state_dir)
        log_fd = os.open("shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.dup2(log_fd, 2)  # our errors (and the runtime's) to the shim's log, as the shim's
        os.close(log_fd)
        runtime = load_runtime(request.runtime, request.runtime_root, helper=True)
        reply = {"ok": True, **_create_container(runtime, request, ours)}
    except Exception as err:
        traceback.print_exc()
        pair.send(json.dumps(P.error_reply(err)).encode())
        if shim_recorder is not None:
            shim_recorder.abandon()
        return 0
    if shim_recorder is not None:
        # read by us, not by the shim: its list holds no page of the reading's own
        shim_recorder.record(os.getppid())
    started = None
    if _start_queued(pair):
        # a run whose start came during the create: start, then answer both at once; woken by
        # the create's answer in between, the shim took the CPU on the way to the start
        pair.recv(HELPER_REPLY_MAX)
        started = _start(runtime, request.container_id)
        if started.get("ok"):
            # init.pid first, as the shim would: once the daemon has heard of the start, the
            # file is there (a restarted daemon reads it)
            write_state_file(request.state_dir / "init.pid", str(reply["pid"]).encode())
            reply["told"] = _tell(daemon, {"ok": True, "pid": reply["pid"]}, started)
    socket.send_fds(pair, [json.dumps(reply).encode()], ours)
    for fd in ours:
        os.close(fd)
    if started is None:
        try:
            data = pair.recv(HELPER_REPLY_MAX)
        except OSError:
            return 0
        if not data:
            return 0  # the shim deleted the container instead of starting it
        started = _start(runtime, request.container_id)
    pair.send(json.dumps(started).encode())
    # Done: what is left (the page list a zygote's first helper records, and our exit, which
    # tears down our copy of the zygote's memory: ~0.7 ms) waits for an idle CPU. Nothing
    # waits for it: the init is the shim's child, not ours.
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    return 0


def _start_queued(pair: socket.socket) -> bool:
    try:
        return pair.recv(HELPER_REPLY_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"start"
    except OSError:
        return False


def _start(runtime: Runtime, container_id: str) -> dict:
    """``runtime start``'s outcome, as the reply to the shim."""
    try:
        runtime.start(container_id)
        return {"ok": True}
    except Exception as err:
        return P.error_reply(err)


def _create_container(runtime: Runtime, req: SpawnRequest, ours: list[int]) -> dict:
    """Mount the rootfs, make the init's stdio (pipes, or a pty through the console socket) and
    run ``runtime create``; the shim's ends of the stdio go to ``ours``. On failure undo it all
    and raise."""
    config = req.bundle / "config.json"
    preload_config(config)
    spec = runtime_spec.decode(config.read_bytes())
    root = Path(spec.root.path) if os.path.isabs(spec.root.path) else req.bundle / spec.root.path
    child_fds: list[int] = []
    console = None
    console_path = req.state_dir / "console.sock"
    rootfs.mount_all(req.rootfs_mounts, root)
    try:
        rootfs.make_working_dir(root, spec.process.cwd)
        if req.tty:
            console = unix_listener(console_path)
            with short_path(console_path) as reachable:
                pid = runtime.create(req.container_id, req.bundle, console_socket=Path(reachable),
                                     spec=spec)
            ours.append(accept_console(console, f"container {req.container_id}"))
            names = ["master"]
        else:
            stdin_w, stdio, outputs = _stdio_pipes(req.open_stdin, child_fds)
            names = (["stdin"] if stdin_w is not None else []) + list(outputs.values())
            ours += ([stdin_w] if stdin_w is not None else []) + list(outputs)
            pid = runtime.create(req.container_id, req.bundle, stdio=stdio, spec=spec)
    except BaseException:
        for fd in ours:
            os.close(fd)
        ours.clear()
        try:
            runtime.delete(req.container_id, force=True)  # an init whose console never came
        except Exception:
            pass
        rootfs.unmount_all(req.rootfs_mounts, root)
        raise
    finally:
        _drop_child_side(child_fds, console, console_path)
    return {"pid": pid, "root": str(root), "cgroups_path": spec.linux.cgroups_path, "fds": names}


def run(conn: socket.socket, body: dict, helper: Helper, start_after: int | None = None) -> int:
    """Body of the shim process, called in the zygote's grandchild. ``conn`` is the daemon's
    spawn connection: it gets our pid (once shim.sock is bound), then the init's pid or the create
    error, and with ``start_after`` (a number of attach clients to wait for) the start's outcome.
    ``helper``: the process forked ahead, already doing the create (``Helper.spawn``)."""
    conn.setblocking(True)
    daemon_there = True
    try:
        request = spawn_request_from_json(body)
        request.state_dir.mkdir(parents=True, exist_ok=True)
        (request.state_dir / "exit.json").unlink(missing_ok=True)  # a restart's new run: the old record is void
        log_fd = os.open(request.state_dir / "shim.log",
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.chdir(request.state_dir)
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        write_state_file(request.state_dir / "shim.pid", str(os.getpid()).encode())
        shim = Shim(request, load_runtime(request.runtime, request.runtime_root))
        shim.prepare(helper)
        daemon_there = _tell(conn, {"ok": True, "shim_pid": os.getpid()})
        if start_after is not None:
            shim.request_start(conn, start_after)
        shim.create()
    except Exception as err:
        _tell(conn, P.error_reply(err))
        return 1
    told = shim.told or _tell(conn, {"ok": True, "pid": shim.init_pid})
    if not (told and daemon_there):
        # The daemon went away during the spawn (killed, or it gave the start up): nobody will
        # start this container or end this shim, and a daemon restarted meanwhile may have looked
        # for shim.sock before it was bound. Undo the create rather than leave its init blocked
        # before exec, in its cgroup, for ever.
        print(f"shim: the daemon left during the spawn of {shim.id}; deleting it", file=sys.stderr)
        shim._cleanup(delete=True)
        return 1
    if start_after is None:
        conn.close()
    elif shim.start_sent:
        shim.report_start()
    else:
        shim.watch_start_conn()
    shim.serve()
    return 0


def _tell(conn: socket.socket, *bodies: dict) -> bool:
    """Send replies on the spawn connection (one write); False if the daemon is gone."""
    try:
        conn.sendall(b"".join(P.json_frame(P.REPLY, body) for body in bodies))
        return True
    except OSError:
        return False
