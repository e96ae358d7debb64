"""Gzip of rotated log files, shared by both file drivers (json-file ``compress=true``, local).

dockerd's ``loggerutils.LogFile`` compresses ``<log>.1`` into ``<log>.1.gz`` after each
rotation, with a gzip header whose Extra field holds ``{"lastTime": <RFC3339Nano of the
file's last entry>}`` so a reader's ``--since`` can skip whole files. Ours does the same in a
child process (written to a temporary name, renamed, then ``<log>.1`` unlinked, so a reader
always finds one complete copy): the shim's loop keeps copying output meanwhile, and the next
rotation waits for it, as dockerd's does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import traceback
import zlib
from pathlib import Path

from dockyard.runtime import syscalls as sc


def gzip_header(last_time: str) -> bytes:
    """RFC 1952 header as Go's gzip writer makes it with only Extra set: FEXTRA, no name, no
    mtime, OS unknown (255); Extra is moby's rotateFileMetadata JSON (``last_time``: the last
    entry's RFC3339Nano)."""
    extra = json.dumps({"lastTime": last_time}, separators=(",", ":")).encode()
    return b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", len(extra)) + extra


def gzip_extra_last_time(path: Path) -> str | None:
    """The ``lastTime`` a compressed log file's header records, or None."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:2] != b"\x1f\x8b" or not head[3] & 0x04:
            return None
        (size,) = struct.unpack("<H", head[10:12])
        try:
            return json.loads(f.read(size)).get("lastTime")
        except (ValueError, AttributeError):
            return None


def compressed_size(path: Path) -> int:
    """The uncompressed size a gzip file's trailer records (mod 2**32)."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        (stored,) = struct.unpack("<I", f.read(4))
    return stored


def compress_file(source: Path, last_time: str) -> None:
    """``<source>`` -> ``<source>.gz`` (temp name, fsync, rename), then ``<source>`` unlinked."""
    target = Path(f"{source}.gz")
    tmp = Path(f"{source}.gz.tmp")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)  # Go's default level
    crc = size = 0
    with open(source, "rb") as src, open(tmp, "wb") as out:
        os.fchmod(out.fileno(), 0o640)
        out.write(gzip_header(last_time))
        while chunk := src.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            out.write(deflate.compress(chunk))
        out.write(deflate.flush())
        out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, target)
    os.unlink(source)


class Compressor:
    """At most one compression under way, in a child process; a writer's ``_rotate`` calls
    ``wait`` before renaming files and ``start`` after."""

    def __init__(self) -> None:
        self._pidfd: int | None = None  # names the child even once reaped and its pid reused

    def start(self, source: Path, last_time: str) -> None:
        pid = sc.fork()
        if pid == 0:  # the child: compress and leave, touching nothing of the shim's
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # the shim's fds (the container's stdin, its output pipes, the listener) must not
                # stay open here: an EOF the shim gives the container would wait for this child
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                compress_file(source, last_time)
                code = 0
            except BaseException:
                traceback.print_exc()  # to shim.log; <log>.1 stays, readers still find it
            finally:
                os._exit(code)
        self._pidfd = os.pidfd_open(pid)

    def wait(self) -> None:
        """Block until the compression under way, if any, is done."""
        if self._pidfd is None:
            return
        poller = select.poll()  # a pidfd is readable once its process has exited (poll: the fd
        poller.register(self._pidfd, select.POLLIN)  # may be above select's 1023)
        poller.poll()
        try:  # reap it if no one else has (in the shim, the SIGCHLD handler may be first)
            os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            pass
        self.close()

    def close(self) -> None:
        """Stop tracking it; a compression under way finishes on its own (the shim reaps it)."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
