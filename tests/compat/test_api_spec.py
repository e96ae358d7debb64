"""Our responses fit the Docker Engine API v1.50 spec's schemas."""

import json
import time

from tests.compat.openapi import validate
from tests.compat.test_api_errors import call


def get(d, path):
    status, _, body = call(d, "GET", "/v1.50" + path)
    assert status == 200, body
    return json.loads(body)


def test_system_endpoints(dockyardd):
    validate("get", "/info", 200, get(dockyardd, "/info"))
    validate("get", "/version", 200, get(dockyardd, "/version"))
    validate("get", "/system/df", 200, get(dockyardd, "/system/df"))


def test_container_endpoints(dockyardd):
    name = "spec-%d" % time.monotonic_ns()
    r = dockyardd.docker("run", "-d", "--name", name, "-l", "a=b", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    try:
        validate("get", "/containers/json", 200, get(dockyardd, "/containers/json?all=1&size=1"))
        validate("get", "/containers/{id}/json", 200, get(dockyardd, f"/containers/{name}/json"))
    finally:
        dockyardd.docker("rm", "-f", name)


def test_image_endpoints(dockyardd):
    validate("get", "/images/json", 200, get(dockyardd, "/images/json"))
    validate("get", "/images/{name}/json", 200, get(dockyardd, "/images/busybox/json"))
    validate("get", "/images/{name}/history", 200, get(dockyardd, "/images/busybox/history"))


def test_network_endpoints(dockyardd):
    validate("get", "/networks", 200, get(dockyardd, "/networks"))
    validate("get", "/networks/{id}", 200, get(dockyardd, "/networks/bridge"))
