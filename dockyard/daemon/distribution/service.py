"""DistributionService: the daemon's registry operations (pull, push, login, search, inspect).

One per daemon: it owns the registry client (connections, token cache), the daemon-wide
download and upload pools, and the blob-info records; the image service's store, layers
and lock are reused so a pulled image is registered exactly like a loaded one. Methods are
synchronous and run in a worker thread; progress goes out through ``Progress``.

An idle daemon only calls ``recover`` and ``close``: the registry client, the download pool
and the pull, push and manifest code (with ``dockyard.distribution``: ~0.4 MB of the daemon's
RSS) load at the first registry operation, imported where they are first needed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from dockyard import errdefs
from dockyard.apitypes.distribution import (AuthConfig, AuthResponse, DistributionDescriptor,
                                            DistributionInspect, DistributionPlatform, JSONMessage, SearchResult)
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.distribution.blobinfo import BlobInfo
from dockyard.daemon.distribution.progress import Progress
from dockyard.daemon.images import references
from dockyard.oci import image_spec as spec

if TYPE_CHECKING:
    from dockyard.daemon.distribution.download import Downloads
    from dockyard.daemon.distribution.registry import RegistryAPI
    from dockyard.daemon.images.service import ImageService

_SEARCH_FILTERS = ("is-automated", "is-official", "stars")
_KEEP_UNUSED_BLOBS = 24 * 3600.0


class DistributionService:
    def __init__(self, config: DaemonConfig, images: ImageService, registry: RegistryAPI | None = None,
                 retry_delay: float = 1.0) -> None:
        self.config = config
        self.images = images
        self.content = images.content
        self._registry = registry  # None: the daemon's own client (registry_client), made at first use
        self.max_concurrent_downloads = max(1, config.max_concurrent_downloads)
        self.max_concurrent_uploads = max(1, config.max_concurrent_uploads)
        self.push_chunk_size = 0  # 0: each layer in one streamed PATCH
        self.retry_delay = retry_delay  # first back-off of a failed transfer, then doubled
        self.closing = threading.Event()  # set by close(): transfers in flight stop at their next chunk
        self._downloads: Downloads | None = None
        self._first_use = threading.Lock()  # pulls start in worker threads: one client, one pool
        self.uploads = ThreadPoolExecutor(max_workers=self.max_concurrent_uploads, thread_name_prefix="upload")
        self.blobinfo = BlobInfo(config.image_root / "distribution" / "blobinfo")

    def recover(self, max_age: float = _KEEP_UNUSED_BLOBS) -> list[str]:
        """At start-up: drop downloaded blobs that no pull came back for (a pull that failed or was
        killed keeps its blobs so the next one resumes; after a day they are garbage). A layer's
        diff is never touched. Returns the digests removed."""
        diffs = {row[0] for row in self.images.store.db.query("SELECT DISTINCT diff_id FROM layers")}
        cutoff = time.time() - max_age
        removed = []
        for blob in self.content.list():
            if blob.digest not in diffs and self.content.path(blob.digest).stat().st_mtime < cutoff:
                self.content.delete(blob.digest)
                removed.append(blob.digest)
        return removed

    @property
    def registry(self) -> RegistryAPI:
        with self._first_use:
            if self._registry is None:
                self._registry = registry_client(self.config)
            return self._registry

    @property
    def downloads(self) -> Downloads:
        """The daemon-wide download pool (max-concurrent-downloads)."""
        with self._first_use:
            if self._downloads is None:
                from dockyard.daemon.distribution.download import Downloads
                self._downloads = Downloads(self.content, self.max_concurrent_downloads,
                                            max(1, self.config.max_download_attempts), self.retry_delay,
                                            self.closing)
            return self._downloads

    def close(self) -> None:
        self.closing.set()  # a pool made after this (a pull that was starting) stops at once
        with self._first_use:
            if self._downloads is not None:
                self._downloads.shutdown()
        self.uploads.shutdown(wait=False, cancel_futures=True)

    # ---- the API -----------------------------------------------------------------------
    def pull(self, image: str, tag: str, platform: str, auth: AuthConfig,
             emit: Callable[[JSONMessage], None]) -> None:
        from dockyard.daemon.distribution import pull as pulling
        from dockyard.daemon.distribution.credentials import credentials
        with _not_unauthorized():
            pulling.pull(self, image, tag, platform, credentials(auth), Progress(emit))

    def push(self, name: str, tag: str, auth: AuthConfig, emit: Callable[[JSONMessage], None]) -> None:
        from dockyard.daemon.distribution import push as pushing
        from dockyard.daemon.distribution.credentials import credentials
        with _not_unauthorized():
            pushing.push(self, name, tag, credentials(auth), Progress(emit))

    def login(self, auth: AuthConfig) -> AuthResponse:
        from dockyard.daemon.distribution.credentials import credentials, registry_domain
        identity_token = self.registry.login(registry_domain(auth.serveraddress), credentials(auth))
        return AuthResponse(status="Login Succeeded", identity_token=identity_token)

    def search(self, term: str, limit: int, filters: dict[str, list[str]], auth: AuthConfig) -> list[SearchResult]:
        if limit and not 1 <= limit <= 100:
            raise errdefs.InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
        for key in filters:
            if key not in _SEARCH_FILTERS:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        stars = 0
        for value in filters.get("stars", []):
            try:
                stars = max(stars, int(value))
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid filter 'stars={value}'") from None
        wanted_bool: dict[str, bool] = {}
        for key in ("is-automated", "is-official"):
            for value in filters.get(key, []):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise errdefs.InvalidParameter(f"invalid filter '{key}={value}'")
                wanted_bool[key] = value.lower() in ("true", "1")
        from dockyard.daemon.distribution.credentials import credentials
        index, query = _search_index(term)
        results = []
        for raw in self.registry.search(index, query, limit or 25, credentials(auth)):
            try:
                item = SearchResult(name=str(raw.get("name", "")), description=str(raw.get("description") or ""),
                                    star_count=int(raw.get("star_count") or 0),
                                    is_official=bool(raw.get("is_official")), is_automated=bool(raw.get("is_automated")))
            except (TypeError, ValueError):
                continue
            if item.star_count < stars:
                continue
            if wanted_bool.get("is-official", item.is_official) != item.is_official:
                continue
            if wanted_bool.get("is-automated", item.is_automated) != item.is_automated:
                continue
            results.append(item)
        return results[:limit] if limit else results

    def open_url(self, url: str) -> BinaryIO:
        """An import's ``fromSrc`` URL (scheme-less means http://, as Docker), opened for reading."""
        if "://" not in url:
            url = "http://" + url
        return self.registry.open_url(url)

    def inspect(self, name: str, auth: AuthConfig) -> DistributionInspect:
        """``GET /distribution/{name}/json``: the registry's descriptor and platforms of a reference."""
        from dockyard.daemon.distribution import manifests
        from dockyard.daemon.distribution import pull as pulling
        from dockyard.daemon.distribution.credentials import credentials
        ref = references.parse_tagged(name)
        repo = self.registry.repository(ref.domain, ref.path, credentials(auth))
        try:
            media_type, data, digest = repo.get_manifest(ref.digest or ref.tag or "latest", manifests.ACCEPT)
        except errdefs.DockyardError as e:
            raise pulling._translate(e, ref) from None
        doc = manifests.decode(media_type, data)
        media_type = media_type if media_type in spec.MANIFEST_TYPES + spec.INDEX_TYPES else (
            spec.OCI_INDEX if isinstance(doc, spec.Index) else spec.OCI_MANIFEST)
        platforms: list[DistributionPlatform] = []
        if isinstance(doc, spec.Index):
            for entry in doc.manifests:
                if entry.platform is not None:
                    p = entry.platform
                    platforms.append(DistributionPlatform(architecture=p.architecture, os=p.os, variant=p.variant,
                                                          os_version=p.os_version, os_features=p.os_features))
        else:
            config = spec.decode_config(pulling._fetch_config(self, repo, doc.config))
            platforms.append(DistributionPlatform(architecture=config.architecture, os=config.os,
                                                  variant=config.variant, os_version=config.os_version))
        return DistributionInspect(descriptor=DistributionDescriptor(media_type=media_type, digest=digest,
                                                                     size=len(data)),
                                   platforms=platforms)


