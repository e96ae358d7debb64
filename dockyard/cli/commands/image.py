"""Image commands: images/ls, inspect, history, rm/rmi, prune, import, load, save, tag, pull."""

from __future__ import annotations

import re
import sys
import time
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

from dockyard.cli.client import filters_arg, path_quote
from dockyard.cli.commands.container import confirm, for_each, fully_qualified, split_reference, write_stream_to
from dockyard.cli.formatting import Formatter, ellipsis, go_time_string, human_size, rfc3339, since, truncate_id
from dockyard.cli.context import Context, StatusError
from dockyard.cli.parser import DockyardParser


def _i(name: str) -> str:
    return f"/images/{path_quote(name)}"


# ---------------------------------------------------------------------------------------------
# images / image ls


class ImageRow:
    def __init__(self, img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool, now: float) -> None:
        self._img, self._repo, self._tag, self._digest, self._trunc, self._now = img, repo, tag, digest, trunc, now

    def ID(self) -> str:
        return truncate_id(self._img["Id"]) if self._trunc else self._img["Id"]

    def Repository(self) -> str:
        return self._repo

    def Tag(self) -> str:
        return self._tag

    def Digest(self) -> str:
        return self._digest

    def CreatedSince(self) -> str:
        return since(self._img.get("Created") or 0, self._now)

    def CreatedAt(self) -> str:
        return go_time_string(self._img.get("Created") or 0)

    def Size(self) -> str:
        return human_size(self._img.get("Size") or 0)

    # docker prints these three with go-units HumanSize (4 significant digits)
    def VirtualSize(self) -> str:
        return human_size(self._img.get("Size") or 0, 4)

    def SharedSize(self) -> str:
        shared = self._img.get("SharedSize", -1)
        return "N/A" if shared == -1 else human_size(shared or 0, 4)

    def UniqueSize(self) -> str:
        size, shared = self._img.get("Size", -1), self._img.get("SharedSize", -1)
        return "N/A" if size == -1 or shared == -1 else human_size((size or 0) - (shared or 0), 4)

    def Containers(self) -> str:
        n = self._img.get("Containers", -1)
        return "N/A" if n == -1 else str(n or 0)

    def __json__(self) -> dict[str, str]:
        fields = ["Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize",
                  "Size", "Tag", "UniqueSize", "VirtualSize"]
        return {f: getattr(self, f)() for f in fields}


IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                 "Containers": "CONTAINERS"}


def _familiar_name(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix) and "/" not in name[len(prefix):] or prefix == "docker.io/" and name.startswith(prefix):
            return name[len(prefix):]
    return name


