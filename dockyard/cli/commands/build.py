"""dockyard build: the classic builder's client side, as the docker CLI does it without buildx.

The context (a directory, ``-`` for a tar or a Dockerfile on stdin, or a URL the daemon
fetches) is sent as a tar to ``POST /build``. A Dockerfile outside the context (``-f``) or
on stdin (``-f -``) is added under a random ``.dockerfile.<hex>`` name and listed in
``.dockerignore``, exactly as docker does, so ``COPY .`` never picks it up. What
``.dockerignore`` excludes is not sent (the daemon applies it again, for clients that do
not filter). The stream is printed
as it comes; ``-q`` prints only the image ID; ``--iidfile`` gets the ID from the aux message.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
import tarfile
import tempfile
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

from dockyard import errdefs
from dockyard.apitypes import dockerignore
from dockyard.cli.context import Context, StatusError
from dockyard.cli.parser import DockyardParser
from dockyard.cli.runopts import OptionError, _ulimits, bytes_flag


def setup_build(p: DockyardParser) -> None:
    a = p.add_argument
    a("-t", "--tag", action="append", default=[], help="Name and optionally a tag in the \"name:tag\" format")
    a("-f", "--file", default="", help="Name of the Dockerfile (Default is \"PATH/Dockerfile\")")
    a("--build-arg", action="append", default=[], help="Set build-time variables")
    a("--label", action="append", default=[], help="Set metadata for an image")
    a("--target", default="", help="Set the target build stage to build.")
    a("--no-cache", action="store_true", help="Do not use cache when building the image")
    a("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    a("--rm", default="true", help="Remove intermediate containers after a successful build")
    a("--force-rm", action="store_true", help="Always remove intermediate containers")
    a("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    a("--cache-from", action="append", default=[], help="Images to consider as cache sources")
    a("--network", default="default", help="Set the networking mode for the RUN instructions during build")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (\"host:ip\")")
    a("--shm-size", type=bytes_flag("--shm-size"), default=0, help="Size of \"/dev/shm\"")
    a("--ulimit", action="append", default=[], help="Ulimit options")
    a("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    a("--cpu-period", type=int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) quota")
    a("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", type=bytes_flag("--memory"), default=0, help="Memory limit")
    a("--memory-swap", type=bytes_flag("--memory-swap", allow_unlimited=True), default=0,
      help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    a("--iidfile", default="", help="Write the image ID to the file")
    a("--squash", action="store_true", help="Squash newly built layers into a single new layer")
    a("--platform", default="", help="Set platform if server is multi-platform capable")
    a("--progress", default="auto", help="Set type of progress output (auto, plain, tty)")
    p.positional("PATH | URL | -", 1, 1)


def _build_args(values: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values:
        key, sep, val = value.partition("=")
        out[key] = val if sep else os.environ.get(key)  # docker: KEY alone takes the environment's value
    return out


def _labels(values: list[str]) -> dict[str, str]:
    return dict((v.partition("=")[0], v.partition("=")[2]) for v in values)


def _is_url(arg: str) -> bool:
    return arg.startswith(("http://", "https://", "git://", "github.com/"))


def _read_ignore(directory: str, dockerfile_rel: str) -> bytes:
    for name in (dockerfile_rel + ".dockerignore" if dockerfile_rel else "", ".dockerignore"):
        if name and os.path.isfile(os.path.join(directory, name)):
            with open(os.path.join(directory, name), "rb") as f:
                return f.read()
    return b""


def _add_tree(tar: tarfile.TarFile, directory: str, rel: str, patterns: list[dockerignore.Pattern],
              keep: set[str]) -> None:
    """Add what .dockerignore lets through (the Dockerfile and .dockerignore always go: the
    daemon reads them, then drops them if they are ignored)."""
    reincludes = any(p.exclusion for p in patterns)
    for name in sorted(os.listdir(os.path.join(directory, rel))):
        path_rel = f"{rel}/{name}" if rel else name
        full = os.path.join(directory, path_rel)
        excluded = path_rel not in keep and dockerignore.excluded(path_rel, patterns)
        is_dir = os.path.isdir(full) and not os.path.islink(full)
        if not excluded:
            tar.add(full, arcname=path_rel, recursive=False)
        if is_dir and (not excluded or reincludes):
            _add_tree(tar, directory, path_rel, patterns, keep)


def _context_tar(directory: str, dockerfile: bytes | None, dockerfile_name: str, dockerfile_rel: str) -> BinaryIO:
    """The directory as a tar (spooled), with an outside Dockerfile added as docker adds it."""
    spool = tempfile.TemporaryFile()
    ignore = _read_ignore(directory, dockerfile_rel)
    try:
        patterns = dockerignore.parse(ignore.decode("utf-8", "replace"))
    except errdefs.InvalidParameter as e:
        raise StatusError(1, str(e)) from None
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        keep = {dockerfile_rel or "Dockerfile", ".dockerignore"}
        if dockerfile is not None:
            keep.discard(".dockerignore")  # rewritten below
            patterns.append(dockerignore.parse(".dockerignore")[0])
        _add_tree(tar, directory, "", patterns, keep)
        if dockerfile is not None:
            if not ignore:
                ignore = b".dockerignore\n"
            ignore = ignore.rstrip(b"\n") + b"\n" + dockerfile_name.encode() + b"\n"
            for name, data in ((".dockerignore", ignore), (dockerfile_name, dockerfile)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    spool.seek(0)
    return spool


def _stdin_context() -> tuple[BinaryIO, str]:
    """``-``: a tar (possibly compressed) is the context; anything else is the Dockerfile alone."""
    data = sys.stdin.buffer.read()
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00" or data[257:262] == b"ustar":
        return io.BytesIO(data), ""
    spool = tempfile.TemporaryFile()
    with tarfile.open(fileobj=spool, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    spool.seek(0)
    return spool, "Dockerfile"


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while data := f.read(1 << 20):
        yield data


def cmd_build(ctx: Context, opts: Any) -> int:
    if opts.progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise StatusError(1, f"invalid progress mode: {opts.progress}")
    target = opts.args[0]
    query: dict[str, Any] = {"t": opts.tag, "dockerfile": opts.file or None, "target": opts.target or None,
                             "q": opts.quiet or opts.progress == "quiet", "nocache": opts.no_cache,
                             "rm": opts.rm.lower() not in ("false", "0"), "forcerm": opts.force_rm,
                             "pull": opts.pull, "squash": opts.squash, "platform": opts.platform or None,
                             "networkmode": opts.network, "extrahosts": opts.add_host,
                             "shmsize": opts.shm_size or None, "cpushares": opts.cpu_shares or None,
                             "cpuperiod": opts.cpu_period or None, "cpuquota": opts.cpu_quota or None,
                             "cpusetcpus": opts.cpuset_cpus or None, "cpusetmems": opts.cpuset_mems or None,
                             "memory": opts.memory or None, "memswap": opts.memory_swap or None, "version": "1"}
    try:
        if opts.ulimit:
            query["ulimits"] = json.dumps(_ulimits(opts.ulimit))
    except OptionError as e:
        raise StatusError(125, str(e)) from None
    if opts.build_arg:
        query["buildargs"] = json.dumps(_build_args(opts.build_arg))
    if opts.label:
        query["labels"] = json.dumps(_labels(opts.label))
    if opts.cache_from:
        query["cachefrom"] = json.dumps(opts.cache_from)
    if target == "-":
        if opts.file == "-":
            raise StatusError(1, "invalid argument: can't use stdin for both build context and dockerfile")
        body, name = _stdin_context()
        if name:
            query["dockerfile"] = name
    elif _is_url(target):
        query["remote"] = target
        body = io.BytesIO(b"")
    else:
        if not os.path.isdir(target):
            raise StatusError(1, f'unable to prepare context: path "{target}" not found')
        dockerfile: bytes | None = None
        name = ""
        if opts.file == "-":
            dockerfile = sys.stdin.buffer.read()
        elif opts.file:
            path = os.path.abspath(opts.file)
            if not path.startswith(os.path.abspath(target).rstrip("/") + "/"):
                try:
                    with open(path, "rb") as f:
                        dockerfile = f.read()
                except OSError as e:
                    raise StatusError(1, f"unable to prepare context: {e.strerror.lower()}: {opts.file}") from None
            else:
                query["dockerfile"] = os.path.relpath(path, target)
        if dockerfile is not None:
            name = f".dockerfile.{secrets.token_hex(10)}"
            query["dockerfile"] = name
        body = _context_tar(target, dockerfile, name, "" if dockerfile is not None else query.get("dockerfile") or "")
    if not opts.quiet and opts.progress != "quiet":
        size = body.seek(0, os.SEEK_END)
        body.seek(0)
        from dockyard.cli.formatting import human_size
        print(f"Sending build context to Docker daemon  {human_size(size, 4)}")
    with body:
        resp = ctx.client.request_stream("POST", "/build", query, _chunks(body),
                                         {"Content-Type": "application/x-tar"})
        return _show(resp, opts)


def _show(resp: Any, opts: Any) -> int:
    image_id = ""
    quiet = opts.quiet or opts.progress == "quiet"
    held: list[str] = []  # -q: shown on stderr only when the build fails, as docker does
    for raw in iter(resp.readline, b""):
        raw = raw.strip()
        if not raw:
            continue
        msg = json.loads(raw)
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            code = detail.get("code") or 1
            if held:
                sys.stderr.write("".join(held))
            raise StatusError(code, detail.get("message") or msg.get("error") or "unknown error")
        if isinstance(msg.get("aux"), dict) and msg["aux"].get("ID"):
            image_id = msg["aux"]["ID"]
        elif "stream" in msg and quiet:
            held.append(msg["stream"])
        elif "stream" in msg:
            sys.stdout.write(msg["stream"])
            sys.stdout.flush()
    if quiet and image_id:
        print(image_id)
    if opts.iidfile and image_id:
        with open(opts.iidfile, "w") as f:
            f.write(image_id)
    return 0