@contextmanager
def _not_unauthorized() -> Iterator[None]:
    """A registry's 401 during a pull or push is not the API client's 401: dockerd answers 500
    (errdefs.Unknown) with the registry's words, and the docker CLI would otherwise stop to
    prompt for a login it cannot use."""
    try:
        yield
    except errdefs.Unauthorized as e:
        raise errdefs.System(e.message) from None


def _search_index(term: str) -> tuple[str, str]:
    """``localhost:5000/busybox`` searches that registry for ``busybox``; anything else Hub's index."""
    from dockyard.daemon.distribution.credentials import registry_domain
    from dockyard.distribution.endpoints import DOCKER_IO, INDEX_SERVER
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain = registry_domain(first)
        if domain != DOCKER_IO:
            return f"https://{domain}", rest
        return INDEX_SERVER, rest
    return INDEX_SERVER, term


def registry_client(config: DaemonConfig) -> RegistryAPI:
    """The real client, configured from daemon.json (for the composition root)."""
    from dockyard.distribution.client import RegistryClient
    from dockyard.distribution.endpoints import Endpoints, RegistrySettings
    settings = RegistrySettings(insecure_registries=list(config.insecure_registries),
                                mirrors=list(config.registry_mirrors), certs_dir=config.registry_certs_dir)
    return RegistryClient(Endpoints(settings))
