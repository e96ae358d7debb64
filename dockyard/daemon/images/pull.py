"""``POST /images/create?fromImage=``: there is no registry client yet.

Answered the way Docker answers when the registry cannot be reached (a 503-class
error naming the registry), so clients show a clear reason instead of a bare 404/500.
"""

from __future__ import annotations

from dockyard import errdefs
from dockyard.daemon.images import references


def pull(image: str, tag_name: str) -> None:
    ref = references.parse(image) if "@" in image else references.parse_repo_tag(image, tag_name)
    host = "registry-1.docker.io" if ref.domain == references.DEFAULT_DOMAIN else ref.domain
    raise errdefs.Unavailable(
        f'Get "https://{host}/v2/": cannot pull {ref.familiar()}: this daemon has no registry client yet; '
        "make the image locally (dockyard-mkimage) or load it with \"docker load\"")
