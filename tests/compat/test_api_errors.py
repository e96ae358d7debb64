"""Raw HTTP against the API: versions, error format, bad input."""

import http.client
import json
import socket


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(d, method, path, body=None, headers=None):
    conn = UnixHTTP(str(d.socket))
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def test_ping_headers(dockyardd):
    status, headers, body = call(dockyardd, "GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["Api-Version"] == "1.50"
    status, headers, body = call(dockyardd, "HEAD", "/_ping")
    assert status == 200 and body == b""
    # dockerd's: an explicit zero length, which the Go client reads faster than none
    assert headers["Content-Length"] == "0" and headers["Content-Type"] == "text/plain; charset=utf-8"


def test_dockerd_headers_on_every_answer(dockyardd):
    """As dockerd's VersionMiddleware: Api-Version is the daemon's own, whatever the request's,
    and streamed answers (here /events, whose headers go out before its body) carry them too."""
    for path in ("/v1.41/version", "/v1.44/events?since=0&until=1", "/v1.50/containers/nope/json"):
        _, headers, _ = call(dockyardd, "GET", path)
        assert headers["Api-Version"] == "1.50", path
        assert headers["Server"].startswith("Dockyard/") and headers["Ostype"] == "linux", path


def test_versions(dockyardd):
    assert call(dockyardd, "GET", "/v1.41/version")[0] == 200
    status, _, body = call(dockyardd, "GET", "/v1.99/version")
    assert status == 400 and b"too new" in body
    status, _, body = call(dockyardd, "GET", "/v1.12/version")
    assert status == 400 and b"too old" in body


def test_malformed_json_is_400(dockyardd):
    status, _, body = call(dockyardd, "POST", "/v1.50/containers/create", body=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert status == 400
    assert "message" in json.loads(body)


def test_wrong_type_is_400(dockyardd):
    status, _, body = call(dockyardd, "POST", "/v1.50/containers/create",
                           body=json.dumps({"Image": "busybox", "Cmd": 5}).encode(),
                           headers={"Content-Type": "application/json"})
    assert status == 400, body


def test_unknown_container_is_404_with_message(dockyardd):
    status, _, body = call(dockyardd, "GET", "/v1.50/containers/nope/json")
    assert status == 404
    assert json.loads(body) == {"message": "No such container: nope"}


def test_start_running_is_304(dockyardd):
    _, _, body = call(dockyardd, "POST", "/v1.50/containers/create",
                      body=json.dumps({"Image": "busybox", "Cmd": ["sleep", "30"]}).encode(),
                      headers={"Content-Type": "application/json"})
    cid = json.loads(body)["Id"]
    try:
        assert call(dockyardd, "POST", f"/v1.50/containers/{cid}/start")[0] == 204
        assert call(dockyardd, "POST", f"/v1.50/containers/{cid}/start")[0] == 304
        status, _, body = call(dockyardd, "DELETE", f"/v1.50/containers/{cid}")
        assert status == 409
    finally:
        call(dockyardd, "DELETE", f"/v1.50/containers/{cid}?force=1")


def test_second_daemon_on_same_root_refuses(dockyardd):
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run([str(Path(sys.executable).parent / "dockyardd"), "--data-root", str(dockyardd.data_root),
                        "--exec-root", str(dockyardd.root / "other-exec"), "-H",
                        f"unix://{dockyardd.root}/other.sock", "--config-file", "/nonexistent"],
                       capture_output=True, timeout=20)
    assert r.returncode != 0
    assert b"already using data root" in r.stderr
