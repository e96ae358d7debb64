"""Blobs on an S3-compatible object store, for when one machine's disk is outgrown.

Objects are ``<prefix>blobs/sha256/<hex>``. A blob is hashed and sized locally first, then
sent in one PUT whose ``x-amz-content-sha256`` is the blob's own digest, so the store checks
the bytes again on arrival; an object appears whole or not at all. Blob downloads are answered
with a redirect to a presigned GET URL (distribution's S3 driver does the same), so blob bytes
never pass through the hub. Requests are signed with AWS Signature Version 4 (stdlib hmac).
Upload sessions, repository links, tags and metadata stay on the hub's data directory.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, Iterable

from dockyard import errdefs
from dockyard.registry.names import valid_digest
from dockyard.storage.content import Descriptor

_CHUNK = 1 << 20
_SAFE = "-_.~"


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


def _check_digest(digest: str) -> str:
    if not valid_digest(digest):
        raise errdefs.InvalidParameter(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest[len("sha256:"):]


class S3Blobs:
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
        if status >= 300:
            raise errdefs.System(f"object store: {what} failed ({status}): {data[:300].decode(errors='replace')}")

    def _key(self, digest: str) -> str:
        return f"{self.settings.prefix}blobs/sha256/{_check_digest(digest)}"

    def ensure_bucket(self) -> None:
        status, _, data = self._request("HEAD")
        if status == 404:
            status, _, data = self._request("PUT")
            self._check(status, data, f"create bucket {self.settings.bucket}")
        elif status >= 300:
            self._check(status, data, f"bucket {self.settings.bucket}")

    # ---- Blobs -----------------------------------------------------------------------

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
            if not self.has(digest):
                staged.seek(0)
                status, _, reply = self._request("PUT", self._key(digest), body=staged,
                                                 payload_hash=digest[len("sha256:"):],
                                                 extra={"content-length": str(size),
                                                        "content-type": "application/octet-stream"})
                self._check(status, reply, f"PUT {digest}")
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

    def delete(self, digest: str) -> None:
        status, _, data = self._request("DELETE", self._key(digest))
        if status != 404:
            self._check(status, data, f"DELETE {digest}")

    def list(self) -> list[Descriptor]:
        out = []
        token = ""
        prefix = f"{self.settings.prefix}blobs/sha256/"
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, _, data = self._request("GET", query=query)
            self._check(status, data, "list blobs")
            root = ET.fromstring(data)
            for item in root.iter(f"{ns}Contents"):
                hex_digest = item.findtext(f"{ns}Key", "")[len(prefix):]
                if len(hex_digest) == 64:
                    out.append(Descriptor("sha256:" + hex_digest, int(item.findtext(f"{ns}Size", "0"))))
            token = root.findtext(f"{ns}NextContinuationToken", "")
            if root.findtext(f"{ns}IsTruncated", "false") != "true" or not token:
                return sorted(out, key=lambda d: d.digest)

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
