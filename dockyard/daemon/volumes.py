"""VolumesService: volumes and every container's mounts, without HTTP.

Owns the ``volumes`` table (one ``VolumeRecord`` per volume: driver, options,
labels, the containers using it, the mounts active on it) and the
``container_mounts`` table (each container's resolved mounts). Drivers: the
local one and any Docker volume plugin found in the plugin directories.

The container service calls, in a container's life:

    resolve_mounts  at create: -v, --mount, --volumes-from, Config.Volumes -> MountPoints
                    (named volumes created on first use, anonymous ones made, copy-up done)
    mount           at start: driver Mount per volume -> the OCI mounts for the spec
    unmount         at stop/exit: driver Unmount per volume
    release         at remove: drop the container's references, and its anonymous
                    volumes when asked (rm -v, --rm)

The core is blocking code (driver calls, copy-up, database); each state change
of a volume holds that volume's lock. The API-facing methods and mount/unmount/
release are coroutines that run the core in a worker thread, so a plugin that
hangs (until its timeout) never stalls the event loop. ``resolve_mounts`` is
called by the container service's synchronous create (build steps); the API's
create awaits ``resolve_mounts_async``, which runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Callable

import msgspec

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig, MountPoint
from dockyard.apitypes.volume import CreateRequest, ListResponse, MountSpec, PruneResponse, UsageData, Volume
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.interfaces import EventSink
from dockyard.oci import runtime_spec as oci
from dockyard.runtime import runc
from dockyard.storage.metadata import Database
from dockyard.volume import copyup, kernel, mountspec, names, plugin
from dockyard.volume.driver import DriverVolume, VolumeDriver
from dockyard.volume.local import LocalDriver, tree_size
from dockyard.volume.mountspec import MountRequest

log = logging.getLogger("dockyard.volumes")

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")


class VolumeRecord(msgspec.Struct):
    name: str
    driver: str
    created_at: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    scope: str = "local"
    mountpoint: str = ""  # the local path; for a plugin volume the last one it answered
    users: list[str] = []  # IDs of the containers that reference the volume
    active_mounts: list[str] = []  # mount IDs the driver has been asked to Mount and not Unmount

    @property
    def anonymous(self) -> bool:
        return names.ANONYMOUS_LABEL in (self.labels or {})


class PlannedMount(msgspec.Struct):
    """One resolved mount of a container, as saved: enough to mount it at every start."""
    type: str  # bind | volume | tmpfs
    destination: str
    source: str = ""  # host path (bind) or volume name (volume)
    read_only: bool = False
    mode: str = ""
    propagation: str = ""
    driver: str = ""
    subpath: str = ""
    recursive: str = "enabled"
    create_source: bool = False
    tmpfs_options: list[str] = []

    def mount_id(self, container_id: str) -> str:
        """The ID a driver sees for this container's mount of the volume (stable across restarts)."""
        return hashlib.sha256(f"{container_id}:{self.destination}".encode()).hexdigest()


class ContainerMounts(msgspec.Struct):
    mounts: list[PlannedMount] = []


VolumesFromLookup = Callable[[str], str]  # container reference -> full container ID (NotFound)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _bool_filter(key: str, value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise errdefs.InvalidParameter(f"invalid filter '{key}={value}'")


_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def _prune_all(values: list[str]) -> bool:
    """The prune filter ``all`` as moby reads it: one value, a Go boolean (strconv.ParseBool)."""
    if len(values) > 1:
        raise errdefs.InvalidParameter(f"invalid filter 'all=[{' '.join(values)}]': only one value is expected")
    if not values or values[0] in _FALSE:
        return False
    if values[0] in _TRUE:
        return True
    raise errdefs.InvalidParameter(f'invalid filter \'all\': strconv.ParseBool: parsing "{values[0]}": invalid syntax')


def _prunable(rec: VolumeRecord) -> bool:
    """A volume prune and df deal with: the local driver's, holding its data on this disk."""
    return rec.driver == "local" and not rec.options


