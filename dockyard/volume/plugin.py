"""A client of Docker's (v1, "legacy") volume plugin protocol: HTTP+JSON over a unix socket.

Discovery, as Docker's pkg/plugins: ``<dir>/<name>.sock`` or ``<dir>/<name>/<name>.sock``
in the socket directories, then ``<name>.spec`` (one line: ``unix:///path`` or
``tcp://host:port``) or ``<name>.json`` (``{"Addr": ...}``) in the spec directories
(DaemonConfig.plugin_socket_dirs / plugin_spec_dirs). A plugin is activated once (``/Plugin.Activate`` must
list "VolumeDriver") and then called at ``/VolumeDriver.<Method>``.

Every call has a timeout; a plugin that hangs, dies or answers garbage becomes a
clear errdefs error naming the plugin and the call, and never blocks anything
but the caller.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlparse

from dockyard import errdefs
from dockyard.volume.driver import DriverVolume

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
DEFAULT_TIMEOUT = 10.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def find_address(name: str, socket_dirs: tuple[Path, ...], spec_dirs: tuple[Path, ...]) -> str | None:
    """The plugin's address ("unix:///run/docker/plugins/x.sock", "tcp://h:p") or None."""
    if not name or "/" in name or name in (".", ".."):
        return None
    for d in socket_dirs:
        for candidate in (d / f"{name}.sock", d / name / f"{name}.sock"):
            if candidate.is_socket():
                return f"unix://{candidate}"
    for d in spec_dirs:
        spec = d / f"{name}.spec"
        if spec.is_file():
            return spec.read_text().strip()
        spec_json = d / f"{name}.json"
        if spec_json.is_file():
            try:
                return str(json.loads(spec_json.read_text())["Addr"])
            except (ValueError, KeyError, TypeError):
                raise errdefs.InvalidParameter(f"plugin {name}: {spec_json} is not a plugin spec") from None
    return None


def discover(socket_dirs: tuple[Path, ...], spec_dirs: tuple[Path, ...]) -> list[str]:
    """Names of every plugin found in the directories (Docker's pkg/plugins Scan): for listing
    volumes across plugins, which Docker does through each VolumeDriver's List."""
    found: set[str] = set()
    for d in socket_dirs:
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix == ".sock" and entry.is_socket():
                found.add(entry.stem)
            elif entry.is_dir() and (entry / f"{entry.name}.sock").is_socket():
                found.add(entry.name)
    for d in spec_dirs:
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        found.update(e.stem for e in entries if e.suffix in (".spec", ".json") and e.is_file())
    return sorted(n for n in found if n and n != "local")


class PluginClient:
    """One plugin endpoint; ``call`` posts JSON and returns the decoded JSON answer."""

    def __init__(self, name: str, address: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout
        url = urlparse(address)
        if url.scheme == "unix":
            self._connect = lambda t: _UnixConnection(url.path, t)
        elif url.scheme in ("tcp", "http"):
            self._connect = lambda t: http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=t)
        else:
            raise errdefs.InvalidParameter(f"plugin {name}: unsupported address {address!r}")

    def call(self, method: str, body: dict | None = None, timeout: float | None = None) -> dict:
        conn = self._connect(timeout or self.timeout)
        try:
            try:
                conn.request("POST", f"/{method}", body=json.dumps(body or {}).encode(),
                             headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
            except (BrokenPipeError, ConnectionResetError):
                pass  # it answered after the headers and closed: its answer is still there to read
            response = conn.getresponse()
            raw = response.read()
        except (socket.timeout, TimeoutError):
            raise errdefs.Unavailable(
                f"volume plugin {self.name}: {method}: no answer within {timeout or self.timeout:g}s") from None
        except (ConnectionError, FileNotFoundError, OSError, http.client.HTTPException) as e:
            raise errdefs.Unavailable(f"volume plugin {self.name}: {method}: {e}") from None
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw.strip() else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise errdefs.System(f"volume plugin {self.name}: {method}: answer is not JSON: {raw[:200]!r}")
        if response.status >= 400 and not answer.get("Err"):
            raise errdefs.System(f"volume plugin {self.name}: {method}: HTTP {response.status}: {raw[:200]!r}")
        return answer


class PluginDriver:
    """A volume driver served by a plugin process."""

    def __init__(self, client: PluginClient) -> None:
        self.client = client
        self.name = client.name
        self._scope: str | None = None

    @classmethod
    def activate(cls, client: PluginClient) -> "PluginDriver":
        try:
            answer = client.call("Plugin.Activate")
        except errdefs.System:
            raise errdefs.InvalidParameter(
                f"{client.address} is not a volume plugin: it does not speak the plugin protocol") from None
        implements = answer.get("Implements")
        if not isinstance(implements, list) or "VolumeDriver" not in implements:
            raise errdefs.InvalidParameter(
                f"plugin {client.name} does not implement the VolumeDriver protocol (implements {implements})")
        return cls(client)

    def _call(self, method: str, body: dict) -> dict:
        answer = self.client.call(f"VolumeDriver.{method}", body)
        err = answer.get("Err")
        if err:
            raise errdefs.System(f"VolumeDriver.{method}: {err}")
        return answer

    def scope(self) -> str:
        if self._scope is None:
            try:
                caps = self._call("Capabilities", {}).get("Capabilities") or {}
            except errdefs.System:
                caps = {}  # an old plugin without Capabilities: Docker assumes local
            self._scope = "global" if caps.get("Scope") == "global" else "local"
        return self._scope

    def create(self, name: str, options: dict[str, str]) -> None:
        self._call("Create", {"Name": name, "Opts": options or {}})

    def remove(self, name: str) -> None:
        self._call("Remove", {"Name": name})

    def mount(self, name: str, mount_id: str) -> str:
        return str(self._call("Mount", {"Name": name, "ID": mount_id}).get("Mountpoint") or "")

    def unmount(self, name: str, mount_id: str) -> None:
        self._call("Unmount", {"Name": name, "ID": mount_id})

    def path(self, name: str) -> str:
        return str(self._call("Path", {"Name": name}).get("Mountpoint") or "")

    def get(self, name: str) -> DriverVolume:
        answer = self.client.call("VolumeDriver.Get", {"Name": name})
        if answer.get("Err"):
            raise errdefs.NotFound(f"get {name}: {answer['Err']}")
        vol = answer.get("Volume")  # a plugin may answer no volume and no error: not found, as Docker
        if not isinstance(vol, dict) or (vol.get("Name") and vol.get("Name") != name):
            raise errdefs.NotFound(f"get {name}: no such volume")
        return _driver_volume(name, vol)

    def list(self) -> list[DriverVolume]:
        vols = self._call("List", {}).get("Volumes") or []
        return [_driver_volume(str(v["Name"]), v) for v in vols if isinstance(v, dict) and v.get("Name")]


def _driver_volume(name: str, vol: dict) -> DriverVolume:
    status = vol.get("Status")
    return DriverVolume(name=name, mountpoint=str(vol.get("Mountpoint") or ""),
                        status=status if isinstance(status, dict) else {},
                        created_at=str(vol.get("CreatedAt") or ""))
