"""A small fake Docker Engine API on a unix socket, for CLI tests (test-only code).

It records every request and simulates just enough of a daemon: images, containers whose
"program" is interpreted from the command (echo, cat, exit N, a missing executable), attach via
the connection hijack with multiplexed frames, wait conditions, logs, and JSON message streams.
The real docker CLI can be pointed at it too, which is how our output is compared with docker's.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import socketserver
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

API_VERSION = "1.50"


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    cmd: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    created: float
    status: str = "created"
    exit_code: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    output: list[tuple[int, bytes]] = field(default_factory=list)
    attach_socks: list[socket.socket] = field(default_factory=list)
    stdin_data: bytearray = field(default_factory=bytearray)
    stdin_eof: threading.Event = field(default_factory=threading.Event)
    stdin_attached: bool = False
    exited: threading.Condition = field(default_factory=threading.Condition)
    exits: int = 0
    removed: bool = False
    ports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    size: int
    created: int
    labels: dict[str, str] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.raw_paths: list[str] = []
        self.auth_headers: list[str | None] = []
        self.containers: dict[str, FakeContainer] = {}
        self.images: dict[str, FakeImage] = {}
        self.pullable: dict[str, FakeImage] = {}
        self.events: list[dict[str, Any]] = []
        self.dangling: list[FakeImage] = []
        self.execs: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, Any]] = {}

    def add_image(self, ref: str, size: int = 4_260_000, created: int | None = None,
                  pullable_only: bool = False) -> FakeImage:
        img = FakeImage("sha256:" + hashlib.sha256(ref.encode()).hexdigest(), [_norm(ref)], size,
                        created if created is not None else int(time.time()) - 3 * 86400)
        (self.pullable if pullable_only else self.images)[_norm(ref)] = img
        return img

    def find_container(self, ref: str) -> FakeContainer | None:
        for c in self.containers.values():
            if c.id == ref or c.name == ref or (len(ref) >= 3 and c.id.startswith(ref)):
                return c
        return None

    def find_image(self, ref: str) -> FakeImage | None:
        if ref in self.images:
            return self.images[ref]
        norm = _norm(ref)
        if norm in self.images:
            return self.images[norm]
        for img in self.images.values():
            if img.id == ref or img.id[7:].startswith(ref.removeprefix("sha256:")):
                return img
        return None


def _norm(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in last else ref + ":latest"


def _go_time(t: float) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _status_text(c: FakeContainer) -> str:
    from dockyard.cli.formatting import human_duration

    now = time.time()
    if c.status == "running":
        return f"Up {human_duration(now - c.started_at)}"
    if c.status == "paused":
        return f"Up {human_duration(now - c.started_at)} (Paused)"
    if c.status == "exited":
        return f"Exited ({c.exit_code}) {human_duration(now - c.finished_at)} ago"
    return "Created"


def _port_map(ports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in ports:
        key = f"{p['PrivatePort']}/{p['Type']}"
        out.setdefault(key, None)
        if p.get("IP"):
            out[key] = (out[key] or []) + [{"HostIp": p["IP"], "HostPort": str(p["PublicPort"])}]
    return out


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _send_json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", self.server.api_version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send_json({"message": message}, status)

    def _no_content(self, status: int = 204) -> None:
        self.send_response(status)
        self.send_header("Api-Version", self.server.api_version)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _start_chunked(self, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", self.server.api_version)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path.startswith("/v") and "/" in path[1:]:
            path = "/" + path.split("/", 2)[2]
        query = parse_qs(url.query, keep_blank_values=True)
        raw = self._read_body()
        body: Any = None
        if raw and self.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(raw)
        elif raw:
            body = raw
        state = self.server.state
        with state.lock:
            state.requests.append((method, path, query, body))
            state.raw_paths.append(self.path)
            state.auth_headers.append(self.headers.get("X-Registry-Auth"))
        if path.startswith("/images/") and path.endswith("/push"):  # names contain slashes
            self.h_POST_images_X_push(query, body, path[len("/images/"):-len("/push")])
            return
        parts = path.strip("/").split("/")
        name = f"h_{method}_" + "_".join(p if i == 0 or p in _STATIC else "X" for i, p in enumerate(parts))
        handler = getattr(self, name, None)
        if handler is None:
            self._error(404, f"page not found: {method} {path}")
            return
        args = [p for i, p in enumerate(parts) if i and p not in _STATIC]
        handler(query, body, *args)

    def _q(self, query: dict[str, list[str]], key: str, default: str = "") -> str:
        return query.get(key, [default])[0]

    # -- system ---------------------------------------------------------------------------------
    def h_GET__ping(self, q: Any, b: Any) -> None:
        self.send_response(200)
        self.send_header("Api-Version", self.server.api_version)
        self.send_header("Ostype", "linux")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def h_HEAD__ping(self, q: Any, b: Any) -> None:
        self.send_response(200)
        self.send_header("Api-Version", self.server.api_version)
        self.send_header("Ostype", "linux")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def h_GET_version(self, q: Any, b: Any) -> None:
        self._send_json({"Platform": {"Name": "Dockyard"}, "Version": "0.1.0", "ApiVersion": API_VERSION,
                         "MinAPIVersion": "1.24", "GitCommit": "fake", "GoVersion": "python3.11",
                         "Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0", "BuildTime": "",
                         "Components": [{"Name": "Engine", "Version": "0.1.0",
                                         "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                                                     "GitCommit": "fake", "GoVersion": "python3.11",
                                                     "Os": "linux", "Arch": "amd64",
                                                     "KernelVersion": "6.1.0", "Experimental": "false",
                                                     "BuildTime": ""}}]})

    def h_GET_info(self, q: Any, b: Any) -> None:
        st = self.server.state
        running = sum(c.status == "running" for c in st.containers.values())
        self._send_json({"ID": "fake", "Containers": len(st.containers), "ContainersRunning": running,
                         "ContainersPaused": 0, "ContainersStopped": len(st.containers) - running,
                         "Images": len(st.images), "Driver": "overlay2", "ServerVersion": "0.1.0",
                         "OperatingSystem": "Debian", "OSType": "linux", "Architecture": "x86_64",
                         "NCPU": 2, "MemTotal": 4_000_000_000, "Name": "host", "DockerRootDir": "/var/lib/dockyard",
                         "KernelVersion": "6.1.0", "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
                         "DefaultRuntime": "dockyard", "Runtimes": {"dockyard": {"path": "dockyard-runtime"}},
                         "LoggingDriver": "json-file", "Plugins": {"Volume": ["local"], "Network": ["bridge"],
                                                                   "Log": ["json-file"]},
                         "SecurityOptions": [], "Labels": [], "Debug": False, "Warnings": []})

    def h_GET_events(self, q: Any, b: Any) -> None:
        self._start_chunked()
        for ev in self.server.state.events:
            self._chunk(json.dumps(ev).encode() + b"\n")
        self._end_chunked()

    # -- images ---------------------------------------------------------------------------------
    def h_GET_images_json(self, q: Any, b: Any) -> None:
        out = []
        for img in {id(i): i for i in [*self.server.state.images.values(), *self.server.state.dangling]}.values():
            out.append({"Id": img.id, "ParentId": "", "RepoTags": img.tags, "RepoDigests": img.digests,
                        "Created": img.created, "Size": img.size, "SharedSize": -1, "VirtualSize": img.size,
                        "Labels": img.labels or None, "Containers": -1})
        self._send_json(out)

    def h_GET_images_X_json(self, q: Any, b: Any, ref: str) -> None:
        img = self.server.state.find_image(ref)
        if img is None:
            self._error(404, f"No such image: {ref}")
            return
        self._send_json({"Id": img.id, "RepoTags": img.tags, "RepoDigests": [], "Parent": "",
                         "Created": _go_time(img.created), "Size": img.size,
                         "Config": {"Cmd": ["sh"], "Labels": img.labels or None}, "Os": "linux",
                         "Architecture": "amd64", "RootFS": {"Type": "layers", "Layers": []}})

    def h_GET_images_X_history(self, q: Any, b: Any, ref: str) -> None:
        img = self.server.state.find_image(ref)
        if img is None:
            self._error(404, f"No such image: {ref}")
            return
        self._send_json([{"Id": img.id, "Created": img.created, "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]',
                          "Tags": img.tags, "Size": 0, "Comment": ""},
                         {"Id": "<missing>", "Created": img.created - 10,
                          "CreatedBy": "/bin/sh -c #(nop) ADD file:5b1e63a3cb041177b802b501dedcd71a86f1773ea0f69f048f2eb3901097711d in / ",
                          "Tags": None, "Size": img.size, "Comment": "imported"}])

    def h_POST_images_X_tag(self, q: Any, b: Any, ref: str) -> None:
        st = self.server.state
        img = st.find_image(ref)
        if img is None:
            self._error(404, f"No such image: {ref}")
            return
        new = f"{self._q(q, 'repo')}:{self._q(q, 'tag') or 'latest'}"
        img.tags.append(new)
        st.images[new] = img
        self._no_content(201)

    def h_GET_images_get(self, q: Any, b: Any) -> None:
        self._start_chunked("application/x-tar")
        self._chunk(("TAR:" + ",".join(q.get("names", []))).encode())
        self._end_chunked()

    def h_GET_containers_X_export(self, q: Any, b: Any, ref: str) -> None:
        if self._container(ref):
            self._start_chunked("application/x-tar")
            self._chunk(b"EXPORT:" + ref.encode())
            self._end_chunked()

    def h_POST_commit(self, q: Any, b: Any) -> None:
        c = self._container(self._q(q, "container"))
        if c:
            img = self.server.state.add_image(f"{self._q(q, 'repo') or 'none'}:{self._q(q, 'tag') or 'latest'}")
            self._send_json({"Id": img.id}, 201)

    def h_POST_images_prune(self, q: Any, b: Any) -> None:
        self._send_json({"ImagesDeleted": [{"Untagged": "old:1"}, {"Deleted": "sha256:" + "d" * 64}],
                         "SpaceReclaimed": 1_234_567})

    def h_POST_networks_prune(self, q: Any, b: Any) -> None:
        self._send_json({"NetworksDeleted": ["frontnet"]})

    def h_POST_volumes_prune(self, q: Any, b: Any) -> None:
        self._send_json({"VolumesDeleted": ["data"], "SpaceReclaimed": 2_000_000})

    def h_POST_build_prune(self, q: Any, b: Any) -> None:
        self._send_json({"CachesDeleted": None, "SpaceReclaimed": 0})

    def h_GET_system_df(self, q: Any, b: Any) -> None:
        st = self.server.state
        images = [{"Id": i.id, "ParentId": "", "RepoTags": i.tags, "RepoDigests": [], "Created": i.created,
                   "Size": i.size, "SharedSize": 0, "Labels": None,
                   "Containers": sum(c.image in (t.split(":")[0] for t in i.tags) for c in st.containers.values())}
                  for i in {id(x): x for x in st.images.values()}.values()]
        containers = [{"Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": "sha256:" + "1" * 64,
                       "Command": " ".join(c.cmd), "Created": int(c.created), "Ports": [], "SizeRw": 1200,
                       "SizeRootFs": 4_261_200, "Labels": {}, "State": c.status, "Status": _status_text(c),
                       "HostConfig": {"NetworkMode": "bridge"}, "NetworkSettings": {"Networks": {}},
                       "Mounts": []} for c in st.containers.values()]
        self._send_json({"LayersSize": sum(i["Size"] for i in images), "Images": images,
                         "Containers": containers,
                         "Volumes": [{"Name": "data", "Driver": "local", "Mountpoint": "/v", "Labels": None,
                                      "Scope": "local", "Options": None,
                                      "UsageData": {"Size": 2_000_000, "RefCount": 0}}],
                         "BuildCache": []})

    def h_GET_networks(self, q: Any, b: Any) -> None:
        self._send_json([{"Name": n, "Id": (n * 64)[:64].encode().hex()[:64], "Created": "2026-11-01T10:00:00.123456789Z",
                          "Scope": "local", "Driver": d, "EnableIPv4": True, "EnableIPv6": False, "Internal": False,
                          "Labels": {}, "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.17.0.0/16"}]}}
                         for n, d in (("bridge", "bridge"), ("host", "host"), ("none", "null"))])

    def h_POST_auth(self, q: Any, body: dict[str, Any]) -> None:
        if body.get("password") != "secret":
            self._error(401, "login attempt to https://registry.local/v2/ failed with status: 401 Unauthorized")
            return
        self._send_json({"Status": "Login Succeeded", "IdentityToken": ""})

    def h_POST_images_X_push(self, q: Any, b: Any, name: str) -> None:
        img = self.server.state.find_image(f"{name}:{self._q(q, 'tag') or 'latest'}")
        if img is None:
            self._error(404, f"No such image: {name}:{self._q(q, 'tag') or 'latest'}")
            return
        self._start_chunked()
        tag = self._q(q, "tag") or "latest"
        for msg in ({"status": f"The push refers to repository [{name}]"},
                    {"status": "Preparing", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
                    {"status": "Pushed", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
                    {"status": f"{tag}: digest: sha256:{'0' * 64} size: 527"},
                    {"progressDetail": {}, "aux": {"Tag": tag, "Digest": "sha256:" + "0" * 64, "Size": 527}}):
            self._chunk(json.dumps(msg).encode() + b"\r\n")
        self._end_chunked()

    def h_GET_images_search(self, q: Any, b: Any) -> None:
        self._send_json([{"star_count": 10, "is_official": True, "name": "busybox", "is_automated": False,
                          "description": "Busybox base image."},
                         {"star_count": 2, "is_official": False, "name": "someone/busybox-with-a-long-name",
                          "is_automated": False,
                          "description": "A very long description that goes on and on past the column limit"}
                         ][:int(self._q(q, "limit", "25") or 25)])

    def h_POST_networks_create(self, q: Any, body: dict[str, Any]) -> None:
        st = self.server.state
        if body["Name"] in st.networks:
            self._error(409, f"network with name {body['Name']} already exists")
            return
        st.networks[body["Name"]] = body
        self._send_json({"Id": hashlib.sha256(body["Name"].encode()).hexdigest(), "Warning": ""}, 201)

    def h_GET_networks_X(self, q: Any, b: Any, name: str) -> None:
        if name not in self.server.state.networks:
            self._error(404, f"network {name} not found")
            return
        self._send_json({"Name": name, "Id": hashlib.sha256(name.encode()).hexdigest(), "Driver": "bridge"})

    def h_DELETE_networks_X(self, q: Any, b: Any, name: str) -> None:
        if self.server.state.networks.pop(name, None) is None:
            self._error(404, f"network {name} not found")
            return
        self._no_content()

    def _network_op(self, name: str, body: dict[str, Any]) -> None:
        if name not in self.server.state.networks:
            self._error(404, f"network {name} not found")
        elif self.server.state.find_container(body["Container"]) is None:
            self._error(404, f"No such container: {body['Container']}")
        else:
            self._no_content(200)

    def h_POST_networks_X_connect(self, q: Any, body: dict[str, Any], name: str) -> None:
        self._network_op(name, body)

    def h_POST_networks_X_disconnect(self, q: Any, body: dict[str, Any], name: str) -> None:
        self._network_op(name, body)

    def h_POST_images_create(self, q: Any, b: Any) -> None:
        st = self.server.state
        ref = self._q(q, "fromImage")
        tag = self._q(q, "tag") or "latest"
        if self._q(q, "fromSrc"):
            self._import(q, b)
            return
        full = f"{ref}:{tag}"
        img = st.pullable.get(full) or st.pullable.get(full.removeprefix("docker.io/").removeprefix("library/"))
        if img is None:
            self._error(404, f"pull access denied for {ref}, repository does not exist or may require "
                             "'docker login': denied: requested access to the resource is denied")
            return
        self._start_chunked()
        layers = ({"status": "Pulling fs layer", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
                  {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbbbbbbbbbbb"},
                  {"status": "Downloading", "progressDetail": {"current": 1_200_000, "total": 4_260_000},
                   "progress": "[==>   ]", "id": "aaaaaaaaaaaa"},
                  {"status": "Downloading", "progressDetail": {"current": 300, "total": 700},
                   "progress": "[=>    ]", "id": "bbbbbbbbbbbb"},
                  {"status": "Download complete", "progressDetail": {}, "id": "bbbbbbbbbbbb"},
                  {"status": "Extracting", "progressDetail": {"current": 4_260_000, "total": 4_260_000},
                   "id": "aaaaaaaaaaaa"}) if "progress" in tag else ()
        for msg in ({"status": f"Pulling from library/{ref}", "id": tag}, *layers,
                    {"status": "Pull complete", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
                    {"status": "Digest: sha256:" + "0" * 64},
                    {"status": f"Status: Downloaded newer image for {full}"}):
            self._chunk(json.dumps(msg).encode() + b"\r\n")
        self._end_chunked()
        st.images[_norm(full.removeprefix("docker.io/").removeprefix("library/"))] = img

    def _import(self, q: Any, b: Any) -> None:
        repo = self._q(q, "repo")
        img = self.server.state.add_image(f"{repo}:{self._q(q, 'tag') or 'latest'}" if repo else "imported:latest")
        self._start_chunked()
        self._chunk(json.dumps({"status": img.id}).encode() + b"\r\n")
        self._end_chunked()

    def h_POST_images_load(self, q: Any, b: Any) -> None:
        self._start_chunked()
        if isinstance(b, bytes) and b.startswith(b"bad"):
            self._chunk(json.dumps({"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"}).encode())
        else:
            self.server.state.add_image("busybox:latest")
            self._chunk(json.dumps({"stream": "Loaded image: busybox:latest\n"}).encode() + b"\r\n")
        self._end_chunked()

    def h_DELETE_images_X(self, q: Any, b: Any, ref: str) -> None:
        st = self.server.state
        img = st.find_image(ref)
        if img is None:
            self._error(404, f"No such image: {ref}")
            return
        for k in [k for k, v in st.images.items() if v is img]:
            del st.images[k]
        self._send_json([{"Untagged": t} for t in img.tags] + [{"Deleted": img.id}])

    # -- containers -----------------------------------------------------------------------------
    def h_POST_containers_create(self, q: Any, body: dict[str, Any]) -> None:
        st = self.server.state
        image = body.get("Image", "")
        if st.find_image(image) is None:
            self._error(404, f"No such image: {_norm(image)}")
            return
        name = self._q(q, "name") or "fake_" + uuid.uuid4().hex[:6]
        if any(c.name == name for c in st.containers.values()):
            self._error(409, f'Conflict. The container name "/{name}" is already in use by container '
                             f'"{st.find_container(name).id}". You have to remove (or rename) that '
                             "container to be able to reuse that name.")
            return
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        body = dict(body)
        host_config = body.pop("HostConfig", {}) or {}
        cmd = body.get("Cmd") or ["sh"]
        st.containers[cid] = FakeContainer(cid, name, image, cmd, body, host_config, time.time())
        self._send_json({"Id": cid, "Warnings": []}, 201)

    def _container(self, ref: str) -> FakeContainer | None:
        c = self.server.state.find_container(ref)
        if c is None:
            self._error(404, f"No such container: {ref}")
        return c

    def h_GET_containers_json(self, q: Any, b: Any) -> None:
        show_all = self._q(q, "all") in ("1", "true")
        limit = int(self._q(q, "limit", "0") or 0)
        out = []
        for c in sorted(self.server.state.containers.values(), key=lambda c: -c.created):
            if not show_all and c.status not in ("running", "paused"):
                continue
            out.append({"Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": "sha256:" + "1" * 64,
                        "Command": " ".join(c.cmd), "Created": int(c.created), "Ports": c.ports,
                        "Labels": c.config.get("Labels") or {}, "State": c.status, "Status": _status_text(c),
                        "HostConfig": {"NetworkMode": "bridge"}, "NetworkSettings": {"Networks": {}},
                        "Mounts": []})
            if self._q(q, "size") in ("1", "true"):
                out[-1].update({"SizeRw": 12_000, "SizeRootFs": 4_272_000})
        self._send_json(out[:limit] if limit > 0 else out)

    def h_GET_containers_X_json(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c:
            self._send_json({"Id": c.id, "Created": _go_time(c.created), "Path": c.cmd[0], "Args": c.cmd[1:],
                             "State": {"Status": c.status, "Running": c.status == "running",
                                       "Paused": c.status == "paused", "ExitCode": c.exit_code, "Pid": 0,
                                       "StartedAt": _go_time(c.started_at), "FinishedAt": _go_time(c.finished_at)},
                             "Image": "sha256:" + "1" * 64, "Name": "/" + c.name, "RestartCount": 0,
                             "HostConfig": c.host_config, "Mounts": [], "Config": c.config,
                             "NetworkSettings": {"Networks": {}, "Ports": _port_map(c.ports)}})

    def h_POST_containers_X_attach(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        self.send_response(101)
        self.send_header("Content-Type", "application/vnd.docker.raw-stream" if c.tty
                         else "application/vnd.docker.multiplexed-stream")
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "tcp")
        self.end_headers()
        self.wfile.flush()
        sock = self.connection
        c.attach_socks.append(sock)
        self.close_connection = True
        if self._q(q, "stdin") in ("1", "true"):
            c.stdin_attached = True
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    break
                c.stdin_data += data
            c.stdin_eof.set()
        with c.exited:
            c.exited.wait_for(lambda: c.exits > 0 or c.removed, timeout=30)

    def h_POST_containers_X_wait(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        condition = self._q(q, "condition", "not-running")
        with c.exited:
            exits_before = c.exits
            self._start_chunked()
            if condition == "removed":
                c.exited.wait_for(lambda: c.removed, timeout=30)
            elif condition == "next-exit" or c.status in ("running", "created"):
                c.exited.wait_for(lambda: c.exits > exits_before, timeout=30)
        self._chunk(json.dumps({"StatusCode": c.exit_code, "Error": None}).encode() + b"\n")
        self._end_chunked()

    def h_POST_containers_X_start(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        if c.status == "running":
            self._no_content(304)
            return
        prog = c.cmd[0]
        if prog in ("nonexistent", "/nonexistent"):
            self._error(400, f'failed to create task for container: OCI runtime create failed: exec: "{prog}": '
                             "executable file not found in $PATH: unknown")
            return
        if prog == "/etc":
            self._error(400, 'exec: "/etc": permission denied: unknown')
            return
        c.status = "running"
        c.started_at = time.time()
        threading.Thread(target=self.server.run_program, args=(c,), daemon=True).start()
        self._no_content()

    def h_POST_containers_X_resize(self, q: Any, b: Any, ref: str) -> None:
        if self._container(ref):
            self._no_content(200)

    def _simple(self, ref: str, new_status: str | None = None) -> None:
        c = self._container(ref)
        if c is None:
            return
        if new_status == "stopped" and c.status == "running":
            self.server.finish(c, 137)
        elif new_status and new_status != "stopped":
            c.status = new_status
        self._no_content()

    def h_POST_containers_X_stop(self, q: Any, b: Any, ref: str) -> None:
        self._simple(ref, "stopped")

    def h_POST_containers_X_kill(self, q: Any, b: Any, ref: str) -> None:
        c = self.server.state.find_container(ref)
        if c is not None and c.status != "running":
            self._error(409, f"cannot kill container: {ref}: container {c.id} is not running")
            return
        self._simple(ref, "stopped")

    def h_POST_containers_X_pause(self, q: Any, b: Any, ref: str) -> None:
        self._simple(ref, "paused")

    def h_POST_containers_X_unpause(self, q: Any, b: Any, ref: str) -> None:
        self._simple(ref, "running")

    def h_POST_containers_X_restart(self, q: Any, b: Any, ref: str) -> None:
        self._simple(ref, "running")

    def h_POST_containers_X_rename(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c:
            c.name = self._q(q, "name")
            self._no_content()

    def h_DELETE_containers_X(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        if c.status == "running" and self._q(q, "force") not in ("1", "true"):
            self._error(409, f"cannot remove container \"{c.name}\": container is running: stop the container "
                             "before removing or force remove")
            return
        self.server.remove(c)
        self._no_content()

    def h_GET_containers_X_logs(self, q: Any, b: Any, ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        self._start_chunked("application/vnd.docker.raw-stream" if c.tty
                            else "application/vnd.docker.multiplexed-stream")
        want = {1: self._q(q, "stdout") in ("1", "true"), 2: self._q(q, "stderr") in ("1", "true")}
        for stream, data in c.output:
            if want[stream]:
                self._chunk(data if c.tty else _frame(stream, data))
        self._end_chunked()

    def h_POST_containers_X_exec(self, q: Any, body: dict[str, Any], ref: str) -> None:
        c = self._container(ref)
        if c is None:
            return
        if c.status != "running":
            self._error(409, f"container {c.id} is not running")
            return
        exec_id = uuid.uuid4().hex * 2
        self.server.state.execs[exec_id] = {"cmd": body["Cmd"], "tty": body["Tty"], "exit": None, "body": body}
        self._send_json({"Id": exec_id}, 201)

    def h_POST_exec_X_start(self, q: Any, body: dict[str, Any], exec_id: str) -> None:
        ex = self.server.state.execs[exec_id]
        cmd = ex["cmd"]
        code = int(cmd[2].split()[1]) if cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exit ") else 0
        out = (" ".join(cmd[1:]) + "\n").encode() if cmd[0] == "echo" else b""
        if body.get("Detach"):
            ex["exit"] = code
            self._no_content(200)
            return
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "tcp")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        if out:
            self.wfile.write(out if ex["tty"] else _frame(1, out))
            self.wfile.flush()
        ex["exit"] = code
        self.connection.shutdown(socket.SHUT_RDWR)

    def h_GET_exec_X_json(self, q: Any, b: Any, exec_id: str) -> None:
        ex = self.server.state.execs[exec_id]
        self._send_json({"ID": exec_id, "Running": ex["exit"] is None, "ExitCode": ex["exit"]})

    def h_POST_containers_prune(self, q: Any, b: Any) -> None:
        st = self.server.state
        gone = [c for c in st.containers.values() if c.status in ("exited", "created")]
        for c in gone:
            self.server.remove(c)
        self._send_json({"ContainersDeleted": [c.id for c in gone] or None, "SpaceReclaimed": 0})


_STATIC = {"auth", "push", "search", "connect", "disconnect", "exec", "tag", "get", "export", "commit", "build", "volumes", "history", "system", "df", "networks", "json", "attach", "wait", "start", "stop", "kill", "pause", "unpause", "restart", "rename",
           "logs", "resize", "create", "load", "prune", "_ping", "version", "info", "events"}


class FakeServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, path: str, api_version: str = API_VERSION) -> None:
        self.state = FakeState()
        self.api_version = api_version
        super().__init__(path, Handler)

    def run_program(self, c: FakeContainer) -> None:
        """What a container's command "does": enough shapes for the CLI's code paths."""
        cmd = c.cmd
        out: list[tuple[int, bytes]] = []
        code = 0
        if cmd[0] == "echo":
            out.append((1, (" ".join(cmd[1:]) + "\n").encode()))
        elif cmd[0] == "cat":
            if c.stdin_attached:
                c.stdin_eof.wait(10)
            out.append((1, bytes(c.stdin_data)))
        elif cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exit "):
            code = int(cmd[2].split()[1])
        elif cmd[0] == "both":
            out += [(1, b"to stdout\n"), (2, b"to stderr\n")]
        elif cmd[0] == "sleep":
            return  # stays running until stopped
        time.sleep(0.01)
        for stream, data in out:
            if not data:
                continue
            c.output.append((stream, data))
            for sock in c.attach_socks:
                try:
                    sock.sendall(data if c.tty else _frame(stream, data))
                except OSError:
                    pass
        self.finish(c, code)

    def finish(self, c: FakeContainer, code: int) -> None:
        for sock in c.attach_socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with c.exited:
            c.status = "exited"
            c.exit_code = code
            c.finished_at = time.time()
            c.exits += 1
            c.exited.notify_all()
        if c.host_config.get("AutoRemove"):
            self.remove(c)

    def remove(self, c: FakeContainer) -> None:
        with c.exited:
            self.state.containers.pop(c.id, None)
            c.removed = True
            c.exited.notify_all()


@pytest.fixture
def fake_api() -> Any:
    """A running FakeServer; yields it (``.state``, ``.host``)."""
    tmp = tempfile.mkdtemp(prefix="dockyard-cli-")
    path = os.path.join(tmp, "api.sock")
    server = FakeServer(path)
    server.host = f"unix://{path}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)
        os.rmdir(tmp)


def test_fake_api_ping(fake_api: Any) -> None:
    from dockyard.cli.client import Client

    client = Client(fake_api.host)
    assert client.version == API_VERSION
    assert client.get("/version")["Version"] == "0.1.0"


def serve_forever(path: str) -> None:
    """``python -m tests.unit.test_cli_fake_api PATH``: a seeded server to point docker/dockyard at."""
    server = FakeServer(path)

    class LoggedList(list):
        def append(self, item: Any) -> None:
            print(*item, flush=True)
            super().append(item)

    server.state.requests = LoggedList()
    server.state.add_image("busybox:latest")
    server.state.add_image("alpine:3.19", size=7_380_000, created=int(time.time()) - 40 * 86400)
    server.state.add_image("hello:pullable", pullable_only=True)
    server.serve_forever()


if __name__ == "__main__":
    import sys

    serve_forever(sys.argv[1])
