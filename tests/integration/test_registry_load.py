"""A load test on loopback: concurrent pushers (chunked uploads, shared layers, manifests) and
pullers against one hub; nothing is lost and every digest is right."""

from __future__ import annotations

import hashlib
import json
import os
import threading



PUSHERS, PULLERS, IMAGES = 6, 6, 4


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunked_push(hub, repo: str, data: bytes) -> None:
    location = hub.request("POST", f"/v2/{repo}/blobs/uploads/").headers["location"]
    step = max(len(data) // 3, 1)
    for offset in range(0, len(data), step):
        chunk = data[offset:offset + step]
        reply = hub.request("PATCH", location, chunk, {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert reply.status == 202, reply.body
    assert hub.request("PUT", f"{location}?digest={sha(data)}").status == 201


def test_concurrent_pushers_and_pullers(hub):
    shared = os.urandom(300_000)  # every pusher uploads this layer too: stored once, never torn
    expected: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def pusher(n: int) -> None:
        try:
            repo = f"load/p{n}"
            for i in range(IMAGES):
                layer = os.urandom(200_000 + i)
                config = json.dumps({"n": n, "i": i}).encode()
                for blob in (shared, layer, config):
                    chunked_push(hub, repo, blob)
                body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"mediaType": "c", "digest": sha(config), "size": len(config)},
                                   "layers": [{"mediaType": "l", "digest": sha(b), "size": len(b)}
                                              for b in (shared, layer)]}).encode()
                reply = hub.request("PUT", f"/v2/{repo}/manifests/t{i}", body,
                                    {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
                assert reply.status == 201 and reply.headers["docker-content-digest"] == sha(body)
                with lock:
                    expected[(repo, f"t{i}")] = body
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    def puller() -> None:
        try:
            for _ in range(PUSHERS * IMAGES):
                with lock:
                    items = list(expected.items())
                for (repo, tag), body in items[-3:]:
                    got = hub.request("GET", f"/v2/{repo}/manifests/{tag}")
                    assert got.status == 200 and got.body == body
                    for layer in json.loads(body)["layers"]:
                        blob = hub.request("GET", f"/v2/{repo}/blobs/{layer['digest']}")
                        assert sha(blob.body) == layer["digest"]
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(PUSHERS)]
    threads += [threading.Thread(target=puller) for _ in range(PULLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not failures, failures[0]
    assert len(expected) == PUSHERS * IMAGES
    for (repo, tag), body in expected.items():
        got = hub.request("GET", f"/v2/{repo}/manifests/{tag}")
        assert got.body == body and got.headers["docker-content-digest"] == sha(body)
    # one copy of the shared layer, nothing left in flight
    assert hub.request("GET", f"/v2/load/p0/blobs/{sha(shared)}").body == shared
    assert not any((hub.data / "uploads").iterdir())
    assert not any((hub.data / "content" / "ingest").iterdir())
    assert len(list((hub.data / "content" / "blobs" / "sha256").iterdir())) == 1 + PUSHERS * IMAGES * 3
