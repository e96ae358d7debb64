"""One repository on one registry: manifests, blobs, uploads, tags, plus ping/login/search.

Every request goes through ``_request``: it adds the Authorization the host's remembered
challenge asks for, answers a 401 once (new token for the request's scopes), retries an
idempotent request on 429 (honouring Retry-After), 5xx and broken connections with
bounded back-off, and turns a registry's error body (``{"errors":[{"code":...}]}``) into an
errdefs error whose ``codes`` attribute lists the registry's error codes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from dockyard import errdefs
from dockyard.distribution.auth import Authorizer, Challenge, Credentials
from dockyard.distribution.endpoints import Endpoint, Endpoints
from dockyard.distribution.transport import ConnectionFailed, Response, TLSFailed, Transport

MAX_MANIFEST_SIZE = 4 << 20


@dataclass
class RetryPolicy:
    attempts: int = 5  # Docker's maxDownloadAttempts
    first_delay: float = 1.0  # then doubled each attempt
    max_delay: float = 30.0  # also caps a server's Retry-After

    def delay(self, attempt: int, response: Response | None) -> float:
        if response is not None and "retry-after" in response.headers:
            try:
                return min(max(float(response.headers["retry-after"]), 0.0), self.max_delay)
            except ValueError:
                pass
        return min(self.first_delay * (2 ** attempt), self.max_delay)


def registry_error(response: Response, what: str) -> errdefs.DockyardError:
    """The error a registry's answer means, worded as Docker words it."""
    try:
        body = response.body(1 << 20)
    except errdefs.DockyardError:
        body = b""
    codes: list[str] = []
    detail = ""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        parts = []
        for item in doc["errors"]:
            if isinstance(item, dict):
                code = str(item.get("code", "UNKNOWN"))
                codes.append(code)
                message = str(item.get("message", ""))
                parts.append(f"{code.lower().replace('_', ' ')}: {message}" if message else code.lower())
        detail = ", ".join(parts)
    status = response.status
    if not detail:
        if status == 401:
            detail = "unauthorized: authentication required"
        elif status == 429:
            detail = "toomanyrequests: too many requests"
        else:
            detail = f"received unexpected HTTP status: {status} {response.reason}"
    cls: type[errdefs.DockyardError]
    if status == 401:
        cls = errdefs.Unauthorized
    elif status == 403:
        cls = errdefs.Forbidden
    elif status == 404:
        cls = errdefs.NotFound
    elif status in (400, 405, 413, 416):
        cls = errdefs.InvalidParameter
    elif status == 429 or status >= 500:
        cls = errdefs.Unavailable
    else:
        cls = errdefs.System
    error = cls(f"{what}: {detail}" if what else detail)
    error.codes = codes or [f"HTTP_{status}"]  # type: ignore[attr-defined]
    error.status = status  # type: ignore[attr-defined]
    if "retry-after" in response.headers:
        try:
            error.retry_after = min(max(float(response.headers["retry-after"]), 0.0), 60.0)  # type: ignore[attr-defined]
        except ValueError:
            pass
    return error


def codes_of(error: BaseException) -> list[str]:
    return list(getattr(error, "codes", []))


