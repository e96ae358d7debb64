"""Wire format between the daemon, the zygote and the shims.

Every byte on ``zygote.sock`` and ``shim.sock`` travels in frames::

    +--------+----------------------+----------------+
    | type u8| length u32 (big end.)| payload        |
    +--------+----------------------+----------------+

Frame types (direction: D daemon, Z zygote, S shim):

===========  ====  =========  ==================================================================
name         type  direction  payload
===========  ====  =========  ==================================================================
REQUEST      1     D -> Z/S   JSON object ``{"op": ..., args}`` (ops below)
REPLY        2     Z/S -> D   JSON object ``{"ok": true, ...}`` or
                              ``{"ok": false, "error": message, "kind": errdefs class name}``
STDOUT       3     S -> D     container output, stream 1 (all output when the container has a TTY)
STDERR       4     S -> D     container output, stream 2
STDIN        5     D -> S     bytes for the container's stdin
STDIN_CLOSE  6     D -> S     (empty) this client's stdin ended
OUTPUT_END   7     S -> D     (empty) the container's output ended; the shim closes the connection
===========  ====  =========  ==================================================================

Requests on ``zygote.sock`` (one per connection):

=========  ========================  ==============================================================
op         args                      replies
=========  ========================  ==============================================================
spawn      ``request``: SpawnRequest  1st ``{"shim_pid"}`` once the shim runs and shim.sock is
           ``start``: N (optional)    bound, then ``{"pid"}`` (container created) or an error (create
                                      failed); then EOF. With ``start`` (a run): the shim starts
                                      the container once N attach requests are in on shim.sock (the
                                      daemon sends them after the 1st reply; they are served during
                                      the create) and answers ``{}`` or the start's error, then EOF;
                                      an EOF from the daemon before that ends the container
=========  ========================  ==============================================================

Requests on ``<state_dir>/shim.sock`` (a connection may carry several, one at a time):

=========  ========================  ==============================================================
op         args                      reply
=========  ========================  ==============================================================
state      -                         ``{"status", "pid", "exit"}``; status is created, running,
                                     paused or stopped; ``exit`` is exit.json's object or null
start      -                         ``{}`` once the user process runs
kill       ``signal``, ``all``        ``{}``
pause      -                         ``{}``
resume     -                         ``{}``
resize     ``height``, ``width``      ``{}`` (Conflict without a TTY)
wait       -                         ``{"exit"}`` sent when the init has been reaped and its output
                                     drained (at once if it already was)
attach     ``stdin``, ``stdout``,     ``{}``, then the connection carries STDOUT/STDERR/OUTPUT_END
           ``stderr``                 from the shim and STDIN/STDIN_CLOSE from the daemon. Output from
                                     before the attach is not replayed (it is in the log).
shutdown   -                         ``{}`` after runtime delete and rootfs unmount; then the shim
                                     exits. Conflict while the container runs; an init that was
                                     just killed is waited for (the exit is recorded first).
                                     Execs still running are killed with it (exit 137).
exec       ``exec_id``, ``process``   ``{"pid"}`` once the process runs (runtime exec; the shim is
           (OCI Process object),     its parent and reaps it). Conflict unless the container is
           ``stdin``, ``attach``      running ("... is paused, unpause the container before exec").
                                     With ``attach`` the connection then carries that process's
                                     STDOUT/STDERR (STDOUT only with ``process.terminal``) and
                                     takes STDIN/STDIN_CLOSE (closes its stdin; no-op on a pty);
                                     OUTPUT_END once it was reaped and its output drained (at most
                                     DRAIN_TIMEOUT). Without it the output is dropped.
exec_wait  ``exec_id``               ``{"exit_code"}`` once that process was reaped and drained (at
                                     once if it already was; the exit is forgotten once answered)
exec_resize ``exec_id``, ``height``,  ``{}`` (Conflict without a TTY)
           ``width``
=========  ========================  ==============================================================
"""

from __future__ import annotations

import json
import struct

from dockyard import errdefs

REQUEST = 1
REPLY = 2
STDOUT = 3
STDERR = 4
STDIN = 5
STDIN_CLOSE = 6
OUTPUT_END = 7

HEADER = struct.Struct(">BI")
MAX_PAYLOAD = 1 << 20  # control JSON is tiny; output frames are at most one pipe read
OUTPUT_CHUNK = 32768


def frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: int, obj: dict) -> bytes:
    return frame(kind, json.dumps(obj, separators=(",", ":")).encode())


def error_reply(err: BaseException) -> dict:
    """A REPLY body for ``err``, naming its errdefs class (the nearest one for a subclass defined
    elsewhere) so the daemon re-raises the same kind."""
    kind = next((cls.__name__ for cls in type(err).__mro__
                 if _errdefs_class(cls.__name__) is cls), "System")
    return {"ok": False, "error": str(err) or type(err).__name__, "kind": kind}


def _errdefs_class(name: str) -> type[errdefs.DockyardError] | None:
    cls = getattr(errdefs, name, None)
    if isinstance(cls, type) and issubclass(cls, errdefs.DockyardError) \
            and cls is not errdefs.DockyardError:
        return cls
    return None


def raise_for_reply(reply: dict) -> dict:
    """Return a successful REPLY body, or raise the errdefs class it names."""
    if reply.get("ok"):
        return reply
    cls = _errdefs_class(str(reply.get("kind"))) or errdefs.System
    raise cls(str(reply.get("error", "shim error")))


class FrameReader:
    """Incremental decoder for a non-blocking socket: feed bytes, take whole frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > MAX_PAYLOAD:
                raise ValueError(f"frame of {length} bytes exceeds the limit")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append((kind, bytes(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return frames