def _label_match(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _name_match(name: str, pattern: str) -> bool:
    if name == pattern:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _rro_unsupported(runtime: str) -> str:
    """"" when the container's runtime can make a mount read-only recursively, else why not, as
    Docker's supportsRecursivelyReadOnly: the kernel (mount_setattr), and for a runc-compatible
    binary the "rro" its ``features`` lists. Our own runtime (and a test's module:factory) does it
    wherever the kernel can."""
    why_not = kernel.supports_recursive_readonly()
    if why_not:
        return f"rro is not supported: {why_not}"
    if runtime and runtime != "dockyard" and ":" not in runtime and "rro" not in runc.mount_options(runtime):
        return f'rro is not supported by runtime "{os.path.basename(runtime)}"'
    return ""


def _write_mode(m: PlannedMount, runtime: str) -> str:
    """The OCI option for a bind's write mode, as Docker 25+ (API 1.44+): a read-only mount is made
    recursively read-only ("rro": its submounts too) where the kernel and the runtime can, and must
    be where bind-recursive=readonly asks it; elsewhere it quietly stays "ro" (submounts writable),
    as bind-recursive=writable asks and as binds of clients before API 1.44 are."""
    if not m.read_only:
        return "rw"
    if m.recursive in ("writable", "disabled"):
        return "ro"  # disabled: no submounts to make read-only with a plain bind
    why_not = _rro_unsupported(runtime)
    if not why_not:
        return "rro"
    if m.recursive == "readonly":
        raise errdefs.InvalidParameter(
            f'invalid mount config for type "bind": {why_not}: cannot make {m.source} read-only recursively '
            f"at {m.destination} (bind-recursive=readonly)")
    return "ro"


class VolumesService:
    def __init__(self, config: DaemonConfig, db: Database, events: EventSink,
                 plugin_timeout: float = plugin.DEFAULT_TIMEOUT) -> None:
        self._db = db
        self._events = events
        self.root = config.data_root / "volumes"
        self._subpath_root = config.exec_root / "volume-subpaths"
        self._local = LocalDriver(self.root)
        self._plugins: dict[str, plugin.PluginDriver] = {}
        self._socket_dirs = tuple(config.plugin_socket_dirs)
        self._spec_dirs = tuple(config.plugin_spec_dirs)
        self._plugin_timeout = plugin_timeout
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._pruning = threading.Lock()  # one prune at a time, as moby

    # ---- records ----------------------------------------------------------------
    def _get(self, name: str) -> VolumeRecord | None:
        rows = self._db.query("SELECT doc FROM volumes WHERE name = ?", (name,))
        return msgspec.json.decode(rows[0][0], type=VolumeRecord) if rows else None

    def _must_get(self, name: str) -> VolumeRecord:
        rec = self._get(name)
        if rec is None:
            raise errdefs.NotFound(f"get {name}: no such volume")
        return rec

    def _all(self) -> list[VolumeRecord]:
        return [msgspec.json.decode(doc, type=VolumeRecord)
                for (doc,) in self._db.query("SELECT doc FROM volumes ORDER BY name")]

    def _save(self, rec: VolumeRecord) -> None:
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO volumes (name, doc) VALUES (?, ?)",
                        (rec.name, msgspec.json.encode(rec)))

    def _update(self, name: str, change: Callable[[VolumeRecord], None]) -> None:
        """Read, change and write one volume's record in one transaction (users and mounts of a
        volume change from several containers at once)."""
        with self._db.transaction() as cur:
            row = cur.execute("SELECT doc FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is None:
                return
            rec = msgspec.json.decode(row[0], type=VolumeRecord)
            change(rec)
            cur.execute("UPDATE volumes SET doc = ? WHERE name = ?", (msgspec.json.encode(rec), name))

    def _plan(self, container_id: str) -> ContainerMounts | None:
        rows = self._db.query("SELECT doc FROM container_mounts WHERE container_id = ?", (container_id,))
        return msgspec.json.decode(rows[0][0], type=ContainerMounts) if rows else None

    def _lock(self, name: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.RLock())

    # ---- drivers ----------------------------------------------------------------
    def _driver(self, name: str) -> VolumeDriver:
        """The driver called ``name``; a plugin is found and activated on first use (blocks)."""
        if name in ("", "local"):
            return self._local
        cached = self._plugins.get(name)
        if cached is not None:
            return cached
        address = plugin.find_address(name, self._socket_dirs, self._spec_dirs)
        if address is None:
            raise errdefs.NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')
        driver = plugin.PluginDriver.activate(plugin.PluginClient(name, address, self._plugin_timeout))
        self._plugins[name] = driver
        return driver

    def _call(self, driver: VolumeDriver, method: str, *args: object) -> object:
        """A driver call; a plugin that stopped answering is forgotten, so the next use finds
        and activates it again (it may have been restarted)."""
        try:
            return getattr(driver, method)(*args)
        except errdefs.Unavailable:
            self._plugins.pop(driver.name, None)
            raise

    # ---- create / inspect / list --------------------------------------------------
    async def create(self, request: CreateRequest) -> Volume:
        return await asyncio.to_thread(self._create_view, request)

    def _create_view(self, request: CreateRequest) -> Volume:
        rec = self._create(request.name, request.driver or "local", request.driver_opts, request.labels)
        return self._view(rec)

    def _create(self, name: str, driver_name: str, options: dict[str, str] | None,
                labels: dict[str, str] | None) -> VolumeRecord:
        """Create a volume, or return the existing one of that name (Docker's create is idempotent)."""
        if not name:
            name = names.generate()
            labels = {**(labels or {}), names.ANONYMOUS_LABEL: ""}
        elif driver_name == "local":
            names.validate_local(name)
        with self._lock(name):
            existing = self._get(name)
            if existing is not None:
                if existing.driver != driver_name:
                    raise errdefs.Conflict(
                        f"create {name}: volume name already exists with a different driver: "
                        f"{existing.driver}")
                return existing
            try:
                driver = self._driver(driver_name)
                self._call(driver, "create", name, dict(options or {}))
                scope = driver.scope() if driver is self._local else self._call(driver, "scope")
            except errdefs.DockyardError as e:
                message = e.message if e.message.startswith(f"create {name}") else f"create {name}: {e.message}"
                raise type(e)(message) from None
            if driver is self._local:
                mountpoint = self._local.path(name)
            else:
                try:
                    mountpoint = str(self._call(driver, "path", name))
                except errdefs.DockyardError:
                    mountpoint = ""  # known once mounted; Path is optional before that
            rec = VolumeRecord(name=name, driver=driver_name, created_at=_now(), labels=labels,
                               options=options, scope=str(scope), mountpoint=mountpoint)
            self._save(rec)
        self._events.emit("volume", "create", name, {"driver": driver_name})
        return rec

    def _view(self, rec: VolumeRecord, status: dict | None = None, usage: UsageData | None = None) -> Volume:
        return Volume(name=rec.name, driver=rec.driver, mountpoint=rec.mountpoint, labels=rec.labels,
                      scope=rec.scope, options=rec.options, created_at=rec.created_at,
                      status=status or None, usage_data=usage)

    async def inspect(self, name: str) -> Volume:
        rec = self._get(name)
        if rec is None:  # perhaps a volume a plugin has that was made without us: Docker asks them all
            return await asyncio.to_thread(self._inspect_unrecorded, name)
        if rec.driver == "local":
            return self._view(rec)
        return await asyncio.to_thread(self._inspect, rec)

    def _inspect_unrecorded(self, name: str) -> Volume:
        found = self._find_in_plugins(name)
        if found is None:
            raise errdefs.NotFound(f"get {name}: no such volume")
        driver, vol = found
        return Volume(name=name, driver=driver.name, mountpoint=vol.mountpoint, labels=None, options=None,
                      scope=str(self._call(driver, "scope")), created_at=vol.created_at,
                      status=dict(vol.status) or None)

    def _inspect(self, rec: VolumeRecord) -> Volume:
        driver = self._driver(rec.driver)
        found = self._call(driver, "get", rec.name)
        if found.mountpoint and found.mountpoint != rec.mountpoint:
            rec.mountpoint = found.mountpoint
        return self._view(rec, status=dict(found.status) or None)

    async def list(self, filters: dict[str, list[str]]) -> ListResponse:
        """The recorded volumes and, as Docker lists every driver's, those only a plugin knows
        (made outside this daemon); a plugin that fails adds a warning, not an error."""
        for key in filters:
            if key not in LIST_FILTERS:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        dangling = [_bool_filter("dangling", v) for v in filters.get("dangling", [])]
        records = self._all()
        found: list[tuple[Volume, bool]] = [(self._view(rec), bool(rec.users)) for rec in records]
        warnings: list[str] = []
        plugin_names = plugin.discover(self._socket_dirs, self._spec_dirs)
        if plugin_names:  # each plugin in a worker thread of its own: a slow one delays only the answer
            known = {rec.name for rec in records}
            for volumes, warning in await asyncio.gather(
                    *(asyncio.to_thread(self._plugin_volumes, name) for name in plugin_names)):
                if warning:
                    warnings.append(warning)
                for vol in volumes:
                    if vol.name not in known:
                        known.add(vol.name)
                        found.append((vol, False))
        out = []
        for vol, in_use in sorted(found, key=lambda pair: pair[0].name):
            if dangling and (not in_use) not in dangling:
                continue
            if "driver" in filters and vol.driver not in filters["driver"]:
                continue
            if not all(_label_match(vol.labels or {}, want) for want in filters.get("label", [])):
                continue
            if "name" in filters and not any(_name_match(vol.name, p) for p in filters["name"]):
                continue
            out.append(vol)
        return ListResponse(volumes=out, warnings=warnings or None)

    # ---- volumes only a plugin knows ------------------------------------------------------
    def _volume_plugin(self, name: str) -> VolumeDriver | None:
        """The plugin, activated; None when it is not a volume plugin (Docker passes over those)."""
        try:
            return self._driver(name)
        except (errdefs.InvalidParameter, errdefs.NotFound, errdefs.System) as e:
            log.debug("plugin %s is not a volume plugin: %s", name, e)
            return None

    def _plugin_volumes(self, name: str) -> tuple[list[Volume], str]:
        """One plugin's volumes (VolumeDriver.List), or the warning Docker's list gives for it."""
        try:
            driver = self._volume_plugin(name)
            if driver is None:
                return [], ""
            volumes = self._call(driver, "list")
            scope = str(self._call(driver, "scope"))
        except errdefs.DockyardError as e:
            log.warning("volume plugin %s: list: %s", name, e)
            return [], f"list {name}: {e}"
        return [Volume(name=v.name, driver=name, mountpoint=v.mountpoint, labels=None, options=None,
                       scope=scope, created_at=v.created_at) for v in volumes], ""

    def _find_in_plugins(self, name: str) -> tuple[VolumeDriver, DriverVolume] | None:
        """A volume this daemon has no record of, looked up in every plugin (VolumeDriver.Get) as
        Docker's store does for inspect, rm, and a -v without a driver (blocks: a worker thread)."""
        for plugin_name in plugin.discover(self._socket_dirs, self._spec_dirs):
            try:
                driver = self._volume_plugin(plugin_name)
                if driver is not None:
                    return driver, self._call(driver, "get", name)
            except errdefs.NotFound:
                continue
            except errdefs.DockyardError as e:  # a plugin that is down or hangs: ask the others
                log.warning("volume plugin %s: get %s: %s", plugin_name, name, e)
        return None

    def _adopt_from_plugin(self, name: str) -> VolumeRecord | None:
        """Record a volume only a plugin had, for a container that names it without a driver."""
        found = self._find_in_plugins(name)
        if found is None:
            return None
        driver, vol = found
        rec = VolumeRecord(name=name, driver=driver.name, created_at=vol.created_at or _now(),
                           scope=str(self._call(driver, "scope")), mountpoint=vol.mountpoint)
        with self._db.transaction() as cur:
            cur.execute("INSERT OR IGNORE INTO volumes (name, doc) VALUES (?, ?)", (name, msgspec.json.encode(rec)))
        return self._get(name)

    # ---- remove / prune -------------------------------------------------------------
    async def remove(self, name: str, force: bool = False) -> None:
        await asyncio.to_thread(self._remove, name, force)

    def _remove(self, name: str, force: bool) -> None:
        rec = self._get(name)
        if rec is None:
            found = self._find_in_plugins(name)
            if found is not None:  # made outside this daemon: the plugin removes it
                driver, _ = found
                try:
                    self._call(driver, "remove", name)
                except errdefs.DockyardError as e:
                    raise errdefs.System(f"remove {name}: {e}") from None
                self._events.emit("volume", "destroy", name, {"driver": driver.name})
                return
            if force:
                return
            raise errdefs.NotFound(f"get {name}: no such volume")
        with self._lock(name):
            self._remove_locked(name, force)

    def _remove_locked(self, name: str, force: bool) -> int:
        """Remove a volume nobody uses; returns the bytes it held (local volumes)."""
        rec = self._get(name)
        if rec is None:
            return 0
        if rec.users:
            raise errdefs.Conflict(f"remove {name}: volume is in use - [{' '.join(rec.users)}]")
        size = tree_size(Path(self._local.path(name))) if rec.driver == "local" else 0
        try:
            driver = self._driver(rec.driver)
            self._call(driver, "remove", name)
        except errdefs.DockyardError as e:
            if not force:
                if isinstance(e, errdefs.NotFound):
                    raise
                raise errdefs.System(f"remove {name}: {e}") from None
            log.warning("volume %s: driver %s failed to remove it, forgetting it (force): %s",
                        name, rec.driver, e)
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM volumes WHERE name = ?", (name,))
        self._locks.pop(name, None)
        self._events.emit("volume", "destroy", name, {"driver": rec.driver})
        return size

    async def prune(self, filters: dict[str, list[str]]) -> PruneResponse:
        return await asyncio.to_thread(self._prune, filters)

    def _prune(self, filters: dict[str, list[str]]) -> PruneResponse:
        """Remove the unused volumes of the local driver that prune may take, as moby's: anonymous
        ones unless ``all`` is true (API 1.42+; the API layer sets it for older clients). A plugin's
        volumes and local volumes with mount options (tmpfs, NFS, a bound device) are never pruned:
        removing them frees no space here."""
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        prune_all = _prune_all(filters.get("all", []))
        if not self._pruning.acquire(blocking=False):
            raise errdefs.Conflict("a prune operation is already running")
        try:
            deleted, reclaimed = [], 0
            for rec in self._all():
                if rec.users or not _prunable(rec) or (not prune_all and not rec.anonymous):
                    continue
                labels = rec.labels or {}
                if not all(_label_match(labels, want) for want in filters.get("label", [])):
                    continue
                if any(_label_match(labels, want) for want in filters.get("label!", [])):
                    continue
                try:
                    with self._lock(rec.name):
                        reclaimed += self._remove_locked(rec.name, force=False)
                except errdefs.DockyardError as e:
                    log.warning("prune: volume %s: %s", rec.name, e)
                    continue
                deleted.append(rec.name)
        finally:
            self._pruning.release()
        self._events.emit("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return PruneResponse(volumes_deleted=deleted or None, space_reclaimed=reclaimed)

    def disk_usage(self) -> list[Volume]:
        """The volumes /system/df reports, with UsageData: as moby's, only the local driver's
        without mount options (a plugin's or a tmpfs/NFS volume's size says nothing of this disk)."""
        out = []
        for rec in self._all():
            if not _prunable(rec):
                continue
            size = tree_size(Path(self._local.path(rec.name)))
            out.append(self._view(rec, usage=UsageData(size=size, ref_count=len(rec.users))))
        return out

    # ---- containers' mounts -----------------------------------------------------------
    def resolve_mounts(self, container_id: str, host_config: HostConfig,
                             config_volumes: dict[str, object] | None, image_layer_dirs: list[Path],
                             volumes_from_lookup: VolumesFromLookup,
                             default_read_only_non_recursive: bool = False) -> list[MountPoint]:
        """Work out a new container's mounts, create the volumes they need, record them.

        ``config_volumes`` is Config.Volumes with the image's VOLUMEs merged in (the docker
        CLI sends ``-v /path`` there). ``default_read_only_non_recursive`` is moby's flag for a
        client before API 1.44: its read-only binds stay non-recursive, as they were then, and
        it cannot ask for ReadOnlyForceRecursive. On any error nothing is left behind."""
        by_destination: dict[str, PlannedMount] = {}
        # --volumes-from first; -v and --mount may replace what it brings.
        for spec in host_config.volumes_from or []:
            ref, mode = mountspec.parse_volumes_from(spec)
            source_id = volumes_from_lookup(ref)
            for m in (self._plan(source_id) or ContainerMounts()).mounts:
                if m.type == "tmpfs":
                    continue
                inherited = msgspec.structs.replace(m)
                if mode:
                    words = mode.split(",")
                    if "ro" in words or "rw" in words:
                        inherited.read_only = "ro" in words
                    inherited.mode = mode
                by_destination[m.destination] = inherited
        requests: list[MountRequest] = [mountspec.parse_bind(b) for b in host_config.binds or []]
        for raw in host_config.mounts or []:
            try:
                spec = msgspec.convert(raw, MountSpec)
            except msgspec.ValidationError as e:
                raise errdefs.InvalidParameter(f"invalid mount config: {e}") from None
            requests.append(mountspec.parse_mount(spec))
        if default_read_only_non_recursive:
            for req in requests:
                if req.type != "bind" or not req.read_only:
                    continue
                if req.recursive == "readonly":
                    raise errdefs.InvalidParameter("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
                if req.recursive == "enabled":
                    req.recursive = "writable"
        seen: set[str] = set()
        for req in requests:
            if req.destination in seen:
                raise errdefs.InvalidParameter(f"Duplicate mount point: {req.destination}")
            seen.add(req.destination)
        for destination in config_volumes or {}:
            problem = mountspec.check_destination("volume", destination)
            if problem:
                raise errdefs.InvalidParameter(f"invalid volume specification: '{destination}': {problem}")
            clean = os.path.normpath(destination)
            if clean not in seen and clean not in by_destination:
                requests.append(MountRequest(type="volume", destination=clean))
                seen.add(clean)

        created: list[str] = []
        try:
            for req in requests:
                planned = PlannedMount(
                    type=req.type, destination=req.destination, source=req.source,
                    read_only=req.read_only, mode=req.mode, propagation=req.propagation,
                    subpath=req.subpath, recursive=req.recursive, create_source=req.create_source,
                    tmpfs_options=list(req.tmpfs_options))
                if req.type == "volume":
                    driver_name = req.driver or host_config.volume_driver or "local"
                    rec = self._get(req.source) if req.source else None
                    if rec is None and req.source and not (req.driver or host_config.volume_driver):
                        rec = self._adopt_from_plugin(req.source)  # no driver named: Docker asks every plugin
                    if rec is None:
                        rec = self._create(req.source, driver_name, req.driver_opts or None, req.labels or None)
                        created.append(rec.name)
                        if not req.nocopy and not req.subpath:
                            self._copy_up(rec, req.destination, image_layer_dirs, container_id)
                    elif req.driver and req.driver != rec.driver:
                        raise errdefs.Conflict(
                            f"create {rec.name}: volume name already exists with a different driver: "
                            f"{rec.driver}")
                    elif not req.nocopy and not req.subpath and rec.driver == "local":
                        self._copy_up(rec, req.destination, image_layer_dirs, container_id)
                    planned.source = rec.name
                    planned.driver = rec.driver
                by_destination[req.destination] = planned
            plan = ContainerMounts(mounts=sorted(by_destination.values(), key=lambda m: m.destination))
            if plan.mounts:  # a container without mounts costs no write (and no fsync) at create
                self._record_plan(container_id, plan)
        except BaseException:
            for name in created:
                try:
                    with self._lock(name):
                        self._remove_locked(name, force=True)
                except Exception as e:
                    log.warning("volume %s: undoing its creation: %s", name, e)
            raise
        return [self._mount_point(m) for m in plan.mounts]

    async def resolve_mounts_async(self, container_id: str, host_config: HostConfig,
                                   config_volumes: dict[str, object] | None, image_layer_dirs: list[Path],
                                   volumes_from_lookup: VolumesFromLookup,
                                   default_read_only_non_recursive: bool = False) -> list[MountPoint]:
        """``resolve_mounts`` for a caller on the event loop: a container with mounts has them
        resolved in a worker thread (plugin calls up to their timeout, copy-up of an image
        directory), so a slow volume plugin never stalls the daemon; one without costs nothing."""
        args = (container_id, host_config, config_volumes, image_layer_dirs, volumes_from_lookup,
                default_read_only_non_recursive)
        if not (host_config.binds or host_config.mounts or host_config.volumes_from or config_volumes):
            return self.resolve_mounts(*args)
        return await asyncio.to_thread(self.resolve_mounts, *args)

    def _record_plan(self, container_id: str, plan: ContainerMounts) -> None:
        """Save the container's mounts and make it a user of its volumes, in one transaction."""
        with self._db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO container_mounts (container_id, doc) VALUES (?, ?)",
                        (container_id, msgspec.json.encode(plan)))
            for m in plan.mounts:
                if m.type != "volume":
                    continue
                row = cur.execute("SELECT doc FROM volumes WHERE name = ?", (m.source,)).fetchone()
                if row is None:  # removed meanwhile by a volume rm
                    raise errdefs.NotFound(f"get {m.source}: no such volume")
                rec = msgspec.json.decode(row[0], type=VolumeRecord)
                if container_id not in rec.users:
                    rec.users.append(container_id)
                    cur.execute("UPDATE volumes SET doc = ? WHERE name = ?", (msgspec.json.encode(rec), rec.name))

    def _mount_point(self, m: PlannedMount) -> MountPoint:
        if m.type == "volume":
            rec = self._get(m.source)
            source = rec.mountpoint if rec else ""
            if source and m.subpath:
                source = os.path.join(source, m.subpath)
            return MountPoint(type="volume", name=m.source, source=source, destination=m.destination,
                              driver=m.driver, mode=m.mode, rw=not m.read_only, propagation="")
        if m.type == "tmpfs":
            return MountPoint(type="tmpfs", source="", destination=m.destination, mode="",
                              rw=not m.read_only, propagation="")
        return MountPoint(type="bind", source=m.source, destination=m.destination, mode=m.mode,
                          rw=not m.read_only, propagation=m.propagation)

    def volume_path(self, name: str) -> str:
        """The volume's content directory on the host: the local driver's ``_data``, or the
        Mountpoint a plugin last answered ("" when it never did). Only this service knows the layout."""
        rec = self._get(name)
        if rec is None:
            return ""
        return self._local.path(name) if rec.driver == "local" else rec.mountpoint

    def mount_points(self, container_id: str) -> list[MountPoint]:
        """The container's mounts as inspect shows them (Mountpoints of plugin volumes as last seen)."""
        return [self._mount_point(m) for m in (self._plan(container_id) or ContainerMounts()).mounts]

    def _copy_up(self, rec: VolumeRecord, destination: str, layers: list[Path], container_id: str) -> None:
        """Fill an empty volume with the image's content at ``destination`` (Docker's copy-up)."""
        if not layers:
            return
        driver = self._driver(rec.driver)
        mount_id = f"copyup-{container_id}"
        path = str(self._call(driver, "mount", rec.name, mount_id))
        try:
            if path and not any(os.scandir(path)):
                copyup.copy_up(layers, destination, Path(path))
        except OSError as e:
            raise errdefs.System(f"copying the image's {destination} into volume {rec.name}: {e}") from None
        finally:
            self._call(driver, "unmount", rec.name, mount_id)

    async def mount(self, container_id: str, runtime: str = "") -> list[oci.Mount]:
        """At start: mount each volume through its driver; the OCI mounts for the container's spec.
        ``runtime`` is what the shim runs ("dockyard" or a runc-compatible binary): a read-only
        bind is recursive only where it can be.

        If one fails, those already mounted are unmounted again."""
        plan = self._plan(container_id)
        if plan is None:
            return []  # the common case on the hot path: no thread hop, no driver
        if not any(m.type == "volume" for m in plan.mounts):
            return self._mount(container_id, plan, runtime)
        return await asyncio.to_thread(self._mount, container_id, plan, runtime)

    def _mount(self, container_id: str, plan: ContainerMounts, runtime: str) -> list[oci.Mount]:
        out: list[oci.Mount] = []
        mounted: list[PlannedMount] = []
        try:
            for m in plan.mounts:
                if m.type == "tmpfs":
                    out.append(oci.Mount(destination=m.destination, type="tmpfs", source="tmpfs",
                                         options=["nosuid", "nodev", "noexec", *m.tmpfs_options,
                                                  "ro" if m.read_only else "rw"]))
                    continue
                if m.type == "bind":
                    source = m.source
                    if not os.path.exists(source):
                        if not m.create_source:
                            raise errdefs.InvalidParameter(
                                f'invalid mount config for type "bind": bind source path does not exist: {source}')
                        os.makedirs(source, 0o755, exist_ok=True)
                else:
                    source = self._mount_volume(container_id, m)
                    mounted.append(m)
                options = ["rbind" if m.recursive != "disabled" else "bind",
                           m.propagation or mountspec.DEFAULT_PROPAGATION, _write_mode(m, runtime)]
                out.append(oci.Mount(destination=m.destination, type="bind", source=source, options=options))
        except BaseException:
            for m in mounted:
                self._unmount_volume(container_id, m, emit=False)
            raise
        return out

    def _mount_volume(self, container_id: str, m: PlannedMount) -> str:
        mount_id = m.mount_id(container_id)
        with self._lock(m.source):
            rec = self._must_get(m.source)
            driver = self._driver(rec.driver)
            try:
                path = str(self._call(driver, "mount", rec.name, mount_id))
            except errdefs.DockyardError as e:
                raise type(e)(f"error while mounting volume '{rec.name}': {e}") from None
            if not path:
                raise errdefs.System(f"error while mounting volume '{rec.name}': the driver gave no path")

            def note(rec: VolumeRecord) -> None:
                rec.mountpoint = path
                if mount_id not in rec.active_mounts:
                    rec.active_mounts.append(mount_id)
            self._update(rec.name, note)
        source = path
        if m.subpath:
            try:
                source = self._pin_subpath(container_id, m, path)
            except BaseException:
                self._unmount_volume(container_id, m, emit=False)
                raise
        self._events.emit("volume", "mount", rec.name, {
            "driver": rec.driver, "container": container_id, "destination": m.destination,
            "read/write": str(not m.read_only).lower(), "propagation": m.propagation})
        return source

    def _subpath_pin(self, container_id: str, m: PlannedMount) -> Path:
        return self._subpath_root / container_id / m.mount_id(container_id)[:16]

    def _pin_subpath(self, container_id: str, m: PlannedMount, volume_path: str) -> str:
        """Bind the volume's subpath to a private place and give the runtime that, as Docker's
        safepath: the path is walked one component at a time without following symlinks, and the
        bind is made from the descriptor, so a container that swaps a directory for a symlink
        (in a volume it shares) cannot point the mount outside the volume."""
        fd = os.open(volume_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in m.subpath.split("/"):
                if part in ("", "."):
                    continue
                try:
                    child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    raise errdefs.InvalidParameter(
                        f"cannot access path {os.path.join(volume_path, m.subpath)}: lstat "
                        f"{os.path.join(volume_path, m.subpath)}: no such file or directory") from None
                os.close(fd)
                fd = child
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise errdefs.InvalidParameter(
                        f"cannot access path {os.path.join(volume_path, m.subpath)}: a symbolic link in the "
                        f"subpath of volume {m.source} is not followed")
            pin = self._subpath_pin(container_id, m)
            pin.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                pin.mkdir(exist_ok=True)
            else:
                pin.touch(exist_ok=True)
            if not kernel.is_mountpoint(str(pin)):
                kernel.mount(f"/proc/self/fd/{fd}", str(pin), "", "bind")
            return str(pin)
        finally:
            os.close(fd)

    def _unpin_subpath(self, container_id: str, m: PlannedMount) -> None:
        pin = self._subpath_pin(container_id, m)
        try:
            if kernel.is_mountpoint(str(pin)):
                kernel.unmount(str(pin))
            pin.rmdir() if pin.is_dir() else pin.unlink(missing_ok=True)
            pin.parent.rmdir()
        except OSError:
            pass  # another pin of the container is still there, or it is already gone

    def _unmount_volume(self, container_id: str, m: PlannedMount, emit: bool = True) -> None:
        mount_id = m.mount_id(container_id)
        if m.subpath:
            self._unpin_subpath(container_id, m)
        with self._lock(m.source):
            rec = self._get(m.source)
            if rec is None or mount_id not in rec.active_mounts:
                return
            try:
                driver = self._driver(rec.driver)
                self._call(driver, "unmount", rec.name, mount_id)
            except errdefs.DockyardError as e:
                log.warning("volume %s: unmount for container %s: %s", rec.name, container_id, e)
            self._update(rec.name, lambda r: r.active_mounts.remove(mount_id) if mount_id in r.active_mounts else None)
        if emit:
            self._events.emit("volume", "unmount", rec.name, {"driver": rec.driver, "container": container_id})

    async def unmount(self, container_id: str) -> None:
        """At stop or exit: unmount each of the container's volumes; never raises for a driver."""
        plan = self._plan(container_id)
        if plan is not None and any(m.type == "volume" for m in plan.mounts):
            await asyncio.to_thread(self._unmount, container_id)

    def _unmount(self, container_id: str) -> None:
        for m in (self._plan(container_id) or ContainerMounts()).mounts:
            if m.type == "volume":
                self._unmount_volume(container_id, m)

    async def release(self, container_id: str, remove_anonymous: bool) -> None:
        """At container removal: forget its mounts; remove its anonymous volumes nobody else uses
        when asked (rm -v, --rm). Named volumes are always kept."""
        if self._plan(container_id) is not None:
            await asyncio.to_thread(self.release_blocking, container_id, remove_anonymous)

    def release_blocking(self, container_id: str, remove_anonymous: bool) -> None:
        """``release`` for synchronous callers (undoing a container create that failed later)."""
        plan = self._plan(container_id)
        if plan is None:
            return
        self._unmount(container_id)
        to_remove = []
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM container_mounts WHERE container_id = ?", (container_id,))
            for m in plan.mounts:
                if m.type != "volume":
                    continue
                row = cur.execute("SELECT doc FROM volumes WHERE name = ?", (m.source,)).fetchone()
                if row is None:
                    continue
                rec = msgspec.json.decode(row[0], type=VolumeRecord)
                if container_id in rec.users:
                    rec.users.remove(container_id)
                    cur.execute("UPDATE volumes SET doc = ? WHERE name = ?", (msgspec.json.encode(rec), rec.name))
                if remove_anonymous and rec.anonymous and not rec.users:
                    to_remove.append(rec.name)
        for name in to_remove:
            try:
                with self._lock(name):
                    self._remove_locked(name, force=False)
            except errdefs.DockyardError as e:
                log.warning("volume %s: removing with its container %s: %s", name, container_id, e)

    def forget_missing(self, container_ids: set[str]) -> None:
        """At daemon start, after the containers are loaded: drop the mounts and volume references
        of containers that no longer exist (a crash between a container's removal and its release),
        so their volumes do not stay "in use" forever."""
        known = {cid for (cid,) in self._db.query("SELECT container_id FROM container_mounts")}
        users = {u for rec in self._all() for u in rec.users}
        for cid in sorted((known | users) - container_ids):
            log.info("container %s is gone: releasing its volume references", cid)
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM container_mounts WHERE container_id = ?", (cid,))
            for rec in self._all():
                if cid in rec.users:
                    self._update(rec.name, lambda r: r.users.remove(cid) if cid in r.users else None)

    def restore(self) -> None:
        """At daemon start: the local driver relearns which mounts are active (its device mounts
        stayed up across the restart, and the last Unmount must take them down), and volume
        directories without a record (a create cut short, a data root carried over) are adopted,
        as Docker's local driver lists what is on disk."""
        known = {rec.name for rec in self._all()}
        for found in self._local.list():
            if found.name in known:
                continue
            try:
                names.validate_local(found.name)
            except errdefs.InvalidParameter:
                continue
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.lstat(self.root / found.name).st_mtime))
            options = self._local.options(found.name) or None
            self._save(VolumeRecord(name=found.name, driver="local", created_at=created, options=options,
                                    mountpoint=found.mountpoint))
            log.info("volume %s: found on disk, adopted", found.name)
        for rec in self._all():
            if rec.driver == "local" and rec.options:
                for mount_id in rec.active_mounts:
                    try:
                        self._local.mount(rec.name, mount_id)
                    except errdefs.DockyardError as e:
                        log.warning("volume %s: restoring mount %s: %s", rec.name, mount_id, e)