class RegistryClient:
    """Shared by the daemon: one transport (connections), one token cache, the endpoint rules."""

    def __init__(self, endpoints: Endpoints, timeout: float = 30.0, retry: RetryPolicy | None = None) -> None:
        self.endpoints = endpoints
        self.retry = retry or RetryPolicy()
        self._verify: dict[str, bool] = {}
        self.transport = Transport(self._tls_for, timeout, endpoints.settings.proxies,
                                   endpoints.settings.proxy_loopback)
        self.authorizer = Authorizer(self.transport)

    def _tls_for(self, host: str):
        return self.endpoints.tls_context(host, verify=self._verify.get(host, True))

    def repository(self, domain: str, path: str, credentials: Credentials, push: bool = False,
                   extra_scopes: tuple[str, ...] = ()) -> Repository:
        actions = "pull,push" if push else "pull"
        scopes = (f"repository:{path}:{actions}",) + extra_scopes
        endpoints = self.endpoints.for_push(domain) if push else self.endpoints.for_pull(domain)
        return Repository(self, domain, path, credentials, scopes, endpoints)

    def ping(self, domain: str, credentials: Credentials, push: bool = False) -> Session:
        """An authenticated session on the first endpoint that answers ``/v2/``."""
        endpoints = self.endpoints.for_push(domain) if push else self.endpoints.for_pull(domain)
        last: BaseException | None = None
        for endpoint in endpoints:
            session = Session(self, domain, endpoint, credentials, ())
            try:
                session.ping()
                return session
            except (ConnectionFailed, errdefs.Unavailable) as e:
                last = e
        assert last is not None
        raise last

    def login(self, domain: str, credentials: Credentials) -> str:
        """Check the credentials against the registry (``docker login``); raises Unauthorized.
        Returns the identity token the registry's token server issued, if any."""
        session = self.ping(domain, credentials, push=True)
        return session.check_login()

    def search(self, index_url: str, term: str, limit: int, credentials: Credentials) -> list[dict]:
        """The v1 search API (``GET /v1/search?q=&n=``) of a registry or Hub's index."""
        query = {"q": term}
        if limit:
            query["n"] = str(limit)
        host = index_url.split("://", 1)[1].split("/", 1)[0]
        session = Session(self, host, Endpoint(index_url.split("/v1", 1)[0].rstrip("/"),
                                               verify_tls=not self.endpoints.is_insecure(host)), credentials, ())
        urls = [session.endpoint.url]
        if not session.endpoint.verify_tls:
            urls.append("http://" + host)
        last: BaseException | None = None
        for base in urls:
            session.endpoint = Endpoint(base, verify_tls=session.endpoint.verify_tls)
            try:
                response = session.request("GET", "/v1/search?" + urllib.parse.urlencode(query),
                                           ok=tuple(range(300, 600)))
            except TLSFailed as e:
                last = e
                continue
            if response.status != 200:
                error = registry_error(response, "")
                raise type(error)(f"Unexpected status code {response.status}")
            try:
                doc = json.loads(response.body())
            except ValueError:
                raise errdefs.Unavailable(f"invalid search response from {base}") from None
            results = doc.get("results") if isinstance(doc, dict) else None
            return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
        assert last is not None
        raise last


    def open_url(self, url: str) -> Response:
        """A plain GET (an import's archive URL); the caller reads and closes the body."""
        if not url.startswith(("http://", "https://")):
            raise errdefs.InvalidParameter(f"unsupported URL scheme in {url!r}: use http or https")
        response = self.transport.request("GET", url)
        if response.status >= 400:
            response.close(reuse=False)
            raise errdefs.InvalidParameter(f"failed to GET {url} with status {response.status} {response.reason}")
        return response


