"""``manifest inspect``: a reference's manifest (or manifest list) as its registry serves it.

As docker's, this command talks to the registry itself, not through the daemon, with the
credentials ``login`` stored; ``--insecure`` allows plain HTTP and unverified TLS.
"""

from __future__ import annotations

import json
TYPE_CHECKING = False  # typing costs start-up time; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli import auth
from dockyard.cli.context import Context, StatusError
from dockyard.cli.parser import DockyardParser

_ACCEPT = ["application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json",
           "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"]


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("--insecure", action="store_true", help="Allow communication with an insecure registry")
    p.add_argument("-v", "--verbose", action="store_true", help="Output additional info including layers and platform")
    p.positional("[MANIFEST_LIST] MANIFEST", 1, 2)


def _split(ref: str) -> tuple[str, str, str, str]:
    """(domain, repository path, tag or digest, familiar name) of a reference."""
    name, at, digest = ref.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, _, tag = name.rpartition(":")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name if slash else f"library/{name}"
    return domain, path, digest if at else (tag or "latest"), name


def cmd_inspect(ctx: Context, opts: Any) -> int:
    from dockyard.distribution.auth import Credentials
    from dockyard.distribution.client import RegistryClient
    from dockyard.distribution.endpoints import Endpoints, RegistrySettings
    from dockyard.errdefs import DockyardError

    ref = opts.args[-1]
    domain, path, reference, name = _split(ref)
    stored = auth.credentials(auth.registry_of(name))
    credentials = Credentials(username=stored.get("username", ""), password=stored.get("password", ""),
                              identity_token=stored.get("identitytoken", ""))
    client = RegistryClient(Endpoints(RegistrySettings(insecure_registries=[domain] if opts.insecure else [])))
    try:
        media_type, data, digest = client.repository(domain, path, credentials).get_manifest(reference, _ACCEPT)
    except DockyardError as e:
        if "MANIFEST_UNKNOWN" in getattr(e, "codes", ()) or "NAME_UNKNOWN" in getattr(e, "codes", ()):
            raise StatusError(1, f"no such manifest: {ref}") from None
        raise StatusError(1, str(e)) from None
    document = json.loads(data)
    if opts.verbose:
        kind = "OCIManifest" if "oci" in media_type else "SchemaV2Manifest"
        document = {"Ref": f"{domain}/{path}{'@' if reference.startswith('sha256:') else ':'}{reference}",
                    "Descriptor": {"mediaType": media_type, "digest": digest, "size": len(data)},
                    kind: document}
    print(json.dumps(document, indent="\t", ensure_ascii=False))
    return 0
