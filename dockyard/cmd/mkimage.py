"""``dockyard-mkimage``: base images made offline from the host's own packages.

``dockyard-mkimage busybox`` builds ``busybox:latest`` from Debian's busybox-static
(``/bin/busybox``): the binary, its applets as symlinks (``busybox --list-full``),
``/etc/passwd`` and ``/etc/group`` (root, nobody), ``/tmp`` (1777), ``/root``, ``/home``,
``/var``; config ``CMD ["sh"]`` and the usual PATH. The output is a docker-archive that
``docker load`` reads, into dockyardd or real Docker. Every timestamp is the busybox
binary's mtime, so the same package always gives the same image ID.

    dockyard-mkimage busybox -o busybox.tar
    dockyard-mkimage busybox > busybox.tar
    dockyard-mkimage busybox --load [-H unix:///run/dockyard/dockyard.sock]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from dockyard import errdefs
from dockyard.daemon.images import references
from dockyard.daemon.images.archive_write import ArchiveEntry, LayerBlob, write_archive
from dockyard.oci.platform import host_arch
from dockyard.oci import image_spec as spec

BUSYBOX = Path("/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
        "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
        "var": 0o755, "var/spool": 0o755, "var/www": 0o755}


class MkimageError(Exception):
    pass


def _busybox_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "busybox-static"], capture_output=True,
                             text=True, check=False)
        return out.stdout.strip()
    except OSError:
        return ""


def busybox_layer(busybox: Path = BUSYBOX) -> tuple[bytes, int]:
    """The rootfs as an uncompressed tar (bytes) and the mtime used for every entry."""
    if not busybox.is_file():
        raise MkimageError(f"{busybox} not found: install Debian's busybox-static "
                           "(apt-get install -y busybox-static)")
    mtime = int(busybox.stat().st_mtime)
    listed = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    applets = sorted({line.strip() for line in listed.splitlines()
                      if line.strip() and "/" in line and line.strip() != "bin/busybox"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, type: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = type, mode, mtime, link
            info.uname = info.gname = "root"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for name, mode in sorted(DIRS.items()):
            add(name + "/", tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD)
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP)
        for applet in applets:
            if applet.count("/") and applet.rsplit("/", 1)[0] in DIRS:
                add(applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    return buf.getvalue(), mtime


def busybox_image(tag: references.Reference) -> ArchiveEntry:
    layer, mtime = busybox_layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    created = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    version = _busybox_version()
    config = spec.ImageConfig(
        architecture=host_arch(), os="linux", created=created,
        config=spec.ContainerConfig(env=[DEFAULT_PATH], cmd=["sh"]),
        rootfs=spec.RootFS(diff_ids=[diff_id]),
        history=[spec.History(created=created, created_by="dockyard-mkimage busybox",
                              comment=f"busybox-static {version}".strip())])
    return ArchiveEntry(config=spec.encode(config), layers=[LayerBlob(diff_id, len(layer), lambda: [layer])],
                        tags=[tag])


def _unix_connection(host: str) -> http.client.HTTPConnection:
    if not host.startswith("unix://"):
        raise MkimageError(f"--load needs a unix socket host (unix:///path), got {host}")
    path = host[len("unix://"):]

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)

    return Connection("localhost", timeout=300)


def load_into_daemon(archive: Path, host: str) -> str:
    conn = _unix_connection(host)
    with open(archive, "rb") as body:
        conn.request("POST", "/images/load?quiet=1", body=body,
                     headers={"Content-Type": "application/x-tar",
                              "Content-Length": str(archive.stat().st_size)})
        resp = conn.getresponse()
        data = resp.read()
    if resp.status != 200:
        try:
            message = json.loads(data)["message"]
        except (ValueError, KeyError):
            message = data.decode(errors="replace")
        raise MkimageError(f"Error response from daemon: {message}")
    lines = [json.loads(line) for line in data.splitlines() if line.strip()]
    return "".join(line.get("stream", "") for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard-mkimage", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["busybox"], help="what to build")
    parser.add_argument("-t", "--tag", default="", help="name:tag (default: busybox:latest)")
    parser.add_argument("-o", "--output", help="write the archive to this file ('-' for stdout)")
    parser.add_argument("--load", action="store_true", help="load it into a running daemon")
    parser.add_argument("-H", "--host", default=os.environ.get("DOCKER_HOST", DEFAULT_HOST),
                        help=f"daemon socket for --load (default {DEFAULT_HOST})")
    args = parser.parse_args(argv)
    try:
        tag = references.parse_tagged(args.tag or args.kind)
        entry = busybox_image(tag)
        if args.load and not args.output:
            with tempfile.NamedTemporaryFile(prefix="dockyard-mkimage-", suffix=".tar") as tmp:
                for chunk in write_archive([entry]):
                    tmp.write(chunk)
                tmp.flush()
                sys.stdout.write(load_into_daemon(Path(tmp.name), args.host))
            return 0
        if args.output in (None, "-"):
            if args.output is None and sys.stdout.isatty():
                raise MkimageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
            for chunk in write_archive([entry]):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        else:
            out = Path(args.output)
            tmp_path = out.with_name(f".{out.name}.tmp")
            with open(tmp_path, "wb") as f:
                for chunk in write_archive([entry]):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, out)
            if args.load:
                sys.stdout.write(load_into_daemon(out, args.host))
        print(f"{tag.familiar()} {entry.id}", file=sys.stderr)
        return 0
    except (MkimageError, errdefs.DockyardError, subprocess.CalledProcessError, OSError) as e:
        print(f"dockyard-mkimage: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
