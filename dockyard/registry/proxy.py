"""Pull-through cache: the hub as a mirror of an upstream registry (``registry-mirrors``).

A manifest asked for by tag is fetched from upstream (so the tag stays current) and cached;
when upstream cannot be reached the cached copy is served. Content asked for by digest is served
from the cache, fetched once on a miss and verified against its digest before it is kept.
Upstream auth follows the Bearer challenge (anonymously, or with the configured account).
Pushes are refused in this mode, as distribution's proxy does.

Cached content expires as distribution's ``proxy.ttl`` (default 168h; 0 or less: never): each
manifest and blob fetched from upstream is removed from its repository ``ttl`` after it was
last fetched (a manifest, with the tags naming it), so a tag whose upstream has gone is served
from the cache for ``ttl`` at most. The schedule survives restarts (``proxy-expiry.json`` in the
data directory). The bytes of an expired blob go with the next garbage collection; asked for
before that, they are linked again (content-addressed: the same bytes upstream would send).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable

import aiohttp

from dockyard.registry import errors
from dockyard.registry.store import Store
from dockyard.storage.fsutil import write_atomic

log = logging.getLogger("dockyard.registry.proxy")

DEFAULT_TTL = "168h"  # distribution's repositoryTTL
SWEEP_INTERVAL = 60.0  # seconds between background sweeps; a request also sweeps what is due
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("168h", "1h30m", "90s", "0", "-1s"), as distribution's config reads
    ``proxy.ttl``, in seconds; ValueError for anything else."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_RE.match(body, pos)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


class Expiry:
    """Distribution's TTL scheduler for the cache: (kind, repository, digest) -> when it goes.
    Methods block (file writes); they are safe from several threads."""

    def __init__(self, path: Path, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.ttl = ttl
        self.clock = clock  # a test's own clock makes expiry deterministic
        self._lock = threading.Lock()
        self._due: dict[tuple[str, str, str], float] = {}
        try:
            for entry in json.loads(path.read_text()):
                self._due[(entry["kind"], entry["repository"], entry["digest"])] = float(entry["expires"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as e:  # a damaged schedule: content stays until re-fetched
            log.warning("%s: unreadable, starting a new schedule: %s", path, e)
        # the earliest deadline, read without the lock on the request path (a float is read whole);
        # never later than the real one: a deadline moved later leaves it early until the next sweep
        self._next = min(self._due.values(), default=float("inf"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps([
            {"kind": k, "repository": r, "digest": d, "expires": t} for (k, r, d), t in sorted(self._due.items())
        ]).encode())

    def add(self, kind: str, name: str, digest: str) -> None:
        """``kind`` "manifest" or "blob", just fetched from upstream: it goes ``ttl`` from now."""
        with self._lock:
            deadline = self._due[(kind, name, digest)] = self.clock() + self.ttl
            self._next = min(self._next, deadline)
            self._save()

    def anything_due(self) -> bool:
        """Cheap (no I/O): whether ``expire`` has work, for the request path."""
        return self._next <= self.clock()

    def expire(self, store: Store) -> list[tuple[str, str, str]]:
        """Remove from ``store`` what is due; returns what went."""
        with self._lock:
            now = self.clock()
            gone = []
            for kind, name, digest in [key for key, when in self._due.items() if when <= now]:
                try:
                    if kind == "manifest":
                        store.delete_manifest(name, digest)
                    else:
                        store.delete_blob(name, digest)
                except (errors.ManifestUnknown, errors.BlobUnknown):
                    pass  # deleted meanwhile (an admin's DELETE)
                except OSError as e:
                    log.warning("expiring %s %s@%s: %s (tried again at the next sweep)", kind, name, digest, e)
                    continue
                del self._due[(kind, name, digest)]
                gone.append((kind, name, digest))
                log.info("expired %s %s@%s from the cache", kind, name, digest)
            self._next = min(self._due.values(), default=float("inf"))
            if gone:
                self._save()
            return gone


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])


class Upstream:
    def __init__(self, url: str, store: Store, username: str = "", password: str = "",
                 ttl: str = DEFAULT_TTL, clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self.store = store
        self._auth = aiohttp.BasicAuth(username, password) if username else None
        self._tokens: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._fetching: dict[str, asyncio.Lock] = {}
        seconds = parse_duration(ttl)
        self.expiry = Expiry(store.root / "proxy-expiry.json", seconds, clock) if seconds > 0 else None
        self._sweeper: asyncio.Task | None = None

    def start(self) -> None:
        """Sweep expired content in the background (on the running loop) until ``close``."""
        if self.expiry is not None and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.expire_due()
            except Exception:  # noqa: BLE001 - the sweeper must outlive one bad pass
                log.exception("sweeping expired cache content")

    async def expire_due(self) -> None:
        """Remove what the TTL says has gone (costs nothing when nothing is due), before a request
        is served from the cache, so expired content is never served."""
        if self.expiry is not None and self.expiry.anything_due():
            await asyncio.get_running_loop().run_in_executor(None, self.expiry.expire, self.store)

    def _schedule(self, kind: str, name: str, digest: str) -> None:
        if self.expiry is not None:
            self.expiry.add(kind, name, digest)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                                                sock_read=60))
        return self._session

    async def _get(self, name: str, path: str) -> aiohttp.ClientResponse:
        """GET upstream, answering one Bearer challenge for ``name``'s pull scope."""
        headers = {"Accept": ACCEPT}
        token = self._tokens.get(name)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self._client().get(f"{self.url}/v2/{name}/{path}", headers=headers)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status == 401 and challenge.lower().startswith("bearer "):
            response.release()
            params = dict(_CHALLENGE_RE.findall(challenge))
            query = {"service": params.get("service", ""), "scope": f"repository:{name}:pull"}
            realm = params.get("realm", "")
            async with self._client().get(f"{realm}?{urllib.parse.urlencode(query)}", auth=self._auth) as r:
                if r.status != 200:
                    raise errors.Unauthorized(f"upstream token service refused: {r.status}")
                body = await r.json(content_type=None)
            self._tokens[name] = body.get("token") or body.get("access_token", "")
            headers["Authorization"] = f"Bearer {self._tokens[name]}"
            response = await self._client().get(f"{self.url}/v2/{name}/{path}", headers=headers)
        return response

    async def manifest(self, name: str, reference: str) -> None:
        """Refresh the cached manifest from upstream; a failure to reach upstream is not an error
        when a cached copy exists (the caller serves it)."""
        try:
            response = await self._get(name, f"manifests/{reference}")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return
        async with response:
            if response.status == 404:
                return
            if response.status != 200:
                return
            data = await response.read()
            media_type = response.headers.get("Content-Type", "")
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(None, self.store.cache_manifest, name, reference, data, media_type)
        await loop.run_in_executor(None, self._schedule, "manifest", name, digest)

    async def blob(self, name: str, digest: str) -> None:
        """Fetch a blob into the cache once, however many clients ask for it at the same time."""
        loop = asyncio.get_running_loop()
        lock = self._fetching.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                if await loop.run_in_executor(None, self.store.link_if_present, name, digest):
                    await loop.run_in_executor(None, self._schedule, "blob", name, digest)
                    return
                await self._fetch_blob(name, digest)
        finally:
            if not lock.locked():
                self._fetching.pop(digest, None)

    async def _fetch_blob(self, name: str, digest: str) -> None:
        try:
            response = await self._get(name, f"blobs/{digest}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise errors.BlobUnknown(f"blob unknown to registry: {digest} (upstream: {e})") from None
        async with response:
            if response.status != 200:
                raise errors.BlobUnknown(f"blob unknown to registry: {digest} (upstream said {response.status})",
                                         {"digest": digest})
            # staged as an upload session of the repository: verified and committed like a push
            loop = asyncio.get_running_loop()
            upload = await loop.run_in_executor(None, self.store.start_upload, name)
            try:
                await upload.append(response.content.iter_chunked(1 << 20))
                await loop.run_in_executor(None, self.store.finish_upload, upload, digest)
                await loop.run_in_executor(None, self._schedule, "blob", name, digest)
            except errors.DigestInvalid as e:
                raise errors.BlobUnknown(f"upstream sent a wrong blob: {e.message}", {"digest": digest}) from None
            finally:
                await loop.run_in_executor(None, self.store.cancel_upload, upload)
