"""The hub's web pages: repository list and search, a page per repository (tags, digests,
sizes, layers, the image's config history, the ``docker pull`` line), and sign in.

Server-rendered HTML, escaped on output; a signed-in user carries a token this hub issued in
a cookie, which only widens what the pages show (their private repositories)."""

from __future__ import annotations

import asyncio
import html
import json

from aiohttp import web

from dockyard.oci import image_spec as spec
from dockyard.registry import errors, hub
from dockyard.registry.keys import ISSUER, POLICY, STORE
from dockyard.registry.store import check_name

_STYLE = """body{font-family:sans-serif;margin:0;background:#f6f8fa;color:#1b1f23}
header{background:#0b3d91;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none}main{padding:24px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d0d7de;padding:6px 10px;
text-align:left;font-size:14px}code,pre{background:#eef;padding:2px 6px}.pull{font-size:16px;padding:8px}"""


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _page(request: web.Request, title: str, body: str, status: int = 200) -> web.Response:
    user = request.get("page_user", "")
    who = (f'<span id="user">{html.escape(user)}</span> <a href="/logout">Sign out</a>' if user
           else '<a id="signin" href="/login">Sign in</a>')
    text = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - Dockyard Hub"
            f"</title><style>{_STYLE}</style></head><body><header><a href='/'><b>Dockyard Hub</b></a>"
            f"<form action='/' method='get'><input name='q' id='q' placeholder='Search repositories' "
            f"value='{html.escape(request.query.get('q', ''), quote=True)}'></form>"
            f"<span style='margin-left:auto'>{who}</span></header><main>{body}</main></body></html>")
    return web.Response(text=text, content_type="text/html", status=status)


def _page_user(request: web.Request) -> str:
    token = request.cookies.get("hub_token", "")
    claims = request.app[ISSUER].verify(token) if token else None
    return claims.get("sub", "") if claims else ""


async def index(request: web.Request) -> web.Response:
    request["page_user"] = user = _page_user(request)
    query = request.query.get("q", "")
    found = await asyncio.get_running_loop().run_in_executor(None, hub.search, request.app[STORE], request.app[POLICY],
                                                                   query, user)
    rows = "".join(
        f"<tr class='repo'><td><a href='/r/{html.escape(r['name'])}'>{html.escape(r['name'])}</a></td>"
        f"<td>{html.escape(r['description'])}</td><td>{r['star_count']}</td><td>{r['pull_count']}</td></tr>"
        for r in found)
    heading = f"Results for “{html.escape(query)}”" if query else "Repositories"
    body = (f"<h1>{heading}</h1><table id='repositories'><tr><th>Name</th><th>Description</th><th>Stars</th>"
            f"<th>Pulls</th></tr>{rows}</table>" + ("" if found else "<p id='empty'>No repositories.</p>"))
    return _page(request, heading, body)


def _repository_view(request: web.Request, name: str) -> str:
    store = request.app[STORE]
    meta = store.meta(name)
    host = request.host
    sections = [f"<h1 id='name'>{html.escape(name)}</h1>",
                f"<p id='description'>{html.escape(meta.description) or '<i>No description</i>'}</p>",
                f"<p>{len(meta.stars)} stars · {meta.pulls} pulls</p>"]
    tags = store.tags_of(name)
    first = next(iter(tags), "latest")
    sections.append(f"<p>Pull this image:</p><pre class='pull' id='pull'>docker pull "
                    f"{html.escape(host)}/{html.escape(name)}:{html.escape(first)}</pre>")
    rows = []
    details = []
    for tag, digest in tags.items():
        try:
            info = store.resolve(name, digest)
            doc = json.loads(store.manifest_bytes(digest))
        except (errors.RegistryError, OSError, ValueError):
            continue
        size = sum(layer.get("size", 0) for layer in doc.get("layers", []))
        rows.append(f"<tr class='tag'><td><a href='#tag-{html.escape(tag)}'>{html.escape(tag)}</a></td>"
                    f"<td><code>{html.escape(digest)}</code></td><td>{html.escape(info.media_type)}</td>"
                    f"<td>{_size(size) if info.media_type in spec.MANIFEST_TYPES else '-'}</td></tr>")
        details.append(_image_details(store, tag, doc, info.media_type))
    sections.append("<h2>Tags</h2><table id='tags'><tr><th>Tag</th><th>Digest</th><th>Type</th>"
                    f"<th>Size</th></tr>{''.join(rows)}</table>")
    sections += details
    return "".join(sections)


