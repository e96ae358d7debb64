"""The distribution spec's error codes: each error is one code, an HTTP status and a message.

The store raises these and the server writes them as ``{"errors": [{code, message, detail}]}``,
so a client sees the same code whatever layer found the problem."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    code = "UNKNOWN"
    status = 500

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}


def _error(code: str, status: int) -> type[RegistryError]:
    return type(code.title().replace("_", ""), (RegistryError,), {"code": code, "status": status})


BlobUnknown = _error("BLOB_UNKNOWN", 404)
BlobUploadInvalid = _error("BLOB_UPLOAD_INVALID", 400)
BlobUploadUnknown = _error("BLOB_UPLOAD_UNKNOWN", 404)
DigestInvalid = _error("DIGEST_INVALID", 400)
ManifestBlobUnknown = _error("MANIFEST_BLOB_UNKNOWN", 400)
ManifestInvalid = _error("MANIFEST_INVALID", 400)
ManifestUnknown = _error("MANIFEST_UNKNOWN", 404)
NameInvalid = _error("NAME_INVALID", 400)
NameUnknown = _error("NAME_UNKNOWN", 404)
SizeInvalid = _error("SIZE_INVALID", 400)
TagInvalid = _error("TAG_INVALID", 400)
Unauthorized = _error("UNAUTHORIZED", 401)
Denied = _error("DENIED", 403)
Unsupported = _error("UNSUPPORTED", 405)
RangeInvalid = _error("RANGE_INVALID", 416)
ManifestTooBig = _error("SIZE_INVALID", 413)
PaginationInvalid = _error("PAGINATION_NUMBER_INVALID", 400)
Unavailable = _error("UNAVAILABLE", 503)  # the blob backend (an object store) failed
