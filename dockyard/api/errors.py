"""The one table from error classes to HTTP status codes (moby's httpstatus)."""

from __future__ import annotations

from dockyard import errdefs

_STATUS: list[tuple[type[errdefs.DockyardError], int]] = [
    (errdefs.InvalidParameter, 400),
    (errdefs.Unauthorized, 401),
    (errdefs.Forbidden, 403),
    (errdefs.NotFound, 404),
    (errdefs.Conflict, 409),
    (errdefs.NotModified, 304),
    (errdefs.NotImplementedFeature, 501),
    (errdefs.Unavailable, 503),
    (errdefs.System, 500),
]


def status_for(err: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(err, cls):
            return status
    return 500
