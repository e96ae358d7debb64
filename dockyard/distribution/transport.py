"""HTTP(S) requests to a registry: stdlib ``http.client``, one kept-open connection per
thread and origin, timeouts that bound a stalled peer, redirects followed.

Synchronous on purpose: pulls and pushes run in worker threads (one per layer transfer),
where blocking reads hand bytes straight to the content store without an event loop hop.
A redirect to another origin (a registry's blob storage, a CDN) never carries the
registry's Authorization header.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from dockyard import errdefs

_MAX_REDIRECTS = 10
USER_AGENT = "docker/28.2.2 go/go1.24 git-commit/dockyard os/linux arch/amd64 (dockyard 0.1.0)"


class ConnectionFailed(errdefs.Unavailable):
    """The registry could not be reached, or the connection broke or stalled."""


class TLSFailed(ConnectionFailed):
    """The TLS handshake failed (a plain-HTTP registry answering an https:// request, a bad cert)."""


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    url: str  # after redirects
    _raw: http.client.HTTPResponse | None = field(default=None, repr=False)
    _release: object = field(default=None, repr=False)

    def read(self, n: int = -1) -> bytes:
        """Read from the body; a broken or stalled connection raises ConnectionFailed."""
        if self._raw is None:
            return b""
        try:
            return self._raw.read(n) if n >= 0 else self._raw.read()
        except (OSError, http.client.HTTPException) as e:
            self.close(reuse=False)
            raise ConnectionFailed(f"error reading from {_origin(self.url)}: {_describe(e)}") from None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if self._raw is None:
            return 0
        try:
            return self._raw.readinto(buffer)
        except (OSError, http.client.HTTPException) as e:
            self.close(reuse=False)
            raise ConnectionFailed(f"error reading from {_origin(self.url)}: {_describe(e)}") from None

    def iter_chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while True:
            chunk = self.read(size)
            if not chunk:
                return
            yield chunk

    def body(self, limit: int = 32 << 20) -> bytes:
        """The whole body (manifests, errors, tokens): bounded, so a hostile server cannot fill memory."""
        data = self.read(limit + 1)
        if len(data) > limit:
            self.close(reuse=False)
            raise errdefs.InvalidParameter(f"response from {_origin(self.url)} is larger than {limit} bytes")
        self.close()
        return data

    def close(self, reuse: bool = True) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        if reuse and not raw.isclosed():
            try:  # drain a short remainder so the connection can be reused
                if raw.length is not None and raw.length <= 65536:
                    raw.read()
            except (OSError, http.client.HTTPException):
                reuse = False
        if callable(self._release):
            self._release(reuse and raw.isclosed() and not raw.will_close)
        raw.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _describe(e: BaseException, netloc: str = "") -> str:
    """An error in the words of Go's net package, which users see from dockerd: a refused
    connection is ``dial tcp HOST:PORT: connect: connection refused``; other system errors read
    as their lower-case strerror, without Python's ``[Errno N]``."""
    if isinstance(e, socket.timeout):
        return "timeout: the registry stopped sending data"
    if isinstance(e, ConnectionRefusedError) and netloc:
        return f"dial tcp {netloc}: connect: connection refused"
    if isinstance(e, socket.gaierror) and netloc:
        return f"dial tcp: lookup {netloc.rsplit(':', 1)[0]}: no such host"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[:1].lower() + e.strerror[1:]
    return str(e) or type(e).__name__


class Transport:
    """Requests with per-thread connection reuse. ``tls_for(host)`` gives the SSL context of
    a host (custom CA, client cert, or verification off for an insecure registry).

    Proxies as Docker (Go) takes them: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` from the
    environment unless ``proxies`` is given; HTTPS goes through a CONNECT tunnel, HTTP as
    absolute-form requests; loopback destinations are never proxied (``proxy_loopback`` is
    for tests); the proxy itself is spoken to in plain HTTP, with basic auth from its URL."""

    def __init__(self, tls_for, timeout: float = 30.0, proxies: dict[str, str] | None = None,
                 proxy_loopback: bool = False) -> None:
        self._tls_for = tls_for
        self.timeout = timeout
        self._local = threading.local()
        self._proxies = urllib.request.getproxies_environment() if proxies is None else proxies
        self._proxy_loopback = proxy_loopback

    def _proxy_for(self, scheme: str, netloc: str) -> urllib.parse.SplitResult | None:
        proxy = self._proxies.get(scheme)
        if not proxy:
            return None
        host = urllib.parse.urlsplit(f"//{netloc}").hostname or ""
        if not self._proxy_loopback and _is_loopback(host):
            return None
        if urllib.request.proxy_bypass_environment(host, self._proxies):
            return None
        return urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)

    def _pool(self) -> dict[str, tuple[http.client.HTTPConnection, dict[str, str] | None]]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, dict[str, str] | None]:
        """A connection for the origin, and for plain HTTP through a proxy the headers that go
        with its absolute-form requests (None: origin-form)."""
        key = f"{scheme}://{netloc}"
        pool = self._pool()
        pooled = pool.pop(key, None)
        if pooled is not None:
            return pooled
        if scheme not in ("http", "https"):
            raise errdefs.InvalidParameter(f"unsupported URL scheme {scheme!r}")
        proxy = self._proxy_for(scheme, netloc)
        if proxy is None:
            if scheme == "https":
                return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._tls_for(netloc)), None
            return http.client.HTTPConnection(netloc, timeout=self.timeout), None
        proxy_headers = {}
        if proxy.username:
            credentials = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        address = (proxy.hostname or "", proxy.port or 80)
        if scheme == "https":
            conn = http.client.HTTPSConnection(*address, timeout=self.timeout, context=self._tls_for(netloc))
            target = urllib.parse.urlsplit(f"//{netloc}")
            conn.set_tunnel(target.hostname or "", target.port or 443, headers=proxy_headers)
            return conn, None
        return http.client.HTTPConnection(*address, timeout=self.timeout), proxy_headers

    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                body: bytes | BinaryIO | Iterable[bytes] | None = None, follow: bool = True) -> Response:
        """Send one request (following redirects for GET/HEAD); the caller reads and closes the response."""
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._send(method, url, headers, body)
            if not (follow and method in ("GET", "HEAD") and response.status in (301, 302, 303, 307, 308)):
                return response
            location = response.headers.get("location", "")
            response.close()
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise errdefs.Unavailable(f"{method} {url}: stopped after {_MAX_REDIRECTS} redirects")

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: bytes | BinaryIO | Iterable[bytes] | None) -> Response:
        parts = urllib.parse.urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        key = f"{parts.scheme}://{parts.netloc}"
        # A kept-open connection may have been closed by the server meanwhile: retry once on a
        # fresh one, but only when nothing of a streamed body was consumed.
        retry_ok = body is None or isinstance(body, (bytes, bytearray))
        for attempt in (0, 1):
            conn, proxy_headers = self._connection(parts.scheme, parts.netloc)
            fresh = conn.sock is None
            sent_target, sent_headers = target, headers
            if proxy_headers is not None:  # plain HTTP through a proxy: absolute-form
                sent_target = f"{parts.scheme}://{parts.netloc}{target}"
                sent_headers = {**headers, **proxy_headers}
            try:
                chunked = body is not None and not isinstance(body, (bytes, bytearray)) \
                    and "Content-Length" not in headers
                if chunked:
                    conn.request(method, sent_target, body=body, headers=sent_headers, encode_chunked=True)
                else:
                    conn.request(method, sent_target, body=body, headers=sent_headers)
                raw = conn.getresponse()
            except ssl.SSLError as e:
                conn.close()
                raise TLSFailed(f'{method.capitalize()} "{url}": tls: {e.reason or e}') from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if attempt == 0 and not fresh and retry_ok:
                    continue
                raise ConnectionFailed(f'{method.capitalize()} "{url}": {_describe(e, parts.netloc)}') from None
            break

        def release(reuse: bool, conn=conn, key=key, proxy_headers=proxy_headers) -> None:
            if reuse:
                self._pool()[key] = (conn, proxy_headers)
            else:
                conn.close()

        response = Response(status=raw.status, reason=raw.reason,
                            headers={k.lower(): v for k, v in raw.getheaders()}, url=url, _raw=raw,
                            _release=release)
        if method == "HEAD":
            response.close()
        return response