class Session:
    """Requests to one endpoint with one set of credentials and scopes."""

    def __init__(self, client: RegistryClient, domain: str, endpoint: Endpoint, credentials: Credentials,
                 scopes: tuple[str, ...]) -> None:
        self.client = client
        self.domain = domain
        self.endpoint = endpoint
        self.credentials = credentials
        self.scopes = scopes

    @property
    def origin(self) -> str:
        return self.endpoint.url

    def url(self, path: str) -> str:
        return urllib.parse.urljoin(self.endpoint.url + "/", path.lstrip("/")) if not path.startswith(
            ("http://", "https://")) else path

    def ping(self) -> None:
        """``GET /v2/``: proves the endpoint speaks the API and learns its challenge. For an
        insecure registry, a failed TLS handshake falls back to plain HTTP (once per host)."""
        self.client._verify[self.endpoint.host] = self.endpoint.verify_tls
        try:
            response = self.client.transport.request("GET", self.url("/v2/"))
        except TLSFailed:
            if self.endpoint.url.startswith("https://") and not self.endpoint.verify_tls:
                self.endpoint = Endpoint("http://" + self.endpoint.host, self.endpoint.mirror, False)
                response = self.client.transport.request("GET", self.url("/v2/"))
                self.client.endpoints.learned_http(self.domain)
            else:
                raise
        try:
            if response.status == 401:
                self.client.authorizer.remember(self.origin, response.headers.get("www-authenticate", ""))
            elif response.status >= 500 or response.status == 404:
                raise registry_error(response, f'Get "{self.url("/v2/")}"')
        finally:
            response.close()

    def check_login(self) -> str:
        challenge = self.client.authorizer.challenge_of(self.origin)
        if challenge is None:
            return ""  # an open registry: any credentials "work", as with Docker
        url = self.url("/v2/")
        try:
            header, identity_token = self.client.authorizer.login(challenge, self.credentials)
        except errdefs.Unauthorized as e:
            raise errdefs.Unauthorized(f'Get "{url}": {e}') from None
        response = self.client.transport.request("GET", url, {"Authorization": header} if header else {})
        response.close()
        if response.status != 200:
            raise errdefs.Unauthorized(f"login attempt to {url} failed with status: {response.status} {response.reason}")
        return identity_token

    def _auth_header(self, method: str, url: str, challenge: Challenge | None, fresh: bool = False) -> dict[str, str]:
        if challenge is None:
            return {}
        if challenge.scheme == "basic" and self.credentials.anonymous:
            # a basic-auth registry has nothing for anonymous clients (Docker's words)
            raise errdefs.Unauthorized(f'{method.capitalize()} "{url}": no basic auth credentials')
        header = self.client.authorizer.header(challenge, self.credentials, self.scopes, fresh)
        return {"Authorization": header} if header else {}

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | BinaryIO | Iterable[bytes] | None = None, retry: bool | None = None,
                ok: tuple[int, ...] = ()) -> Response:
        """One API request with auth and (for idempotent ones) retries; the caller closes the answer.
        Statuses in ``ok`` (and 2xx) are returned; anything else raises via ``registry_error``."""
        retry = method in ("GET", "HEAD") if retry is None else retry
        policy = self.client.retry
        url = self.url(path)
        reauthorized = False
        attempt = 0
        while True:
            challenge = self.client.authorizer.challenge_of(self.origin)
            try:
                response = self.client.transport.request(
                    method, url, {**(headers or {}), **self._auth_header(method, url, challenge, fresh=reauthorized)}, body)
            except ConnectionFailed as e:
                if not retry or isinstance(e, TLSFailed) or attempt + 1 >= policy.attempts:
                    raise
                time.sleep(policy.delay(attempt, None))
                attempt += 1
                continue
            if response.status == 401 and not reauthorized and _resendable(body) \
                    and self.client.authorizer.remember(self.origin, response.headers.get("www-authenticate", "")):
                response.close()
                reauthorized = True
                continue
            if (response.status == 429 or response.status >= 500) and retry and attempt + 1 < policy.attempts:
                delay = policy.delay(attempt, response)
                response.close(reuse=False)
                time.sleep(delay)
                attempt += 1
                continue
            if 200 <= response.status < 300 or response.status in ok:
                return response
            raise registry_error(response, "")


def _resendable(body: object) -> bool:
    return body is None or isinstance(body, (bytes, bytearray))


