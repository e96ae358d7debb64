"""``docker exec`` into a container between two restarts of its restart policy: moby's 409."""

from __future__ import annotations

import secrets
import time


def test_exec_into_a_restarting_container_is_409(dockyardd):
    name = f"exr-{secrets.token_hex(4)}"
    r = dockyardd.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    assert r.returncode == 0, r.stderr.decode()
    try:
        cid = dockyardd.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        expected = f"Container {cid} is restarting, wait until the container is running"
        # the back-off doubles from 100 ms: after a few restarts the container spends most of its
        # time waiting in "restarting", so an exec soon lands there
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            r = dockyardd.docker("exec", name, "true")
            seen = r.stderr.decode()
            if expected in seen:
                break
            time.sleep(0.05)
        assert expected in seen, seen
        assert r.returncode == 1
    finally:
        dockyardd.docker("rm", "-f", name)
