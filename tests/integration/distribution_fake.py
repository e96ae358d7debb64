"""A small fake registry for fault tests, and images made in memory.

``FakeRegistry`` serves the v2 API from dicts (manifests by tag/digest, blobs by digest)
on 127.0.0.1 in a thread. ``faults[digest]`` (or ``faults["manifest:<ref>"]``: 500 and 429
only) is a list of actions consumed one per GET of that blob: ``"500"``, ``"429"`` (Retry-After: 0), ``"truncate"`` (close after half),
``"wrong"`` (other bytes, right length), ``"stall"`` (send half, then hang). ``blob_rate``
makes every blob body slow, ``ignore_range`` answers Range requests with the whole blob, and
``blob_ranges`` records each blob GET's Range header. With
``users`` set it requires bearer tokens from its own ``/token`` endpoint (basic auth
checked there), and counts token requests per scope.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass, field
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(tar: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(tar, mtime=0)
    if kind == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(tar)
    return tar


@dataclass
class Image:
    config: bytes
    layers: list[tuple[str, bytes]]  # (media type, blob)
    manifest: bytes
    media_type: str

    @property
    def id(self) -> str:
        return digest_of(self.config)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_image(layer_files: list[dict[str, bytes]], kind: str = "gzip", oci: bool = False,
               arch: str = "amd64") -> Image:
    tars = [layer_tar(files) for files in layer_files]
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(tars))]}).encode()
    if oci:
        types = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                 "zstd": "application/vnd.oci.image.layer.v1.tar+zstd", "none": "application/vnd.oci.image.layer.v1.tar"}
        config_type, manifest_type = "application/vnd.oci.image.config.v1+json", OCI_MANIFEST
    else:
        types = {"gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                 "none": "application/vnd.docker.image.rootfs.diff.tar"}
        config_type, manifest_type = "application/vnd.docker.container.image.v1+json", DOCKER_MANIFEST
    layers = [(types[kind], compress(t, kind)) for t in tars]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": t, "size": len(b), "digest": digest_of(b)} for t, b in layers]}).encode()
    return Image(config, layers, manifest, manifest_type)


def make_index(entries: list[tuple[Image, dict]], oci: bool = True) -> tuple[str, bytes]:
    media_type = OCI_INDEX if oci else DOCKER_LIST
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "manifests": [{"mediaType": image.media_type, "size": len(image.manifest), "digest": image.digest,
                          "platform": platform} for image, platform in entries]}
    return media_type, json.dumps(doc).encode()


def docker_archive(image: Image, tag: str) -> bytes:
    """``docker save`` form of an image (uncompressed layers), to load it locally."""
    buf = io.BytesIO()
    config = json.loads(image.config)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        names = []
        for i, diff_id in enumerate(config["rootfs"]["diff_ids"]):
            _, blob = image.layers[i]
            raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
            assert digest_of(raw) == diff_id
            add(f"l{i}/layer.tar", raw)
            names.append(f"l{i}/layer.tar")
        add(image.id[7:] + ".json", image.config)
        add("manifest.json", json.dumps([{"Config": image.id[7:] + ".json", "RepoTags": [tag],
                                          "Layers": names}]).encode())
    return buf.getvalue()


# /v1/search answers for "busybox": an official image, and a long description docker truncates
BUSYBOX_SEARCH = [
    {"name": "busybox", "description": "Busybox base image.", "star_count": 3000, "is_official": True,
     "is_automated": False},
    {"name": "someone/busybox-extra", "description": "A very long description that goes on and on, past "
                                                     "forty-five characters", "star_count": 4,
     "is_official": False, "is_automated": True},
]


@dataclass
class FakeRegistry:
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)  # repo -> ref -> (type, bytes)
    blobs: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, str] | None = None
    blob_gets: dict[str, int] = field(default_factory=dict)
    token_requests: list[str] = field(default_factory=list)
    stall_seconds: float = 30.0
    blob_delay: float = 0.0  # seconds each blob GET waits before answering
    blob_rate: int = 0  # when set, blob bodies are sent at about this many bytes per second
    ignore_range: bool = False  # answer a blob GET with Range as 200 and the whole blob
    blob_ranges: list[tuple[str, str]] = field(default_factory=list)  # (digest, Range header) per blob GET
    files: dict[str, bytes] = field(default_factory=dict)  # plain paths outside /v2/ (import URLs)
    search_results: list[dict] = field(default_factory=list)  # served by /v1/search (substring of name)
    search_queries: list[str] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    upload_faults: list[str] = field(default_factory=list)  # consumed one per upload POST/PATCH
    in_flight: int = 0
    peak_in_flight: int = 0
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, tag: str, image: Image) -> None:
        refs = self.manifests.setdefault(repo, {})
        refs[tag] = refs[image.digest] = (image.media_type, image.manifest)
        self.blobs[image.id] = image.config
        for _, blob in image.layers:
            self.blobs[digest_of(blob)] = blob

    def add_index(self, repo: str, tag: str, media_type: str, data: bytes) -> None:
        refs = self.manifests.setdefault(repo, {})
        refs[tag] = refs[digest_of(data)] = (media_type, data)

    def start(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                # A TLS ClientHello (clients try https first on insecure hosts) has no line end
                # to wait for: refuse it at once, as Go's server does, instead of blocking in readline
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"\x16":
                        return
                except OSError:
                    return
                super().handle()

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
                self._send(status, json.dumps({"errors": [{"code": code, "message": message}]}).encode(),
                           {"Content-Type": "application/json", **(headers or {})})

            def _authorized(self) -> bool:
                if registry.users is None:
                    return True
                if self.headers.get("Authorization", "").startswith("Bearer good-"):
                    return True
                host = self.headers.get("Host")
                scope = ""
                parts = self.path.split("/")
                if len(parts) > 3 and parts[1] == "v2":
                    end = [i for i, p in enumerate(parts) if p in ("manifests", "blobs", "tags")]
                    if end:
                        scope = f' ,scope="repository:{"/".join(parts[2:end[0]])}:pull"'.replace(" ,", ",")
                self._error(401, "UNAUTHORIZED", "authentication required",
                            {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="fake"{scope}'})
                return False

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/token":
                    query = self.path.split("?", 1)[1] if "?" in self.path else ""
                    registry.token_requests.append(query)
                    auth = self.headers.get("Authorization", "")
                    if auth.startswith("Basic "):
                        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                        if registry.users.get(user) != password:
                            self._send(401, b'{"details":"incorrect username or password"}')
                            return
                    doc = {"token": f"good-{len(registry.token_requests)}", "expires_in": 300}
                    if "offline_token=true" in query and auth:
                        doc["refresh_token"] = "refresh-" + user
                    self._send(200, json.dumps(doc).encode())
                    return
                if path == "/v1/search":
                    from urllib.parse import parse_qs
                    query = parse_qs(self.path.split("?", 1)[1] if "?" in self.path else "")
                    term, n = query.get("q", [""])[0], int(query.get("n", ["25"])[0])
                    registry.search_queries.append(term)
                    found = [r for r in registry.search_results if term in r["name"]][:n]
                    self._send(200, json.dumps({"query": term, "num_results": len(found), "results": found}).encode(),
                               {"Content-Type": "application/json"})
                    return
                if path in registry.files:
                    self._send(200, registry.files[path], {"Content-Type": "application/x-tar"})
                    return
                if not self._authorized():
                    return
                if path == "/v2/":
                    self._send(200, b"{}")
                    return
                parts = path.split("/")
                if parts[-2:] == ["tags", "list"]:
                    repo = "/".join(parts[2:-2])
                    tags = sorted(r for r in registry.manifests.get(repo, {}) if not r.startswith("sha256:"))
                    self._send(200, json.dumps({"name": repo, "tags": tags}).encode(),
                               {"Content-Type": "application/json"})
                    return
                if "manifests" in parts:
                    i = parts.index("manifests")
                    repo, ref = "/".join(parts[2:i]), parts[i + 1]
                    found = registry.manifests.get(repo, {}).get(ref)
                    if repo not in registry.manifests:
                        self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
                        return
                    if found is None:
                        self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                        return
                    fault = registry.faults.get(f"manifest:{ref}", [])
                    action = fault.pop(0) if fault else ""
                    if action == "429":
                        self._error(429, "TOOMANYREQUESTS", "slow down", {"Retry-After": "0"})
                        return
                    if action == "500":
                        self._error(500, "UNKNOWN", "internal error")
                        return
                    self._send(200, found[1], {"Content-Type": found[0], "Docker-Content-Digest": digest_of(found[1])})
                    return
                if "blobs" in parts:
                    digest = parts[parts.index("blobs") + 1]
                    blob = registry.blobs.get(digest)
                    if blob is None:
                        self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                        return
                    registry.blob_gets[digest] = registry.blob_gets.get(digest, 0) + 1
                    if self.command == "GET" and registry.blob_delay:
                        with registry._count_lock:
                            registry.in_flight += 1
                            registry.peak_in_flight = max(registry.peak_in_flight, registry.in_flight)
                        time.sleep(registry.blob_delay)
                        with registry._count_lock:
                            registry.in_flight -= 1
                    fault = registry.faults.get(digest, [])
                    action = fault.pop(0) if fault else ""
                    start = 0
                    rng = self.headers.get("Range", "")
                    if self.command == "GET":
                        registry.blob_ranges.append((digest, rng))
                    if rng.startswith("bytes=") and action == "" and not registry.ignore_range:
                        start = int(rng[6:].split("-")[0])
                    if action == "500":
                        self._error(500, "UNKNOWN", "internal error")
                    elif action == "429":
                        self._error(429, "TOOMANYREQUESTS", "slow down", {"Retry-After": "0"})
                    elif action in ("truncate", "stall"):
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(blob)))
                        self.end_headers()
                        self.wfile.write(blob[:len(blob) // 2])
                        self.wfile.flush()
                        if action == "stall":
                            time.sleep(registry.stall_seconds)
                        self.close_connection = True
                    elif action == "wrong":
                        self._send(200, bytes(reversed(blob)))
                    elif registry.blob_rate and self.command == "GET":
                        self._send_slowly(206 if start else 200, blob, start)
                    elif start:
                        self._send(206, blob[start:], {"Content-Range": f"bytes {start}-{len(blob) - 1}/{len(blob)}"})
                    else:
                        self._send(200, blob)
                    return
                self._error(404, "NAME_UNKNOWN", "repository name not known to registry")

            do_HEAD = do_GET

            def _send_slowly(self, status: int, blob: bytes, start: int) -> None:
                """The blob from ``start`` in 64 KiB pieces at about ``blob_rate`` bytes/s (a slow
                link); the rate is read for each piece, so a test can speed it up mid-transfer."""
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                self.send_header("Content-Length", str(len(blob) - start))
                self.end_headers()
                piece = 64 << 10
                try:
                    for offset in range(start, len(blob), piece):
                        self.wfile.write(blob[offset:offset + piece])
                        self.wfile.flush()
                        if registry.blob_rate:
                            time.sleep(piece / registry.blob_rate)
                except OSError:  # the client went away (a daemon killed mid-pull)
                    self.close_connection = True

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _upload_fault(self) -> bool:
                action = registry.upload_faults.pop(0) if registry.upload_faults else ""
                if action == "500":
                    self._body()
                    self._error(500, "UNKNOWN", "upload failed")
                    return True
                return False

            def do_PATCH(self) -> None:  # upload data; faults from upload_faults, one per PATCH
                uid = self.path.split("?", 1)[0].rsplit("/", 1)[1]
                if self._upload_fault():
                    return
                registry.uploads[uid] += self._body()
                self._send(202, b"", {"Location": self.path.split("?", 1)[0],
                                      "Range": f"0-{len(registry.uploads[uid]) - 1}"})

            def do_PUT(self) -> None:
                from urllib.parse import parse_qs
                path, _, query = self.path.partition("?")
                parts = path.split("/")
                data = self._body()
                if "manifests" in parts:
                    i = parts.index("manifests")
                    repo = "/".join(parts[2:i])
                    registry.manifests.setdefault(repo, {})[parts[i + 1]] = (self.headers["Content-Type"], data)
                    registry.manifests[repo][digest_of(data)] = (self.headers["Content-Type"], data)
                    self._send(201, b"", {"Docker-Content-Digest": digest_of(data)})
                    return
                uid = path.rsplit("/", 1)[1]
                blob = registry.uploads.pop(uid) + data
                digest = parse_qs(query)["digest"][0]
                if digest_of(blob) != digest:
                    self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
                    return
                registry.blobs[digest] = blob
                self._send(201, b"", {"Docker-Content-Digest": digest})

            def do_POST(self) -> None:  # blob uploads; the OAuth side of the token server
                from urllib.parse import parse_qs
                if "/blobs/uploads/" in self.path:
                    self._body()
                    if self._upload_fault():
                        return
                    uid = os.urandom(8).hex()
                    registry.uploads[uid] = b""
                    repo = self.path.split("/blobs/uploads/")[0][len("/v2/"):]
                    self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{uid}"})
                    return
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
                registry.token_requests.append("POST " + "&".join(f"{k}={v[0]}" for k, v in sorted(form.items())))
                if self.path.split("?", 1)[0] != "/token" or not form.get("refresh_token", [""])[0].startswith(
                        "refresh-"):
                    self._send(401, b'{"error":"invalid_grant"}')
                    return
                self._send(200, json.dumps({"access_token": "good-oauth", "expires_in": 300}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.blob_rate = 0  # a handler thread still sending a throttled blob ends at once
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeRegistry":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ForwardProxy:
    """An HTTP proxy for tests: CONNECT tunnels, and absolute-form requests piped to their host
    (the registry accepts absolute-form targets, so bytes need no rewriting). Records targets."""

    def __init__(self, require_auth: str | None = None) -> None:
        import socket
        import socketserver

        proxy = self
        self.targets: list[str] = []
        self.require_auth = require_auth

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client = self.request
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                first = head.split(b"\r\n", 1)[0].decode()
                method, target, _ = first.split(" ", 2)
                if proxy.require_auth and f"Proxy-Authorization: Basic {proxy.require_auth}".encode() not in head:
                    client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    rest = head.split(b"\r\n\r\n", 1)[1]
                    proxy.targets.append(f"CONNECT {target}")
                    upstream = socket.create_connection((host, int(port)))
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    netloc = target.split("://", 1)[1].split("/", 1)[0]
                    host, _, port = netloc.rpartition(":")
                    proxy.targets.append(f"{method} {target}")
                    upstream = socket.create_connection((host, int(port or 80)))
                    rest = head
                if rest:
                    upstream.sendall(rest)
                _pump(client, upstream)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pump(a, b) -> None:  # noqa: ANN001 - two sockets, both ways until either side closes
    import select
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(1 << 16)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()
