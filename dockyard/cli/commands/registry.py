"""Registry commands: login, logout, push, search (pull lives beside run, which also pulls)."""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli import auth
from dockyard.cli.client import filters_arg, path_quote
from dockyard.cli.commands.container import split_reference
from dockyard.cli.context import Context, StatusError
from dockyard.cli.formatting import Formatter, ellipsis
from dockyard.cli.parser import DockyardParser

_PLAINTEXT_WARNING = ("\nWARNING! Your credentials are stored unencrypted in '{}'.\n"
                      "Configure a credential helper to remove this warning. See\n"
                      "https://docs.docker.com/go/credential-store/\n\n")


def setup_login(p: DockyardParser) -> None:
    p.add_argument("-p", "--password", default="", help="Password or Personal Access Token (PAT)")
    p.add_argument("--password-stdin", action="store_true", help="Take the Password or Personal Access Token (PAT) from stdin")
    p.add_argument("-u", "--username", default="", help="Username")
    p.positional("[SERVER]", 0, 1)


def _server_arg(args: list[str]) -> str:
    if not args:
        return auth.INDEX_SERVER
    server = args[0].removeprefix("https://").removeprefix("http://").rstrip("/")
    return auth.INDEX_SERVER if server in ("docker.io", "index.docker.io", "registry-1.docker.io") else server


def cmd_login(ctx: Context, opts: Any) -> int:
    server = _server_arg(opts.args)
    username, password = opts.username, opts.password
    if opts.password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if opts.password_stdin:
        if opts.password:
            raise StatusError(1, "--password and --password-stdin are mutually exclusive")
        if not username:
            raise StatusError(1, "Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if not username or not password:
        if not sys.stdin.isatty():
            raise StatusError(1, "Error: Cannot perform an interactive login from a non TTY device")
        import getpass

        if not username:
            username = input("Username: ").strip()
        if not password:
            password = getpass.getpass("Password: ")
    if not username:
        raise StatusError(1, "Error: Non-null Username Required")
    if not password:
        raise StatusError(1, "Error: Password Required")
    resp = ctx.client.post("/auth", body={"username": username, "password": password, "serveraddress": server})
    if auth.store(server, username, password, (resp or {}).get("IdentityToken") or ""):
        sys.stderr.write(_PLAINTEXT_WARNING.format(auth.config_path()))
    print((resp or {}).get("Status") or "Login Succeeded")
    return 0


def setup_logout(p: DockyardParser) -> None:
    p.positional("[SERVER]", 0, 1)


def cmd_logout(ctx: Context, opts: Any) -> int:
    server = _server_arg(opts.args)
    print(f"Removing login credentials for {server}")
    auth.forget(server)
    return 0


def setup_push(p: DockyardParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("--platform", default="", help="Push a platform-specific manifest as a single-platform image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.positional("NAME[:TAG]", 1, 1)


def cmd_push(ctx: Context, opts: Any) -> int:
    from dockyard.cli.jsonstream import StreamError, display

    ref = opts.args[0]
    name, tag = split_reference(ref)
    explicit_tag = ":" in ref.rsplit("/", 1)[-1]
    if opts.all_tags and explicit_tag:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not opts.all_tags and not explicit_tag:
        print("Using default tag: latest", flush=True)
    query = {"tag": None if opts.all_tags else tag, "platform": opts.platform or None}
    resp = ctx.client.request("POST", f"/images/{path_quote(name)}/push", query,
                              headers=auth.header(auth.registry_of(name)))
    try:
        if opts.quiet:
            from dockyard.cli.commands.container import display_quiet

            for _ in display_quiet(iter(resp.readline, b"")):
                pass
            print(ref)
        else:
            display(iter(resp.readline, b""), sys.stdout, sys.stdout.isatty())
    except StreamError as e:
        raise StatusError(1, str(e)) from None
    return 0


class SearchRow:
    def __init__(self, r: dict[str, Any], trunc: bool) -> None:
        self._r, self._trunc, self._json = r, trunc, False

    def Name(self) -> str:
        return self._r.get("name", "")

    def Description(self) -> str:
        desc = (self._r.get("description") or "").replace("\n", " ").replace("\r", " ")
        return ellipsis(desc, 45) if self._trunc else desc

    def StarCount(self) -> str:
        return str(self._r.get("star_count", 0))

    def IsOfficial(self) -> str:
        # "[OK]" in tables, "true"/"false" in JSON, as docker's searchContext
        if self._json:
            return "true" if self._r.get("is_official") else "false"
        return "[OK]" if self._r.get("is_official") else ""

    def __json__(self) -> dict[str, str]:
        self._json = True
        return {f: getattr(self, f)() for f in ("Description", "IsOfficial", "Name", "StarCount")}


def setup_search(p: DockyardParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", default="", help="Pretty-print search using a Go template")
    p.add_argument("--limit", type=int, default=0, help="Max number of search results")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.positional("TERM", 1, 1)


def cmd_search(ctx: Context, opts: Any) -> int:
    term = opts.args[0]
    import json

    resp = ctx.client.request("GET", "/images/search",
                              {"term": term, "limit": opts.limit or None, "filters": filters_arg(opts.filter)},
                              headers=auth.header(auth.registry_of(term)))
    results = json.loads(resp.read())
    headers = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"}
    Formatter(opts.format or "table", "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
              headers).render([SearchRow(r, not opts.no_trunc) for r in results])
    return 0
