"""Blobs on an S3-compatible object store, for when one machine's disk is outgrown.

Objects are ``<prefix>blobs/sha256/<hex>``; an object appears whole or not at all. Blob
downloads are answered with a redirect to a presigned GET URL (distribution's S3 driver does the
same), so blob bytes never pass through the hub. Requests are signed with AWS Signature
Version 4 (stdlib hmac); every body is signed with its own SHA-256, so the store checks the bytes
again on arrival. Repository links, tags and metadata stay on the hub's data directory.

Writes:

- a monolithic blob is hashed and sized locally first (staged in ``<data>/staging``), then sent
  in one PUT (its payload hash is the blob's digest) or, above ``part_size``, as a multipart
  upload straight to its key (parts of ``part_size``, S3's minimum is 5 MiB);
- an upload session (a chunked upload: many PATCHes, then PUT) becomes a multipart upload to
  ``<prefix>uploads/<uuid>`` as the bytes arrive: whenever ``part_size`` bytes are waiting in
  the session's ``data`` file they are sent as the next part, so the hub holds at most about
  one part per session. The session's ``parts.json`` keeps the upload id and the parts' ETags;
  the SHA-256 runs in memory as bytes arrive (after a restart of the hub the object is read back
  to verify it). The final PUT completes the upload, checks the digest, and copies the object
  to its blob key (CopyObject, or UploadPartCopy above S3's 5 GiB copy limit), then deletes it.
  A session below one part is sent as one PUT at the end, like a monolithic blob.

Whatever fails (a part, the completion, the copy, a digest that does not match) aborts the
multipart upload and deletes the temporary object: nothing half-written stays in the bucket.
A client that disconnects mid-PATCH leaves the session as it was before that PATCH (the parts
sent during it are forgotten and overwritten later; the bytes that were waiting are restored).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import os
import shutil
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterable

from dockyard import errdefs
from dockyard.registry import errors
from dockyard.registry.names import valid_digest
from dockyard.storage.content import Descriptor
from dockyard.storage.fsutil import write_atomic

_CHUNK = 1 << 20
_SAFE = "-_.~"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MIN_PART_SIZE = 5 << 20  # S3: every part but the last
MAX_PARTS = 10000  # S3: parts in one multipart upload


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # http(s)://host:port
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    prefix: str = ""
    redirect: bool = True
    presign_expires: int = 1200
    part_size: int = 16 << 20

    def __post_init__(self) -> None:
        if not isinstance(self.part_size, int) or self.part_size < MIN_PART_SIZE:
            raise ValueError(f"s3: part_size must be at least {MIN_PART_SIZE} bytes (5 MiB, S3's minimum part)")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _quote(text: str, safe: str = _SAFE) -> str:
    return urllib.parse.quote(text, safe=safe)


class Signer:
    """AWS Signature Version 4 for the ``s3`` service."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self.access_key, self.secret_key, self.region = access_key, secret_key, region

    def _key(self, date: str) -> bytes:
        key = _hmac(("AWS4" + self.secret_key).encode(), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return key

    def _signature(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                   payload_hash: str, amz_date: str) -> tuple[str, str, str]:
        canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        names = sorted(headers)
        canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
        signed = ";".join(names)
        request = "\n".join([method, _quote(path, "/" + _SAFE), canonical_query, canonical_headers, signed,
                             payload_hash])
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
        return hmac.new(self._key(amz_date[:8]), to_sign.encode(), hashlib.sha256).hexdigest(), scope, signed

    def sign_headers(self, method: str, host: str, path: str, query: dict[str, str], payload_hash: str,
                     extra: dict[str, str] | None = None, now: float | None = None) -> dict[str, str]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash,
                   **{k.lower(): v for k, v in (extra or {}).items()}}
        signature, scope, signed = self._signature(method, path, query, headers, payload_hash, amz_date)
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        return headers

    def presign(self, method: str, host: str, path: str, expires: int, now: float | None = None) -> str:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        query = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                 "X-Amz-Credential": f"{self.access_key}/{amz_date[:8]}/{self.region}/s3/aws4_request",
                 "X-Amz-Date": amz_date, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host"}
        signature, _, _ = self._signature(method, path, query, {"host": host}, "UNSIGNED-PAYLOAD", amz_date)
        query["X-Amz-Signature"] = signature
        return _quote(path, "/" + _SAFE) + "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query.items())


