"""``dockyard-registry`` (also ``dockyard registry ...``): the hub's own program.

    dockyard registry serve --addr 127.0.0.1:5000 --data DIR [--config FILE]
                            [--tls-cert PEM --tls-key PEM] [--htpasswd FILE]
    dockyard registry garbage-collect [--data DIR] [--config FILE] [--dry-run] [--grace SECONDS]

``serve`` runs until SIGTERM/SIGINT, then stops accepting, lets requests in flight finish
(up to 30 s) and exits: an upload that committed is on disk before its 201 is sent.
Access logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import time
from pathlib import Path

PROG = "dockyard registry"


def _access_logger():
    from aiohttp.abc import AbstractAccessLogger

    class JSONAccessLogger(AbstractAccessLogger):
        def log(self, request, response, elapsed: float) -> None:
            self.logger.info(json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "remote": request.remote,
                "method": request.method, "path": request.path_qs, "status": response.status,
                "bytes": response.body_length, "duration_ms": round(elapsed * 1000, 2),
                "user_agent": request.headers.get("User-Agent", ""), "user": request.get("user", "")}))

    return JSONAccessLogger


async def _serve(config) -> None:
    from aiohttp import web

    from dockyard.registry.server import make_app

    app = make_app(config)
    ssl_context = None
    if config.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
    runner = web.AppRunner(app, access_log_class=_access_logger(),
                           access_log=logging.getLogger("dockyard.registry.access"), shutdown_timeout=30)
    await runner.setup()
    host, port = config.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    logging.getLogger("dockyard.registry").info(json.dumps(
        {"msg": "listening", "addr": config.addr, "tls": bool(ssl_context), "data": config.data,
         "auth": "token" if config.htpasswd else "open"}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def cmd_serve(opts: argparse.Namespace) -> int:
    from dockyard.registry import config as hub_config

    try:
        config = hub_config.load(opts)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"{PROG} serve: {e}\n")
        return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        asyncio.run(_serve(config))
    except OSError as e:
        sys.stderr.write(f"{PROG} serve: {e}\n")
        return 1
    return 0


def cmd_gc(opts: argparse.Namespace) -> int:
    from dockyard.registry import config as hub_config
    from dockyard.registry import gc
    from dockyard.registry.blobs import make_blobs
    from dockyard.registry.store import Store

    try:
        config = hub_config.load(opts)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"{PROG} garbage-collect: {e}\n")
        return 1
    store = Store(Path(config.data), make_blobs(Path(config.data), config.s3))
    report = gc.collect(store, grace=opts.grace, upload_age=opts.upload_age, dry_run=opts.dry_run)
    verb = "would remove" if opts.dry_run else "removed"
    for digest in report.blobs_removed:
        print(f"{verb} blob {digest}")
    print(f"{len(report.blobs_removed)} blobs ({report.bytes_freed} bytes), {report.links_removed} links, "
          f"{report.uploads_removed} uploads {verb}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    from dockyard.registry.config import add_flags

    parser = argparse.ArgumentParser(prog=PROG, description="Dockyard's registry server (the hub)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Serve the distribution API, token auth, search and web pages")
    add_flags(serve)
    serve.set_defaults(func=cmd_serve)
    collect = sub.add_parser("garbage-collect", help="Remove unreferenced blobs and abandoned uploads")
    collect.add_argument("--data", help="data directory (default /var/lib/dockyard-registry)")
    collect.add_argument("--config", help="the hub's JSON config file (for its data directory and storage)")
    collect.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    collect.add_argument("--grace", type=float, default=3600,
                         help="never remove blobs younger than this many seconds (online-safe; default 3600)")
    collect.add_argument("--upload-age", type=float, default=24 * 3600,
                         help="remove uploads idle longer than this many seconds (default 86400)")
    collect.set_defaults(func=cmd_gc)
    return parser


def main(argv: list[str] | None = None) -> None:
    opts = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    sys.exit(opts.func(opts))


if __name__ == "__main__":
    main()
