"""A minimal HTTP/1.1 client connection for the CLI.

``http.client`` pulls in ``email.parser`` and friends (about 30 ms of imports, most of a
``dockyard ps``); the CLI needs only this much of HTTP: requests with a Content-Length or a
chunked body, responses with Content-Length, chunked or close-delimited bodies read all at once,
by line or as data arrives, and keep-alive. The interface mirrors the parts of
``http.client.HTTPConnection``/``HTTPResponse`` the commands use (``request``, ``getresponse``,
``status``, ``getheader``, ``read``, ``read1``, ``readline``). ``ssl`` is imported by the caller,
only for TLS hosts.
"""

from __future__ import annotations

import socket
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Iterable

_MAX_LINE = 65536
_NO_BODY_METHODS = ("GET", "HEAD", "DELETE", "OPTIONS")


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without sending a status line (a stale keep-alive)."""


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x we can read."""


class Connection:
    """One HTTP/1.1 connection over a unix socket or TCP (TLS when ``ssl_context`` is given)."""

    def __init__(self, scheme: str, address: str, port: int = 0, timeout: float | None = None,
                 ssl_context: Any = None) -> None:
        self.scheme, self.address, self.port = scheme, address, port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.sock: socket.socket | None = None
        self._rfile: Any = None
        self._response: Response | None = None
        # the unix socket's Host is a harmless 'localhost', like docker's client sends
        self.host_header = "localhost" if scheme == "unix" else (
            f"[{address}]:{port}" if ":" in address else f"{address}:{port}")

    def connect(self) -> None:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if self.timeout is not None:
                    sock.settimeout(self.timeout)
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.address, self.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.address)
        self.sock = sock

    def request(self, method: str, url: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, encode_chunked: bool = False) -> None:
        """Send one request; ``body`` is bytes, or an iterable of chunks when ``encode_chunked``."""
        if self._response is not None and not self._response.reusable():
            # the previous answer was left unread or ends with the connection: start afresh
            self.close()
        self._response = None
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        if self._rfile is None:  # made here, not in connect(): a hijacked socket needs no reader
            self._rfile = self.sock.makefile("rb")
        lines = [f"{method} {url} HTTP/1.1", f"Host: {self.host_header}"]
        names = set()
        for name, value in (headers or {}).items():
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        chunked = encode_chunked and body is not None and not isinstance(body, (bytes, bytearray))
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif "content-length" not in names and (body is not None or method not in _NO_BODY_METHODS):
            lines.append(f"Content-Length: {len(body) if body is not None else 0}")  # type: ignore[arg-type]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not chunked:
            self.sock.sendall(head + bytes(body or b""))  # type: ignore[arg-type]
            return
        self.sock.sendall(head)
        for chunk in body:  # type: ignore[union-attr]
            if chunk:
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self, method: str = "") -> Response:
        if self._rfile is None:
            raise ProtocolError("no request sent")
        self._response = Response(self._rfile, method)
        return self._response

    def close(self) -> None:
        self._response = None
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Response:
    """The status, headers and body reader of one answer."""

    def __init__(self, fp: Any, method: str = "") -> None:
        self._fp = fp
        while True:  # 1xx interim answers (100 Continue) come before the real one
            line = fp.readline(_MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected("Remote end closed connection without response")
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, self.reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolError(f"bad status line from the daemon: {line[:80]!r}")
            self.status = int(code)
            self.version = version
            self.headers: dict[str, str] = {}
            while True:
                h = fp.readline(_MAX_LINE + 1)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                key = name.strip().lower()
                value = value.strip()
                # repeated headers fold into one, comma-separated (RFC 9110 5.3)
                self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
            if self.status != 100:
                break
        te = self.headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        self._chunk_left = 0  # bytes left in the current chunk (chunked bodies)
        length = self.headers.get("content-length")
        self._left: int | None = None  # bytes left of a Content-Length body; None: no length
        if not self._chunked and length is not None:
            try:
                self._left = max(int(length), 0)
            except ValueError:
                self._left = None
        conn = self.headers.get("connection", "").lower()
        self._will_close = "close" in conn or version == "HTTP/1.0"
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._left = 0
            self._chunked = False
        if not self._chunked and self._left is None:
            self._will_close = True  # the body ends with the connection
        self._eof = self._left == 0
        self._buf = b""

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def reusable(self) -> bool:
        """Whether the body has been read to its end and the connection may carry another request."""
        return self._eof and not self._buf and not self._will_close

    def isclosed(self) -> bool:
        return self._eof and not self._buf

    def _piece(self, n: int) -> bytes:
        """The next up to ``n`` bytes of body as they arrive (b"" at the end), blocking for at least one."""
        if self._eof:
            return b""
        fp = self._fp
        if self._chunked:
            if self._chunk_left == 0:
                size_line = fp.readline(_MAX_LINE + 1)
                if not size_line:
                    self._eof = True
                    self._will_close = True
                    return b""
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size from the daemon: {size_line[:40]!r}") from None
                if size == 0:
                    while fp.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = fp.read1(min(n, self._chunk_left))
            if not data:
                self._eof = self._will_close = True
                return b""
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                fp.readline(_MAX_LINE + 1)  # the CRLF after the chunk's data
            return data
        if self._left is not None:
            data = fp.read1(min(n, self._left))
            if not data:
                self._eof = self._will_close = True  # shorter than promised: the connection is done
                return b""
            self._left -= len(data)
            if self._left == 0:
                self._eof = True
            return data
        data = fp.read1(n)
        if not data:
            self._eof = True
        return data

    def read1(self, n: int = 65536) -> bytes:
        """Whatever body has arrived, up to ``n`` bytes; waits only when nothing has."""
        if self._buf:
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        return self._piece(n)

    def read(self, n: int | None = None) -> bytes:
        """The rest of the body, or up to ``n`` bytes of it (fewer only at its end)."""
        parts = [self._buf]
        got = len(self._buf)
        self._buf = b""
        while n is None or n < 0 or got < n:
            piece = self._piece(65536 if n is None or n < 0 else max(n - got, 1))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        data = b"".join(parts)
        if n is not None and n >= 0 and len(data) > n:
            data, self._buf = data[:n], data[n:]
        return data

    def readline(self) -> bytes:
        """One line of body including its ``\\n`` (the last may lack it); b"" at the end."""
        buf = self._buf
        while b"\n" not in buf:
            piece = self._piece(65536)
            if not piece:
                break
            buf += piece
        end = buf.find(b"\n") + 1 or len(buf)
        line, self._buf = buf[:end], buf[end:]
        return line

    def close(self) -> None:
        self._buf = b""
        self._eof = True
        self._will_close = True