class Repository:
    """A repository session: tried on each endpoint in turn until one answers (mirrors first)."""

    def __init__(self, client: RegistryClient, domain: str, path: str, credentials: Credentials,
                 scopes: tuple[str, ...], endpoints: list[Endpoint]) -> None:
        self.client = client
        self.domain = domain
        self.path = path
        self._credentials = credentials
        self._scopes = scopes
        self._endpoints = list(endpoints)
        self._session: Session | None = None
        self._last_error: BaseException | None = None  # why the last endpoint was given up
        self._lock = threading.Lock()

    @property
    def session(self) -> Session:
        with self._lock:  # layer transfers share the repository from several threads
            if self._session is None:
                self._next_endpoint()
            assert self._session is not None
            return self._session

    @property
    def on_mirror(self) -> bool:
        return self.session.endpoint.mirror

    def _next_endpoint(self) -> None:
        last = self._last_error
        while self._endpoints:
            endpoint = self._endpoints.pop(0)
            session = Session(self.client, self.domain, endpoint, self._credentials, self._scopes)
            try:
                session.ping()
            except (ConnectionFailed, errdefs.Unavailable, errdefs.NotFound) as e:
                last = self._last_error = e
                continue
            self._session = session
            return
        if last is None:
            raise errdefs.Unavailable(f"no endpoint left for {self.domain}")
        raise last

    def _fallback(self, error: BaseException) -> bool:
        """A mirror failed: move to the next endpoint (the origin) if there is one."""
        with self._lock:
            if self._session is not None and self._session.endpoint.mirror and self._endpoints:
                self._session = None
                return True
            return False

    def _api(self, suffix: str) -> str:
        return f"/v2/{self.path}/{suffix}"

    # ---- manifests -------------------------------------------------------------------------
    def get_manifest(self, reference: str, accept: list[str]) -> tuple[str, bytes, str]:
        """(media type, bytes, digest) of a manifest by tag or digest; a digest is verified."""
        while True:
            try:
                response = self.session.request("GET", self._api(f"manifests/{reference}"),
                                                {"Accept": ", ".join(accept)})
                data = response.body(MAX_MANIFEST_SIZE)
                break
            except (ConnectionFailed, errdefs.Unavailable, errdefs.NotFound, errdefs.Unauthorized) as e:
                if not self._fallback(e):
                    raise
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise errdefs.InvalidParameter(
                f"manifest verification failed for digest {reference}: got {digest}")
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return media_type, data, digest

    def put_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        response = self.session.request("PUT", self._api(f"manifests/{reference}"),
                                        {"Content-Type": media_type}, data)
        response.close()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def tags(self) -> list[str]:
        out: list[str] = []
        path = self._api("tags/list")
        for _ in range(1000):
            response = self.session.request("GET", path)
            link = response.headers.get("link", "")
            doc = json.loads(response.body())
            out.extend(doc.get("tags") or [])
            if not link.startswith("<"):
                break
            path = link[1:].split(">", 1)[0]
        return out

    # ---- blobs ----------------------------------------------------------------------------
    def open_blob(self, digest: str, offset: int = 0) -> Response:
        """The blob's bytes from ``offset`` (a Range request; status 206, or 200 when ignored)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        # no retries here: the downloader retries, resuming from what it already has
        return self.session.request("GET", self._api(f"blobs/{digest}"), headers, retry=False)

    def blob_size(self, digest: str) -> int | None:
        """HEAD: the registry's size of the blob, or None when it does not have it here."""
        response = self.session.request("HEAD", self._api(f"blobs/{digest}"), ok=(404,))
        if response.status == 404:
            return None
        try:
            return int(response.headers.get("content-length", "-1"))
        except ValueError:
            return -1

    def start_upload(self) -> str:
        """A new upload session: its location."""
        response = self.session.request("POST", self._api("blobs/uploads/"), {"Content-Length": "0"}, b"")
        response.close()
        return self._location(response)

    def mount(self, digest: str, from_path: str) -> str | None:
        """Cross-repository mount: None when mounted, else the location of the upload the
        registry started instead (where the blob can be sent)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_path})
        response = self.session.request("POST", self._api("blobs/uploads/") + "?" + query,
                                        {"Content-Length": "0"}, b"")
        response.close()
        return None if response.status == 201 else self._location(response)

    def _location(self, response: Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise errdefs.Unavailable(f"{self.domain}: upload started without a Location")
        return self.session.url(location)

    def upload_monolithic(self, location: str, digest: str, data: bytes) -> None:
        response = self.session.request("PUT", _with_digest(location, digest),
                                        {"Content-Type": "application/octet-stream",
                                         "Content-Length": str(len(data))}, data, retry=False)
        response.close()

    def upload_chunks(self, location: str, chunks: Iterable[bytes], chunk_size: int) -> str:
        """PATCH the data: one streamed request when ``chunk_size`` is 0, else one request per
        ``chunk_size`` bytes with Content-Range (the chunked upload). Returns the next location."""
        if chunk_size <= 0:
            response = self.session.request("PATCH", location, {"Content-Type": "application/octet-stream"},
                                            chunks, retry=False)
            response.close()
            return self.session.url(response.headers.get("location", location))
        offset = 0
        buffer = bytearray()

        def send(data: bytes) -> None:
            nonlocal location, offset
            response = self.session.request(
                "PATCH", location, {"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                                    "Content-Range": f"{offset}-{offset + len(data) - 1}"}, data, retry=False)
            response.close()
            location = self.session.url(response.headers.get("location", location))
            offset += len(data)

        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= chunk_size:
                send(bytes(buffer[:chunk_size]))
                del buffer[:chunk_size]
        if buffer:
            send(bytes(buffer))
        return location

    def finish_upload(self, location: str, digest: str) -> None:
        response = self.session.request("PUT", _with_digest(location, digest), {"Content-Length": "0"}, b"",
                                        retry=False)
        response.close()


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest)}"
