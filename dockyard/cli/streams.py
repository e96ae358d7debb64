"""Moving container streams: the multiplexed frame format (stdcopy), the hijacked attach
connection (stdin pump with half-close, detach keys), the terminal in raw mode and resizes."""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator

STDIN, STDOUT, STDERR = 0, 1, 2
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


class Detached(Exception):
    """The user typed the detach key sequence."""


def parse_detach_keys(spec: str) -> bytes:
    """docker's "ctrl-p,ctrl-q" / "a,ctrl-@" notation -> the byte sequence."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch)
            out.append(code if code is not None else ord(ch.lower()) - ord("a") + 1)
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


def _write(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()


def demux(chunks: Iterator[bytes], out: BinaryIO, err: BinaryIO) -> None:
    """Split the 8-byte-header frames ([stream, 0, 0, 0, len32be] payload) to out/err."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 8:
            stream, length = struct.unpack(">BxxxL", buf[:8])
            if len(buf) < 8 + length:
                break
            payload, buf = buf[8:8 + length], buf[8 + length:]
            _write(err if stream == STDERR else out, payload)


def copy_raw(chunks: Iterator[bytes], out: BinaryIO) -> None:
    for chunk in chunks:
        _write(out, chunk)


def socket_chunks(sock: socket.socket, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        yield data


def response_chunks(resp) -> Iterator[bytes]:  # noqa: ANN001 - a dockyard.cli.transport.Response
    while True:
        data = resp.read1(65536)
        if not data:
            return
        yield data


class RawTerminal:
    """Put a terminal fd in raw mode for the life of the block; always restore it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None

    def __enter__(self) -> "RawTerminal":
        import termios
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def pump_stdin(sock: socket.socket, fd: int, detach_keys: bytes | None, on_detach: Callable[[], None]) -> None:
    """Copy our stdin to the container until EOF, then half-close so the container sees EOF.

    With a TTY, the detach key sequence is held back while it is being typed; when complete,
    ``on_detach`` runs instead of sending it.
    """
    pending = b""
    try:
        while True:
            data = os.read(fd, 32 * 1024)
            if not data:
                break
            if detach_keys:
                out = bytearray()
                for byte in data:
                    candidate = pending + bytes([byte])
                    if detach_keys.startswith(candidate):
                        pending = candidate
                        if pending == detach_keys:
                            if out:
                                sock.sendall(bytes(out))
                            on_detach()
                            return
                    else:
                        out += candidate
                        pending = b""
                data = bytes(out)
            if data:
                sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Attachment:
    """A hijacked attach connection being streamed to our stdio."""

    def __init__(self, sock: socket.socket, first: bytes, tty: bool, stdin: bool,
                 detach_keys: bytes | None) -> None:
        self.sock = sock
        self.first = first
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys if tty else None
        self.detached = False
        self.done = threading.Event()

    def _detach(self) -> None:
        self.detached = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def start(self) -> None:
        """Start streaming in background threads (output, and stdin when attached)."""
        if self.stdin:
            threading.Thread(target=pump_stdin, daemon=True,
                             args=(self.sock, sys.stdin.fileno(), self.detach_keys, self._detach)).start()
        threading.Thread(target=self._output, daemon=True).start()

    def _output(self) -> None:
        try:
            chunks = socket_chunks(self.sock, self.first)
            out = sys.stdout.buffer
            if self.tty:
                copy_raw(chunks, out)
            else:
                demux(chunks, out, sys.stderr.buffer)
        except (BrokenPipeError, ValueError):
            pass
        finally:
            self.done.set()

    def wait(self) -> None:
        # a timed wait keeps the main thread responsive to signals (Ctrl-C)
        while not self.done.wait(0.5):
            pass
        if self.detached:
            raise Detached()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def monitor_tty_size(resize: Callable[[int, int], None], fd: int) -> None:
    """Send the terminal size now and on every SIGWINCH."""
    def send(*_: object) -> None:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            return
        try:
            resize(size.lines, size.columns)
        except Exception:  # noqa: BLE001 - a failed resize must never end the session
            pass

    send()
    signal.signal(signal.SIGWINCH, send)
