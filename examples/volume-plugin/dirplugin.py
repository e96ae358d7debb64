#!/usr/bin/env python3
"""dirplugin: a small Docker volume plugin backed by directories.

Speaks Docker's volume plugin protocol (HTTP+JSON on a unix socket), so any
daemon that is a client of it (dockerd, dockyardd) can use it:

    dirplugin.py --socket /run/docker/plugins/dirplugin.sock --root /var/lib/dirplugin

Each volume is a directory <root>/volumes/<name>; its options and labels are kept in
<root>/state.json (written atomically), so volumes survive a plugin restart.
Options: ``uid``/``gid``/``mode`` set the owner and mode of a new volume's directory.
Mount answers the directory; the plugin counts mounts per volume (by mount ID) and
refuses to remove a mounted volume. Stdlib only: run it with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.volumes_dir = root / "volumes"
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = root / "state.json"
        self.lock = threading.Lock()
        try:
            self.volumes: dict[str, dict] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            self.volumes = {}
        self.mounts: dict[str, set[str]] = {}  # name -> mount IDs

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.volumes, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    def path(self, name: str) -> Path:
        return self.volumes_dir / name

    def create(self, name: str, opts: dict) -> None:
        if not _NAME.match(name or ""):
            raise ValueError(f"invalid volume name {name!r}")
        for key in opts:
            if key not in ("uid", "gid", "mode"):
                raise ValueError(f"unknown option {key!r} (dirplugin accepts uid, gid, mode)")
        with self.lock:
            if name in self.volumes:
                return
            path = self.path(name)
            path.mkdir(mode=0o755, exist_ok=True)
            if "mode" in opts:
                os.chmod(path, int(opts["mode"], 8))
            if "uid" in opts or "gid" in opts:
                os.chown(path, int(opts.get("uid", -1)), int(opts.get("gid", -1)))
            self.volumes[name] = {"opts": opts}
            self._save()

    def remove(self, name: str) -> None:
        with self.lock:
            if name not in self.volumes:
                raise ValueError(f"no such volume: {name}")
            if self.mounts.get(name):
                raise ValueError(f"volume {name} is mounted ({len(self.mounts[name])} mounts)")
            _remove_tree(self.path(name))
            del self.volumes[name]
            self._save()

    def mount(self, name: str, mount_id: str) -> str:
        with self.lock:
            if name not in self.volumes:
                raise ValueError(f"no such volume: {name}")
            self.mounts.setdefault(name, set()).add(mount_id)
            return str(self.path(name))

    def unmount(self, name: str, mount_id: str) -> None:
        with self.lock:
            self.mounts.get(name, set()).discard(mount_id)

    def describe(self, name: str) -> dict:
        with self.lock:
            if name not in self.volumes:
                raise ValueError(f"no such volume: {name}")
            return {"Name": name, "Mountpoint": str(self.path(name)),
                    "Status": {"mounts": len(self.mounts.get(name, ())), "backend": "directory"}}


def _remove_tree(path: Path) -> None:
    """rm -rf without following symlinks (a volume may hold links to anywhere)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                os.rmdir(os.path.join(dirpath, name))
    os.rmdir(path)


def make_handler(store: Store):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet; stderr only on errors
            pass

        def address_string(self) -> str:
            return "unix"

        def _answer(self, body: dict, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                req = json.loads(raw) if raw.strip() else {}
            except ValueError:
                self._answer({"Err": "request body is not JSON"}, 400)
                return
            name, mount_id = req.get("Name", ""), req.get("ID", "")
            try:
                if self.path == "/Plugin.Activate":
                    self._answer({"Implements": ["VolumeDriver"]})
                elif self.path == "/VolumeDriver.Create":
                    store.create(name, req.get("Opts") or {})
                    self._answer({"Err": ""})
                elif self.path == "/VolumeDriver.Remove":
                    store.remove(name)
                    self._answer({"Err": ""})
                elif self.path == "/VolumeDriver.Mount":
                    self._answer({"Mountpoint": store.mount(name, mount_id), "Err": ""})
                elif self.path == "/VolumeDriver.Unmount":
                    store.unmount(name, mount_id)
                    self._answer({"Err": ""})
                elif self.path == "/VolumeDriver.Path":
                    self._answer({"Mountpoint": store.describe(name)["Mountpoint"], "Err": ""})
                elif self.path == "/VolumeDriver.Get":
                    self._answer({"Volume": store.describe(name), "Err": ""})
                elif self.path == "/VolumeDriver.List":
                    with store.lock:
                        names = sorted(store.volumes)
                    self._answer({"Volumes": [{"Name": n, "Mountpoint": str(store.path(n))} for n in names],
                                  "Err": ""})
                elif self.path == "/VolumeDriver.Capabilities":
                    self._answer({"Capabilities": {"Scope": "local"}})
                else:
                    self._answer({"Err": f"unknown method {self.path}"}, 404)
            except (ValueError, OSError) as e:
                self._answer({"Err": str(e)}, 500)

    return Handler


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True, help="unix socket to listen on (<plugin dir>/<name>.sock)")
    p.add_argument("--root", required=True, help="directory holding the volumes and the plugin state")
    args = p.parse_args()
    sock = Path(args.socket)
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    server = Server(str(sock), make_handler(Store(Path(args.root))))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
        sock.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
