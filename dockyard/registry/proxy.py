"""Pull-through cache: the hub as a mirror of an upstream registry (``registry-mirrors``).

A manifest asked for by tag is fetched from upstream (so the tag stays current) and cached;
when upstream cannot be reached the cached copy is served. Content asked for by digest is served
from the cache, fetched once on a miss and verified against its digest before it is kept.
Upstream auth follows the Bearer challenge (anonymously, or with the configured account).
Pushes are refused in this mode, as distribution's proxy does.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse

import aiohttp

from dockyard.registry import errors
from dockyard.registry.store import Store

_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])


class Upstream:
    def __init__(self, url: str, store: Store, username: str = "", password: str = "") -> None:
        self.url = url.rstrip("/")
        self.store = store
        self._auth = aiohttp.BasicAuth(username, password) if username else None
        self._tokens: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._fetching: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
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
        await asyncio.get_running_loop().run_in_executor(
            None, self.store.cache_manifest, name, reference, data, media_type)

    async def blob(self, name: str, digest: str) -> None:
        """Fetch a blob into the cache once, however many clients ask for it at the same time."""
        loop = asyncio.get_running_loop()
        lock = self._fetching.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                if await loop.run_in_executor(None, self.store.link_if_present, name, digest):
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
            except errors.DigestInvalid as e:
                raise errors.BlobUnknown(f"upstream sent a wrong blob: {e.message}", {"digest": digest}) from None
            finally:
                await loop.run_in_executor(None, self.store.cancel_upload, upload)
