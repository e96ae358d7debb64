"""Registry auth: WWW-Authenticate parsing, basic and bearer headers, the per-scope token cache."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dockyard import errdefs
from dockyard.distribution.auth import Authorizer, Challenge, Credentials, basic_header, parse_challenges
from dockyard.distribution.transport import Transport


def test_parse_bearer_challenge():
    [c] = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull"}


def test_parse_basic_and_several_schemes():
    challenges = parse_challenges('Basic realm="basic-realm", Bearer realm="http://x/token",service="s"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[1].params["service"] == "s"
    assert parse_challenges('Bearer realm="a\\"b"')[0].params["realm"] == 'a"b'


class _TokenServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") == basic_header("u", "bad"):
                    body = b'{"details":"incorrect username or password"}'
                    self.send_response(401)
                else:
                    body = json.dumps({"token": f"t{len(server.requests)}", "expires_in": 300}).encode()
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"


@pytest.fixture
def tokens():
    server = _TokenServer()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_bearer_token_cached_per_scope(tokens):
    auth = Authorizer(Transport(lambda host: None, timeout=5))
    challenge = Challenge("bearer", {"realm": tokens.realm, "service": "reg"})
    creds = Credentials("u", "p")
    pull = ("repository:a:pull",)
    first = auth.header(challenge, creds, pull)
    assert first == "Bearer t1"
    assert auth.header(challenge, creds, pull) == first  # cached
    assert auth.header(challenge, creds, ("repository:a:pull,push",)) == "Bearer t2"  # another scope
    assert auth.header(challenge, Credentials(), pull) == "Bearer t3"  # anonymous is another key
    path, header = tokens.requests[0]
    assert path == "/token?service=reg&scope=repository%3Aa%3Apull"
    assert header == basic_header("u", "p")
    assert tokens.requests[2][1] == ""
    assert auth.header(challenge, creds, pull, fresh=True) == "Bearer t4"


def test_bad_credentials_are_unauthorized(tokens):
    auth = Authorizer(Transport(lambda host: None, timeout=5))
    challenge = Challenge("bearer", {"realm": tokens.realm, "service": "reg"})
    with pytest.raises(errdefs.Unauthorized, match="unauthorized: incorrect username or password"):
        auth.header(challenge, Credentials("u", "bad"), ("repository:a:pull",))


def test_basic_and_registry_token():
    auth = Authorizer(Transport(lambda host: None))
    basic = Challenge("basic", {"realm": "r"})
    assert auth.header(basic, Credentials("u", "p"), ()) == basic_header("u", "p")
    assert auth.header(basic, Credentials(), ()) is None
    bearer = Challenge("bearer", {"realm": "http://127.0.0.1:1/none"})
    assert auth.header(bearer, Credentials(registry_token="abc"), ()) == "Bearer abc"
