"""The CLI's thin Docker Engine API client: stdlib only, because it is on every command's start-up path.

One persistent HTTP/1.1 connection (unix socket or TCP, optionally TLS), API version negotiated
once through ``/_ping`` (the lower of ours and the server's, unless DOCKER_API_VERSION pins it),
``{"message": ...}`` error bodies turned into :class:`APIError`, and the connection hijack that
attach uses (``Connection: Upgrade`` / ``Upgrade: tcp`` -> ``101``, then a raw socket).
"""

from __future__ import annotations

import json
import os
import socket
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Iterator

from dockyard.cli.transport import Connection, RemoteDisconnected, Response

CLIENT_API_VERSION = "1.50"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
USER_AGENT = "Dockyard-Client/0.1.0 (linux)"


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its ``message`` field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class ConnectError(Exception):
    """The daemon could not be reached at all (``detail``: why, when it is not simply absent)."""

    def __init__(self, host: str, detail: str = "") -> None:
        super().__init__(host)
        self.host = host
        self.detail = detail

    def __str__(self) -> str:
        if self.detail:
            return f"error during connect: {self.detail}"
        return f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?"


class TLSOptions:
    # a plain class: importing dataclasses costs more start-up time than it saves here
    def __init__(self, verify: bool = False, ca_cert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.verify, self.ca_cert, self.cert, self.key = verify, ca_cert, cert, key


def parse_host(host: str, tls: bool) -> tuple[str, str, int]:
    """``unix:///p`` -> ("unix", "/p", 0); ``tcp://h:p`` -> ("tcp", h, p) (2375, or 2376 with TLS)."""
    if host.startswith("unix://"):
        return "unix", host[len("unix://"):], 0
    if host.startswith("/"):
        return "unix", host, 0
    for prefix in ("tcp://", "http://", "https://"):
        if host.startswith(prefix):
            rest = host[len(prefix):].rstrip("/")
            break
    else:
        raise ValueError(f"unable to parse docker host `{host}`")
    address, _, port = rest.rpartition(":") if ":" in rest.lstrip("[").split("]")[-1] else (rest, "", "")
    address = address.strip("[]") or "localhost"
    return "tcp", address, int(port) if port else (2376 if tls else 2375)


class Client:
    def __init__(self, host: str, tls: TLSOptions | None = None, version: str | None = None,
                 timeout: float | None = None) -> None:
        self.host = host
        self.tls = tls
        self.timeout = timeout
        self.scheme, self.address, self.port = parse_host(host, tls is not None)
        self._version = version
        self._conn: Connection | None = None
        self.server_os = "linux"

    # -- transport --------------------------------------------------------------------------
    def _ssl_context(self):  # noqa: ANN202 - ssl is imported only when TLS is used
        import ssl

        assert self.tls is not None
        ctx = ssl.create_default_context(cafile=self.tls.ca_cert) if self.tls.verify else \
            ssl._create_unverified_context()  # --tls without verify: docker's tlsverify=false
        if self.tls.cert and self.tls.key:
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
        return ctx

    def _new_connection(self, timeout: float | None) -> Connection:
        context = self._ssl_context() if self.tls is not None and self.scheme != "unix" else None
        return Connection(self.scheme, self.address, self.port, timeout=timeout, ssl_context=context)

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              ) -> Response:
        headers = {"User-Agent": USER_AGENT, **headers}
        while True:
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._new_connection(self.timeout)
            try:
                self._conn.request(method, url, body=body, headers=headers)
                return self._conn.getresponse(method)
            except (FileNotFoundError, ConnectionRefusedError, socket.gaierror):
                raise ConnectError(self.host) from None
            except (RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # a kept-alive connection the server had closed: resend once on a fresh one; a fresh
                # connection that fails is the daemon going away (never resend: it may have acted)
                self._conn.close()
                self._conn = None
                if not reused:
                    raise ConnectError(self.host, str(e) or "connection closed by the daemon") from None
            except PermissionError as e:
                raise ConnectError(self.host, f"permission denied while trying to connect to {self.host}: "
                                              f"{e.strerror}") from None
            except OSError as e:  # TLS handshake failures, unreachable hosts, timeouts
                raise ConnectError(self.host, str(e)) from None

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = self._negotiate()
        return self._version

    def _negotiate(self) -> str:
        resp = self._send("GET", "/_ping", None, {})
        resp.read()
        server = resp.getheader("Api-Version")
        self.server_os = resp.getheader("Ostype") or "linux"
        if not server:
            return CLIENT_API_VERSION
        return min(CLIENT_API_VERSION, server, key=lambda v: tuple(int(p) for p in v.split(".")))

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        url = f"/v{self.version}{path}"
        if query:
            items = []
            for k, v in query.items():
                if isinstance(v, list):  # repeated key (images/get?names=a&names=b)
                    items += [(k, str(x)) for x in v]
                elif v is not None:
                    items.append((k, _query_value(v)))
            if items:
                url += "?" + "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in items)
        return url

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None,
                raw_body: bytes | None = None) -> Response:
        """Send a request; raise APIError for an error status; return the open response."""
        hdrs = dict(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is None and method == "POST":
            hdrs.setdefault("Content-Type", "text/plain")
        resp = self._send(method, self.url(path, query), data, hdrs)
        if resp.status >= 400:
            raise error_from_response(resp)
        return resp

    def request_stream(self, method: str, path: str, query: dict[str, Any] | None,
                       body_iter: Iterator[bytes], headers: dict[str, str]) -> Response:
        """A request whose body is streamed with chunked encoding (image load/import)."""
        if self._conn is None:
            self._conn = self._new_connection(self.timeout)
        try:
            self._conn.request(method, self.url(path, query), body=body_iter,
                               headers={"User-Agent": USER_AGENT, **headers}, encode_chunked=True)
            resp = self._conn.getresponse(method)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConnectError(self.host) from None
        if resp.status >= 400:
            raise error_from_response(resp)
        return resp

    def json(self, method: str, path: str, query: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        resp = self.request(method, path, query, body)
        data = resp.read()
        if not data.strip():
            return None
        return json.loads(data)

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.json("GET", path, query)

    def post(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self.json("POST", path, query, body)

    def delete(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.json("DELETE", path, query)

    def hijack(self, path: str, query: dict[str, Any], body: Any = None) -> tuple[socket.socket, bytes]:
        """POST with ``Upgrade: tcp``; return the raw socket and any bytes read past the headers.

        The answer's head is read here, byte-exact, so that whatever the daemon sends right after
        the 101 is handed back with the socket rather than left in a reader's buffer.
        """
        url = self.url(path, query)
        conn = self._new_connection(None)
        try:
            conn.connect()
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConnectError(self.host) from None
        sock = conn.sock
        data = json.dumps(body).encode() if body is not None else b""
        content = f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n" if data else \
            "Content-Type: text/plain\r\n"
        request = (f"POST {url} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\n"
                   f"{content}Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        sock.sendall(request.encode() + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise APIError(500, "attach: connection closed before response")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status in (101, 200):
            return sock, rest
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        sock.close()
        raise APIError(status, _message_of(rest, status))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _message_of(data: bytes, status: int) -> str:
    try:
        body = json.loads(data)
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
    except ValueError:
        pass
    text = data.decode(errors="replace").strip()
    return text or _REASONS.get(status, f"status {status}")


# the phrases for an error answer without a body (the few statuses the daemon uses)
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}


def error_from_response(resp: Response) -> APIError:
    return APIError(resp.status, _message_of(resp.read(), resp.status))


def filters_arg(pairs: list[str] | None) -> dict[str, dict[str, bool]] | None:
    """``-f key=value`` flags -> the filters JSON docker sends (``{"key": {"value": true}}``)."""
    if not pairs:
        return None
    out: dict[str, dict[str, bool]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"bad format of filter (expected name=value)")
        out.setdefault(key.strip().lower(), {})[value] = True
    return out


# percent-encoding by hand: urllib.parse (with ipaddress) is ~3 ms of every command's start-up
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_PATH_SAFE = _UNRESERVED | frozenset(b":@&=+$/")
_QUERY_SAFE = _UNRESERVED | frozenset(b" ")


def _percent(s: str, safe: frozenset[int]) -> str:
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in s.encode())


def _quote_plus(s: str) -> str:
    """urllib.parse.quote_plus: a form-encoded query key or value."""
    return _percent(s, _QUERY_SAFE).replace(" ", "+")


def path_quote(s: str) -> str:
    # docker puts names into paths as they are ("me/box:1"), escaping only what URLs cannot carry
    return _percent(s, _PATH_SAFE)


def from_environment(host: str | None, tls_flags: dict[str, Any]) -> Client:
    """Build the client from -H / --tls* flags and DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH."""
    host = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    env_verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0", "false")
    verify = bool(tls_flags.get("tlsverify")) or env_verify
    tls: TLSOptions | None = None
    if verify or tls_flags.get("tls"):
        cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")

        def pick(flag: str, name: str) -> str | None:
            value = tls_flags.get(flag)
            if value:
                return value
            candidate = os.path.join(cert_path, name)
            return candidate if os.path.exists(candidate) else None

        tls = TLSOptions(verify=verify, ca_cert=pick("tlscacert", "ca.pem"),
                         cert=pick("tlscert", "cert.pem"), key=pick("tlskey", "key.pem"))
    return Client(host, tls=tls, version=os.environ.get("DOCKER_API_VERSION") or None)
