"""Which URLs serve a registry, and how to talk TLS to each.

Docker's rules: ``docker.io`` is served by ``registry-1.docker.io`` (index name
``https://index.docker.io/v1/`` for credentials), after any ``registry-mirrors``
(pulls only). A registry is *insecure* when listed in ``insecure-registries`` (by
name or by a CIDR its addresses fall in); 127.0.0.0/8 is insecure by default. For an
insecure registry HTTPS is tried without verifying the certificate, then plain HTTP.
Custom trust lives in ``<certs_dir>/<host[:port]>/``: ``*.crt`` CA certificates,
``*.cert`` + ``*.key`` client certificate pairs.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dockyard import errdefs

DOCKER_IO = "docker.io"
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"  # the key docker login stores Hub credentials under
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8",)


@dataclass(frozen=True)
class Endpoint:
    url: str  # "https://host:port", no trailing slash
    mirror: bool = False
    verify_tls: bool = True

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


@dataclass
class RegistrySettings:
    insecure_registries: list[str] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)
    certs_dir: Path = Path("/etc/dockyard/certs.d")
    insecure_loopback: bool = True  # Docker always adds 127.0.0.0/8; off only to test TLS on loopback
    proxies: dict[str, str] | None = None  # scheme -> proxy URL (+ "no"); None: HTTP(S)_PROXY/NO_PROXY
    proxy_loopback: bool = False  # loopback is never proxied, as in Go; on only to test a proxy locally


class Endpoints:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self._insecure_names: set[str] = set()
        self._insecure_nets: list[ipaddress._BaseNetwork] = [
            ipaddress.ip_network(c) for c in DEFAULT_INSECURE_CIDRS if settings.insecure_loopback]
        for entry in settings.insecure_registries:
            entry = entry.removeprefix("http://").removeprefix("https://").rstrip("/")
            try:
                self._insecure_nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._insecure_names.add(entry)
        self._mirrors = [m.rstrip("/") for m in settings.mirrors]
        for mirror in self._mirrors:
            if not mirror.startswith(("http://", "https://")):
                raise errdefs.InvalidParameter(f"invalid mirror: unsupported scheme in {mirror!r}")
        self._lock = threading.Lock()
        self._http_only: set[str] = set()  # insecure hosts found to speak plain HTTP

    def is_insecure(self, host: str) -> bool:
        if host in self._insecure_names:
            return True
        name = host
        if name.startswith("["):
            name = name[1:].split("]", 1)[0]
        elif name.count(":") == 1:
            name = name.rsplit(":", 1)[0]
        if name in self._insecure_names:
            return True
        return any(addr in net for addr in _addresses(name) for net in self._insecure_nets
                   if addr.version == net.version)

    def for_pull(self, domain: str) -> list[Endpoint]:
        """Endpoints in the order to try: mirrors first (Hub only), then the registry itself."""
        if domain == DOCKER_IO:
            mirrors = [Endpoint(m, mirror=True, verify_tls=not self.is_insecure(m.split("://", 1)[1]))
                       for m in self._mirrors]
            return mirrors + [Endpoint(DOCKER_HUB_ENDPOINT)]
        return self._own(domain)

    def for_push(self, domain: str) -> list[Endpoint]:
        return [Endpoint(DOCKER_HUB_ENDPOINT)] if domain == DOCKER_IO else self._own(domain)

    def _own(self, domain: str) -> list[Endpoint]:
        if not self.is_insecure(domain):
            return [Endpoint(f"https://{domain}")]
        with self._lock:
            if domain in self._http_only:
                return [Endpoint(f"http://{domain}")]
        return [Endpoint(f"https://{domain}", verify_tls=False), Endpoint(f"http://{domain}")]

    def learned_http(self, domain: str) -> None:
        """An insecure registry answered plain HTTP: skip the HTTPS attempt from now on."""
        with self._lock:
            self._http_only.add(domain)

    def tls_context(self, host: str, verify: bool = True) -> ssl.SSLContext:
        """Built once per state of ``certs.d/<host>``: certificates added later are used without a
        restart, as Docker reads them per connection."""
        try:
            stamp = (self.settings.certs_dir / host).stat().st_mtime_ns
        except OSError:
            stamp = 0
        return _tls_context(self.settings.certs_dir, host, verify, stamp)


@functools.lru_cache(maxsize=128)
def _tls_context(certs_dir: Path, host: str, verify: bool, stamp: int) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    directory = certs_dir / host
    if directory.is_dir():
        for ca in sorted(directory.glob("*.crt")):
            ctx.load_verify_locations(cafile=str(ca))
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.exists():
                raise errdefs.InvalidParameter(f"missing key {key.name} for client certificate {cert.name}")
            ctx.load_cert_chain(str(cert), str(key))
    return ctx


@functools.lru_cache(maxsize=256)
def _addresses(name: str) -> tuple[ipaddress._BaseAddress, ...]:
    try:
        return (ipaddress.ip_address(name),)
    except ValueError:
        pass
    if name == "localhost":
        return (ipaddress.ip_address("127.0.0.1"),)
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return ()
    return tuple(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos)
