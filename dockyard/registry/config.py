"""The hub's settings: flags of ``dockyard registry serve`` over a JSON config file.

Config file keys (all optional): ``addr``, ``data``, ``tls_cert``, ``tls_key``, ``htpasswd``,
``service``, ``proxy_remote_url``, ``proxy_username``, ``proxy_password``, ``proxy_ttl``
(pull-through cache mode; the TTL of cached content as distribution's ``proxy.ttl``: a Go
duration, default "168h", "0" never expires), ``s3`` (blobs in an S3-compatible bucket:
endpoint, bucket, access_key, secret_key, region, prefix, presign_expires, part_size: bytes,
at least 5 MiB, default 16 MiB; secrets belong in the file, not on a command line),
``organisations`` ({org: [users]}), ``private`` ([namespaces]), ``admins`` ([users]),
``max_manifest`` (bytes). A flag given on the command line wins over the file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass
class HubConfig:
    addr: str = "0.0.0.0:5000"
    data: str = "/var/lib/dockyard-registry"
    tls_cert: str = ""
    tls_key: str = ""
    htpasswd: str = ""
    service: str = "dockyard-hub"
    organisations: dict[str, list[str]] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    max_manifest: int = 4 << 20
    proxy_remote_url: str = ""
    proxy_username: str = ""
    proxy_password: str = ""
    proxy_ttl: str = "168h"
    s3: dict[str, str | bool | int] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.addr.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--addr", help="listen address HOST:PORT (default 0.0.0.0:5000)")
    parser.add_argument("--data", help="data directory (default /var/lib/dockyard-registry)")
    parser.add_argument("--config", help="JSON config file")
    parser.add_argument("--tls-cert", dest="tls_cert", help="TLS certificate (PEM)")
    parser.add_argument("--tls-key", dest="tls_key", help="TLS private key (PEM)")
    parser.add_argument("--htpasswd", help="accounts file (bcrypt, htpasswd -B); none means open")
    parser.add_argument("--service", help="token service name (default dockyard-hub)")
    parser.add_argument("--proxy-remote-url", dest="proxy_remote_url",
                        help="run as a pull-through cache (registry mirror) of this upstream registry")
    parser.add_argument("--proxy-ttl", dest="proxy_ttl",
                        help='how long cached content is kept after it was fetched: a duration ("168h", '
                             'the default; "0": for ever)')


def load(opts: argparse.Namespace) -> HubConfig:
    values: dict = {}
    if getattr(opts, "config", None):
        raw = json.loads(Path(opts.config).read_text())
        known = {f.name for f in fields(HubConfig)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{opts.config}: unknown keys {sorted(unknown)}")
        values.update(raw)
    for f in fields(HubConfig):
        value = getattr(opts, f.name, None)
        if value:
            values[f.name] = value
    config = HubConfig(**values)
    if config.s3:
        from dockyard.registry.s3 import S3Settings

        allowed = {f.name for f in fields(S3Settings)}
        missing = {"endpoint", "bucket", "access_key", "secret_key"} - set(config.s3)
        if set(config.s3) - allowed or missing:
            raise ValueError(f"s3: unknown keys {sorted(set(config.s3) - allowed)}, missing {sorted(missing)}")
        S3Settings(**config.s3)  # its own checks (part_size)
    config.host_port  # a malformed address fails here, before anything listens
    from dockyard.registry.proxy import parse_duration

    parse_duration(str(config.proxy_ttl))  # a malformed TTL too
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    return config