def _image_details(store, tag: str, doc: dict, media_type: str) -> str:
    out = [f"<section id='tag-{html.escape(tag)}'><h2>{html.escape(tag)}</h2>"]
    if media_type in spec.INDEX_TYPES:
        items = "".join(f"<li><code>{html.escape(m.get('digest', ''))}</code> "
                        f"{html.escape(json.dumps(m.get('platform', {})))}</li>" for m in doc.get("manifests", []))
        return "".join(out) + f"<ul class='platforms'>{items}</ul></section>"
    layers = "".join(f"<tr class='layer'><td><code>{html.escape(l.get('digest', ''))}</code></td>"
                     f"<td>{_size(l.get('size', 0))}</td></tr>" for l in doc.get("layers", []))
    out.append(f"<h3>Layers</h3><table class='layers'><tr><th>Digest</th><th>Size</th></tr>{layers}</table>")
    config_digest = doc.get("config", {}).get("digest", "")
    try:
        config = json.loads(store.blobs.read_bytes(config_digest))
    except Exception:  # an artifact's config need not be JSON, nor an image config
        config = {}
    if isinstance(config, dict) and config.get("history"):
        history = "".join(f"<tr class='history'><td>{html.escape(h.get('created', ''))}</td>"
                          f"<td><code>{html.escape(h.get('created_by', ''))}</code></td></tr>"
                          for h in config["history"])
        out.append(f"<h3>History</h3><table class='history'><tr><th>Created</th><th>Command</th></tr>"
                   f"{history}</table>")
    if isinstance(config, dict) and config.get("config"):
        out.append(f"<h3>Config</h3><pre class='config'>{html.escape(json.dumps(config['config'], indent=2))}"
                   "</pre>")
    return "".join(out) + "</section>"


async def repository(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    request["page_user"] = user = _page_user(request)
    try:
        check_name(name)
        known = request.app[STORE].exists(name) and hub.visible(request.app[STORE], request.app[POLICY], name, user)
    except errors.RegistryError:
        known = False
    if not known:
        return _page(request, "Not found", f"<h1>Repository not found</h1><p>{html.escape(name)}</p>", 404)
    body = await asyncio.get_running_loop().run_in_executor(None, _repository_view, request, name)
    return _page(request, name, body)


async def login_form(request: web.Request, message: str = "") -> web.Response:
    request["page_user"] = _page_user(request)
    error = f"<p id='error'>{html.escape(message)}</p>" if message else ""
    return _page(request, "Sign in", f"<h1>Sign in</h1>{error}<form method='post' action='/login'>"
                 "<p><input name='username' id='username' placeholder='Username'></p>"
                 "<p><input name='password' id='password' type='password' placeholder='Password'></p>"
                 "<p><button id='submit' type='submit'>Sign in</button></p></form>",
                 401 if message else 200)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    user, password = str(form.get("username", "")), str(form.get("password", ""))
    policy = request.app[POLICY]
    ok = await asyncio.get_running_loop().run_in_executor(None, policy.check_password, user, password)
    if not ok:
        return await login_form(request, "Incorrect username or password.")
    value, ttl, _ = request.app[ISSUER].issue(user, [])
    response = web.HTTPSeeOther("/")
    response.set_cookie("hub_token", value, max_age=ttl, httponly=True, samesite="Strict")
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/")
    response.del_cookie("hub_token")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/r/{name:.+}", repository)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/logout", logout)