def _find(root: ET.Element, name: str) -> str:
    """An element's text, with or without S3's XML namespace (stores differ)."""
    return root.findtext(f".//{_NS}{name}") or root.findtext(f".//{name}") or ""


async def _in_thread(fn, *args) -> None:
    """Run blocking ``fn`` in a thread; if the request is cancelled meanwhile, still wait for it
    to end before the caller rolls back what it was changing."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        await asyncio.shield(future)
    except BaseException:
        while not future.done():
            try:
                await asyncio.wait([future])
            except asyncio.CancelledError:
                continue
        raise


def _check_digest(digest: str) -> str:
    if not valid_digest(digest):
        raise errdefs.InvalidParameter(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest[len("sha256:"):]


class S3Blobs:
    # CopyObject takes objects up to 5 GiB; larger ones are copied part by part (a class
    # attribute so a test can exercise that path with small objects)
    copy_limit = 5 << 30

    def __init__(self, settings: S3Settings, staging: Path) -> None:
        self.settings = settings
        url = urllib.parse.urlsplit(settings.endpoint)
        self._https = url.scheme == "https"
        self._host = url.netloc
        self._signer = Signer(settings.access_key, settings.secret_key, settings.region)
        self._staging = staging
        staging.mkdir(parents=True, exist_ok=True)

    # ---- HTTP ------------------------------------------------------------------------

    def _path(self, key: str = "") -> str:
        return f"/{self.settings.bucket}/{key}" if key else f"/{self.settings.bucket}"

    def _request(self, method: str, key: str = "", query: dict[str, str] | None = None,
                 body: bytes | BinaryIO | None = None, payload_hash: str | None = None,
                 extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        query = query or {}
        if payload_hash is None:
            payload_hash = hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
        path = self._path(key)
        headers = self._signer.sign_headers(method, self._host, path, query, payload_hash, extra)
        target = _quote(path, "/" + _SAFE) + (
            "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())) if query else "")
        conn_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = conn_class(self._host, timeout=60)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except OSError as e:
            raise errdefs.Unavailable(f"object store {self._host}: {e}") from None
        finally:
            conn.close()

    def _check(self, status: int, data: bytes, what: str) -> None:
        # S3 may answer 200 and put the error in the body (CopyObject, CompleteMultipartUpload)
        if status >= 300 or data.lstrip().startswith(b"<?xml") and b"<Error>" in data[:200]:
            raise errdefs.System(f"object store: {what} failed ({status}): {data[:300].decode(errors='replace')}")

    def _key(self, digest: str) -> str:
        return f"{self.settings.prefix}blobs/sha256/{_check_digest(digest)}"

    def upload_key(self, uuid: str) -> str:
        """Where an upload session's multipart upload assembles its object."""
        return f"{self.settings.prefix}uploads/{uuid}"

    def ensure_bucket(self) -> None:
        status, _, data = self._request("HEAD")
        if status == 404:
            status, _, data = self._request("PUT")
            self._check(status, data, f"create bucket {self.settings.bucket}")
        elif status >= 300:
            self._check(status, data, f"bucket {self.settings.bucket}")

    # ---- multipart uploads -------------------------------------------------------------

    def create_multipart(self, key: str) -> str:
        status, _, data = self._request("POST", key, {"uploads": ""},
                                        extra={"content-type": "application/octet-stream"})
        self._check(status, data, f"start multipart upload of {key}")
        upload_id = _find(ET.fromstring(data), "UploadId")
        if not upload_id:
            raise errdefs.System(f"object store: no UploadId for {key}")
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, f: BinaryIO, size: int) -> str:
        """Send ``size`` bytes from ``f``'s current position as part ``number``; its ETag."""
        start = f.tell()
        hasher, left = hashlib.sha256(), size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise errdefs.System(f"part {number} of {key}: the local data ended early")
            hasher.update(chunk)
            left -= len(chunk)
        f.seek(start)
        status, headers, data = self._request(
            "PUT", key, {"partNumber": str(number), "uploadId": upload_id}, body=_Window(f, size),
            payload_hash=hasher.hexdigest(), extra={"content-length": str(size)})
        self._check(status, data, f"part {number} of {key}")
        return headers.get("etag", "")

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        root = ET.Element("CompleteMultipartUpload")
        for number, etag in enumerate(etags, 1):
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = etag
        body = ET.tostring(root)
        status, _, data = self._request("POST", key, {"uploadId": upload_id}, body=body,
                                        extra={"content-type": "application/xml"})
        self._check(status, data, f"complete multipart upload of {key}")

    def abort_multipart(self, key: str, upload_id: str) -> None:
        status, _, data = self._request("DELETE", key, {"uploadId": upload_id})
        if status != 404:
            self._check(status, data, f"abort multipart upload of {key}")

    def multipart_uploads(self) -> list[tuple[str, str]]:
        """(key, upload id) of every multipart upload under the prefix not yet completed or aborted."""
        out = []
        marker: dict[str, str] = {}
        while True:
            status, _, data = self._request("GET", query={"uploads": "", "prefix": self.settings.prefix, **marker})
            self._check(status, data, "list multipart uploads")
            root = ET.fromstring(data)
            for item in root.iter(f"{_NS}Upload"):
                out.append((item.findtext(f"{_NS}Key", ""), item.findtext(f"{_NS}UploadId", "")))
            if root.findtext(f"{_NS}IsTruncated", "false") != "true":
                return out
            marker = {"key-marker": root.findtext(f"{_NS}NextKeyMarker", ""),
                      "upload-id-marker": root.findtext(f"{_NS}NextUploadIdMarker", "")}

    def _put_multipart(self, key: str, f: BinaryIO, size: int) -> None:
        """A local file's bytes as a multipart upload to ``key``; aborted on any failure."""
        part_size = max(self.settings.part_size, -(-size // MAX_PARTS))
        upload_id = self.create_multipart(key)
        try:
            etags = []
            for offset in range(0, size, part_size):
                etags.append(self.upload_part(key, upload_id, len(etags) + 1, f, min(part_size, size - offset)))
            self.complete_multipart(key, upload_id, etags)
        except BaseException:
            self.abort_multipart(key, upload_id)
            raise

    def _copy(self, source: str, key: str, size: int) -> None:
        """Server-side copy (objects above ``copy_limit`` part by part, aborted on failure)."""
        copy_source = {"x-amz-copy-source": _quote(self._path(source), "/" + _SAFE)}
        if size <= self.copy_limit:
            status, _, data = self._request("PUT", key, extra=copy_source)
            self._check(status, data, f"copy {source} to {key}")
            return
        part_size = max(self.settings.part_size, -(-size // MAX_PARTS))
        upload_id = self.create_multipart(key)
        try:
            etags = []
            for offset in range(0, size, part_size):
                last = min(offset + part_size, size) - 1
                status, _, data = self._request(
                    "PUT", key, {"partNumber": str(len(etags) + 1), "uploadId": upload_id},
                    extra={**copy_source, "x-amz-copy-source-range": f"bytes={offset}-{last}"})
                self._check(status, data, f"copy part {len(etags) + 1} of {source}")
                etags.append(_find(ET.fromstring(data), "ETag"))
            self.complete_multipart(key, upload_id, etags)
        except BaseException:
            self.abort_multipart(key, upload_id)
            raise

    def _delete_key(self, key: str) -> None:
        status, _, data = self._request("DELETE", key)
        if status != 404:
            self._check(status, data, f"DELETE {key}")

    # ---- Blobs -----------------------------------------------------------------------

    def _put_file(self, f: BinaryIO, size: int, digest: str) -> None:
        """Store a verified local file as the blob ``digest`` (unless it is there already)."""
        if self.has(digest):
            return
        f.seek(0)
        if size > self.settings.part_size:
            self._put_multipart(self._key(digest), f, size)
            return
        status, _, reply = self._request("PUT", self._key(digest), body=f, payload_hash=digest[len("sha256:"):],
                                         extra={"content-length": str(size),
                                                "content-type": "application/octet-stream"})
        self._check(status, reply, f"PUT {digest}")

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected_digest: str | None = None,
               expected_size: int | None = None) -> Descriptor:
        if expected_digest is not None:
            _check_digest(expected_digest)
        with tempfile.TemporaryFile(dir=self._staging) as staged:
            if isinstance(data, (bytes, bytearray, memoryview)):
                chunks: Iterable[bytes] = [bytes(data)]
            elif hasattr(data, "read"):
                read = data.read  # type: ignore[union-attr]
                chunks = iter(lambda: read(_CHUNK), b"")
            else:
                chunks = data  # type: ignore[assignment]
            hasher, size = hashlib.sha256(), 0
            for chunk in chunks:
                hasher.update(chunk)
                staged.write(chunk)
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    break
            digest = "sha256:" + hasher.hexdigest()
            if expected_size is not None and size != expected_size:
                raise errdefs.InvalidParameter(f"content size mismatch: expected {expected_size} bytes, got {size}")
            if expected_digest is not None and digest != expected_digest:
                raise errdefs.InvalidParameter(f"content digest mismatch: expected {expected_digest}, got {digest}")
            self._put_file(staged, size, digest)
            return Descriptor(digest, size)

    def _head(self, digest: str) -> dict[str, str]:
        status, headers, data = self._request("HEAD", self._key(digest))
        if status == 404:
            raise errdefs.NotFound(f"content {digest}: not found")
        self._check(status, data, f"HEAD {digest}")
        return headers

    def info(self, digest: str) -> Descriptor:
        return Descriptor(digest, int(self._head(digest)["content-length"]))

    def has(self, digest: str) -> bool:
        try:
            self._head(digest)
            return True
        except errdefs.NotFound:
            return False

    def read_bytes(self, digest: str) -> bytes:
        status, _, data = self._request("GET", self._key(digest))
        if status == 404:
            raise errdefs.NotFound(f"content {digest}: not found")
        self._check(status, data, f"GET {digest}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise errdefs.System(f"object store returned corrupt content for {digest}")
        return data

    def _hash_object(self, key: str) -> str:
        """The SHA-256 of an object, streamed (never whole in memory)."""
        path = self._path(key)
        headers = self._signer.sign_headers("GET", self._host, path, {}, hashlib.sha256(b"").hexdigest())
        conn_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = conn_class(self._host, timeout=60)
        try:
            conn.request("GET", _quote(path, "/" + _SAFE), headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                self._check(response.status, response.read(), f"GET {key}")
            hasher = hashlib.sha256()
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                hasher.update(chunk)
            return "sha256:" + hasher.hexdigest()
        except OSError as e:
            raise errdefs.Unavailable(f"object store {self._host}: {e}") from None
        finally:
            conn.close()

    def delete(self, digest: str) -> None:
        self._delete_key(self._key(digest))

    def _list_keys(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        out = []
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, _, data = self._request("GET", query=query)
            self._check(status, data, f"list {prefix}")
            root = ET.fromstring(data)
            for item in root.iter(f"{_NS}Contents"):
                out.append((item.findtext(f"{_NS}Key", ""), int(item.findtext(f"{_NS}Size", "0"))))
            token = root.findtext(f"{_NS}NextContinuationToken", "")
            if root.findtext(f"{_NS}IsTruncated", "false") != "true" or not token:
                return out

    def list(self) -> list[Descriptor]:
        prefix = f"{self.settings.prefix}blobs/sha256/"
        return sorted((Descriptor("sha256:" + key[len(prefix):], size) for key, size in self._list_keys(prefix)
                       if len(key) - len(prefix) == 64), key=lambda d: d.digest)

    def age(self, digest: str) -> float:
        modified = self._head(digest).get("last-modified", "")
        try:
            return time.time() - parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            return 0.0  # unknown age: treat as new, never collected by mistake

    def location(self, digest: str) -> Path | str:
        scheme = "https" if self._https else "http"
        path = self._signer.presign("GET", self._host, self._path(self._key(digest)), self.settings.presign_expires)
        return f"{scheme}://{self._host}{path}"

    def gc_staging(self) -> None:
        for entry in os.scandir(self._staging):
            try:
                os.unlink(entry.path)
            except OSError:
                pass

    def session(self, root: Path) -> "S3Session":
        return S3Session(self, root)

    def drop_orphaned_sessions(self, session_exists: Callable[[str], bool]) -> int:
        # listed before the directories are looked at: a session's directory is made before its
        # multipart upload and removed after it ends, so a live session is never taken for dead
        prefix = self.upload_key("")
        uploads = [(key, upload_id) for key, upload_id in self.multipart_uploads() if key.startswith(prefix)]
        objects = [key for key, _ in self._list_keys(prefix)]  # completed, then not deleted
        dropped = set()
        for key, upload_id in uploads:
            if not session_exists(key[len(prefix):]):
                self.abort_multipart(key, upload_id)
                dropped.add(key)
        for key in objects:
            if not session_exists(key[len(prefix):]):
                self._delete_key(key)
                dropped.add(key)
        return len(dropped)


class _Window:
    """``size`` bytes of a file from its current position, as an http.client body."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        chunk = self._f.read(n)
        self._left -= len(chunk)
        return chunk


@dataclass
class _Parts:
    """``parts.json``: the session's multipart upload and the parts it holds, in order."""
    upload_id: str = ""
    etags: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


class S3Session:
    """An upload session whose bytes go to a multipart upload as they arrive (module docstring).

    ``<root>/data`` holds the bytes not yet sent (less than a part between requests)."""

    def __init__(self, blobs: S3Blobs, root: Path) -> None:
        self._blobs = blobs
        self._root = root
        self._data = root / "data"
        self._parts_file = root / "parts.json"
        self._key = blobs.upload_key(root.name)
        self._hasher: "hashlib._Hash | None" = None
        try:
            if not self._parts().etags:  # nothing sent yet: the local bytes are all there is
                hasher = hashlib.sha256()
                with open(self._data, "rb") as f:
                    for chunk in iter(lambda: f.read(_CHUNK), b""):
                        hasher.update(chunk)
                self._hasher = hasher
        except FileNotFoundError:
            pass

    def _parts(self) -> _Parts:
        try:
            return _Parts(**json.loads(self._parts_file.read_text()))
        except FileNotFoundError:
            if not self._root.is_dir():
                raise
            return _Parts()

    def _save(self, parts: _Parts) -> None:
        write_atomic(self._parts_file, json.dumps(parts.__dict__).encode())

    @property
    def size(self) -> int:
        return sum(self._parts().sizes) + self._data.stat().st_size

    def _part_size(self, sent: int) -> int:
        """The session's total is unknown until its end: parts grow by ``part_size`` every
        1000, so S3's 10000 parts hold 55000 x ``part_size`` (880 GB at the default)."""
        return self._blobs.settings.part_size * (1 + sent // 1000)

    def _send_part(self, f: BinaryIO, parts: _Parts) -> None:
        """Send every byte of ``f`` (the waiting bytes) as the next part, then empty it."""
        size = f.seek(0, os.SEEK_END)
        if not parts.upload_id:
            parts.upload_id = self._blobs.create_multipart(self._key)
            self._save(parts)
        f.seek(0)
        etag = self._blobs.upload_part(self._key, parts.upload_id, len(parts.etags) + 1, f, size)
        parts.etags.append(etag)
        parts.sizes.append(size)
        self._save(parts)
        f.seek(0)
        f.truncate()

    async def append(self, chunks: AsyncIterator[bytes], start: int | None = None) -> int:
        parts = self._parts()
        before = _Parts(parts.upload_id, list(parts.etags), list(parts.sizes))
        hasher = self._hasher.copy() if self._hasher is not None else None
        saved = self._root / "data.before"
        saved.unlink(missing_ok=True)  # left by a hub that stopped mid-request
        with open(self._data, "r+b") as f:
            waiting = f.seek(0, os.SEEK_END)
            offset = sum(parts.sizes) + waiting
            if start is not None and start != offset:
                raise errors.RangeInvalid(f"upload chunk starts at {start}, expected {offset}", {"offset": offset})
            try:
                async for chunk in chunks:
                    f.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if f.tell() >= self._part_size(len(parts.etags)):
                        if not saved.exists():  # what was waiting, to put back if this request fails
                            f.seek(0)
                            with open(saved, "wb") as keep:
                                keep.write(f.read(waiting))
                        f.flush()
                        await _in_thread(self._send_part, f, parts)
            except BaseException:
                if saved.exists():  # keep the upload id: the parts sent are overwritten later
                    self._save(_Parts(parts.upload_id, before.etags, before.sizes))
                    f.seek(0)
                    f.truncate()
                    with open(saved, "rb") as keep:
                        shutil.copyfileobj(keep, f)
                else:
                    f.truncate(waiting)
                raise
            finally:
                saved.unlink(missing_ok=True)
            self._hasher = hasher
            return sum(parts.sizes) + f.tell()

    def commit(self, expected_digest: str) -> Descriptor:
        parts = self._parts()
        with open(self._data, "rb+") as f:
            if not parts.etags:  # below one part: a single PUT, as a monolithic blob
                size = f.seek(0, os.SEEK_END)
                digest = self._hasher.hexdigest() if self._hasher is not None else ""
                if "sha256:" + digest != expected_digest:
                    raise errdefs.InvalidParameter(
                        f"content digest mismatch: expected {expected_digest}, got sha256:{digest}")
                self._blobs._put_file(f, size, expected_digest)
                return Descriptor(expected_digest, size)
            if self._hasher is not None and "sha256:" + self._hasher.hexdigest() != expected_digest:
                raise errdefs.InvalidParameter(
                    f"content digest mismatch: expected {expected_digest}, got sha256:{self._hasher.hexdigest()}")
            if f.seek(0, os.SEEK_END):
                self._send_part(f, parts)
        size = sum(parts.sizes)
        self._blobs.complete_multipart(self._key, parts.upload_id, parts.etags)
        try:
            self._save(_Parts())  # completed: nothing left to abort, only the object to delete
            if self._hasher is None:  # the hub restarted mid-session: read the object back
                digest = self._blobs._hash_object(self._key)
                if digest != expected_digest:
                    raise errdefs.InvalidParameter(
                        f"content digest mismatch: expected {expected_digest}, got {digest}")
            if not self._blobs.has(expected_digest):
                self._blobs._copy(self._key, self._blobs._key(expected_digest), size)
        finally:
            self._blobs._delete_key(self._key)
        return Descriptor(expected_digest, size)

    def discard(self) -> None:
        try:
            parts = self._parts()
        except FileNotFoundError:
            return
        if parts.upload_id:
            self._blobs.abort_multipart(self._key, parts.upload_id)
        self._blobs._delete_key(self._key)