# distribution/reference grammar, enough to skip references docker cannot parse either
_NAME = re.compile(r"(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?"
                   r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def _is_dangling(img: dict[str, Any]) -> bool:
    tags, digests = img.get("RepoTags") or [], img.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(images: list[dict[str, Any]], trunc: bool, digests: bool, format_digests: bool = False,
               ) -> list[ImageRow]:
    """docker's imageFormatTaggedAndDigest: a row per repository:tag (per digest too when digests
    are shown), rows for digest-only repositories, and <none> rows for dangling images."""
    now = time.time()
    rows: list[ImageRow] = []
    for img in images:
        if _is_dangling(img):
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            name, tag = split_reference(ref)
            if ref != "<none>:<none>" and _NAME.fullmatch(name) and _TAG.fullmatch(tag):
                repo_tags.setdefault(_familiar_name(name), []).append(tag)
        for ref in img.get("RepoDigests") or []:
            name, _, digest = ref.partition("@")
            if ref != "<none>@<none>" and _NAME.fullmatch(name):
                repo_digests.setdefault(_familiar_name(name), []).append(digest)
        for repo, tags in repo_tags.items():
            ds = repo_digests.pop(repo, [])  # never a row of their own once tagged
            if not (digests or format_digests):
                ds = []
            for tag in tags:
                rows += [ImageRow(img, repo, tag, d, trunc, now) for d in ds] or \
                    [ImageRow(img, repo, tag, "<none>", trunc, now)]
        for repo, ds in repo_digests.items():
            if digests:
                rows += [ImageRow(img, repo, "<none>", d, trunc, now) for d in ds]
            else:
                rows.append(ImageRow(img, repo, "<none>", "", trunc, now))
    return rows


def setup_ls(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.positional("[REPOSITORY[:TAG]]", 0, 1)


def cmd_ls(ctx: Context, opts: Any) -> int:
    filters = list(opts.filter)
    if opts.args:
        filters.append(f"reference={opts.args[0]}")
    images = ctx.client.get("/images/json", {"all": opts.all or None, "filters": filters_arg(filters)})
    rows = image_rows(images, not opts.no_trunc, opts.digests, "{{.Digest}}" in opts.format)
    if opts.quiet:
        sys.stdout.write("".join(r.ID() + "\n" for r in rows))
        return 0
    default = ("table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if opts.digests else "")
               + "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
    Formatter(opts.format or "table", default, IMAGE_HEADERS).render(rows)
    return 0


# ---------------------------------------------------------------------------------------------
# inspect / history


def setup_inspect(p: DockyardParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")
    p.add_argument("--platform", default="", help="Inspect a specific platform of the multi-platform image")
    p.positional("IMAGE [IMAGE...]", 1)


def cmd_inspect(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.inspect import inspect_objects

    def get(name: str) -> Any:
        return ctx.client.get(_i(name) + "/json")

    return inspect_objects(opts.args, get, opts.format)


class HistoryRow:
    def __init__(self, h: dict[str, Any], trunc: bool, human: bool, now: float) -> None:
        self._h, self._trunc, self._human, self._now = h, trunc, human, now

    def ID(self) -> str:
        id_ = self._h.get("Id") or ""
        if id_ in ("", "<missing>"):
            return "<missing>"
        return truncate_id(id_) if self._trunc else id_

    def CreatedSince(self) -> str:
        created = self._h.get("Created") or 0
        if not self._human:
            return self.CreatedAt()
        return since(created, self._now) if created else "N/A"

    def CreatedAt(self) -> str:
        return rfc3339(self._h.get("Created") or 0)

    def CreatedBy(self) -> str:
        text = (self._h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self._trunc else text

    def Size(self) -> str:
        size = self._h.get("Size") or 0
        return human_size(size) if self._human else str(size)

    def Comment(self) -> str:
        return self._h.get("Comment") or ""

    def __json__(self) -> dict[str, str]:
        return {f: getattr(self, f)() for f in ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")}


def setup_history(p: DockyardParser) -> None:
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("-H", "--human", action="store_true", default=True,
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.positional("IMAGE", 1, 1)


def cmd_history(ctx: Context, opts: Any) -> int:
    history = ctx.client.get(_i(opts.args[0]) + "/history")
    now = time.time()
    human = opts.human
    rows = [HistoryRow(h, not opts.no_trunc, human, now) for h in history]
    if opts.quiet:
        sys.stdout.write("".join(r.ID() + "\n" for r in rows))
        return 0
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
               "Size": "SIZE", "Comment": "COMMENT"}
    created = "{{.CreatedSince}}" if human else "{{.CreatedAt}}"
    default = "table {{.ID}}\t" + created + "\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    Formatter(opts.format or "table", default, headers).render(rows)
    return 0


# ---------------------------------------------------------------------------------------------
# rm / prune / tag


def setup_rm(p: DockyardParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("--platform", action="append", default=[], help="Remove only the given platform variant")
    p.positional("IMAGE [IMAGE...]", 1)


def _print_deletions(items: list[dict[str, str]]) -> None:
    for item in items or []:
        if item.get("Untagged"):
            print(f"Untagged: {item['Untagged']}")
        if item.get("Deleted"):
            print(f"Deleted: {item['Deleted']}")


def cmd_rm(ctx: Context, opts: Any) -> int:
    query = {"force": opts.force or None, "noprune": opts.no_prune or None}

    def remove(name: str) -> None:
        _print_deletions(ctx.client.delete(_i(name), query))

    return for_each(ctx, opts.args, remove, echo=False)


def setup_prune(p: DockyardParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "until=<timestamp>")')
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.positional("", 0, 0)


def prune_images(ctx: Context, all_: bool, filters: list[str]) -> tuple[str, int]:
    query_filters = filters_arg(filters) or {}
    query_filters["dangling"] = {"false" if all_ else "true": True}
    report = ctx.client.post("/images/prune", {"filters": query_filters})
    out = ""
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        out += "Deleted Images:\n"
        for item in deleted:
            if item.get("Untagged"):
                out += f"untagged: {item['Untagged']}\n"
            if item.get("Deleted"):
                out += f"deleted: {item['Deleted']}\n"
        out += "\n"
    return out, report.get("SpaceReclaimed") or 0


def cmd_prune(ctx: Context, opts: Any) -> int:
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not confirm(warning):
        return 0
    out, space = prune_images(ctx, opts.all, opts.filter)
    sys.stdout.write(out + f"Total reclaimed space: {human_size(space, 4)}\n")
    return 0


def setup_tag(p: DockyardParser) -> None:
    p.positional("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", 2, 2)


def cmd_tag(ctx: Context, opts: Any) -> int:
    source, target = opts.args
    repo, tag = split_reference(target)
    ctx.client.post(_i(source) + "/tag", {"repo": repo, "tag": tag})
    return 0


# ---------------------------------------------------------------------------------------------
# pull / load / import / save


def setup_pull(p: DockyardParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.positional("NAME[:TAG|@DIGEST]", 1, 1)


def cmd_pull(ctx: Context, opts: Any) -> int:
    from dockyard.cli.commands.container import pull

    ref = opts.args[0]
    last = ref.rsplit("/", 1)[-1]
    explicit = ":" in last or "@" in ref
    if opts.all_tags and explicit:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not explicit and not opts.all_tags:
        if not opts.quiet:
            print("Using default tag: latest", flush=True)
        ref += ":latest"
    pull(ctx, ref, opts.quiet, out=sys.stdout, platform=opts.platform, all_tags=opts.all_tags)
    name, tag = split_reference(ref)
    if opts.all_tags:
        print(fully_qualified(name))
    else:
        print(f"{fully_qualified(name)}{'@' if tag.startswith('sha256:') else ':'}{tag}")
    return 0


def _file_chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        data = f.read(1 << 20)
        if not data:
            return
        yield data


def _render_stream(resp, quiet: bool = False) -> None:  # noqa: ANN001 - HTTPResponse
    from dockyard.cli.jsonstream import StreamError, display

    try:
        display(iter(resp.readline, b""), sys.stdout, sys.stdout.isatty() and not quiet)
    except StreamError as e:
        raise StatusError(1, str(e)) from None


def setup_load(p: DockyardParser) -> None:
    p.add_argument("-i", "--input", default="", help="Read from tar archive file, instead of STDIN")
    p.add_argument("--platform", action="append", default=[], help="Load only the given platform(s)")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.positional("", 0, 0)


def cmd_load(ctx: Context, opts: Any) -> int:
    if not opts.input and sys.stdin.isatty():
        raise StatusError(1, "requested load from stdin, but stdin is empty")
    try:
        source = open(opts.input, "rb") if opts.input else sys.stdin.buffer
    except OSError as e:
        raise StatusError(1, f"open {opts.input}: {(e.strerror or str(e)).lower()}") from None
    with source:
        resp = ctx.client.request_stream("POST", "/images/load", {"quiet": opts.quiet or not sys.stdout.isatty()},
                                         _file_chunks(source), {"Content-Type": "application/x-tar"})
        _render_stream(resp, opts.quiet)
    return 0


def setup_import_(p: DockyardParser) -> None:
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.positional("file|URL|- [REPOSITORY[:TAG]]", 1, 2)


def cmd_import_(ctx: Context, opts: Any) -> int:
    source = opts.args[0]
    query: dict[str, Any] = {"message": opts.message or None, "platform": opts.platform or None}
    if len(opts.args) == 2:
        query["repo"] = opts.args[1]  # docker sends "name:tag" whole; the daemon splits it
    if opts.change:
        query["changes"] = opts.change
    headers = {"Content-Type": "application/x-tar"}
    if source.startswith(("http://", "https://")):
        query["fromSrc"] = source
        resp = ctx.client.request("POST", "/images/create", query)
    else:
        query["fromSrc"] = "-"
        try:
            f = sys.stdin.buffer if source == "-" else open(source, "rb")
        except OSError as e:
            raise StatusError(1, f"open {source}: {(e.strerror or str(e)).lower()}") from None
        with f:
            resp = ctx.client.request_stream("POST", "/images/create", query, _file_chunks(f), headers)
            _render_stream(resp)
        return 0
    _render_stream(resp)
    return 0


def setup_save(p: DockyardParser) -> None:
    p.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    p.add_argument("--platform", action="append", default=[], help="Save only the given platform(s)")
    p.positional("IMAGE [IMAGE...]", 1)


def cmd_save(ctx: Context, opts: Any) -> int:
    if not opts.output and sys.stdout.isatty():
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", "/images/get", {"names": list(opts.args)})
    write_stream_to(resp, opts.output)
    return 0

