"""The create helper's rehearsal (run while it waits for its request): a create like the daemon's,
decoded and checked without touching anything outside the process."""

from __future__ import annotations

import json
import os

from dockyard.oci import runtime_spec
from dockyard.shim import shim


def test_the_rehearsal_runs_a_create_like_the_daemons_and_leaves_nothing() -> None:
    shim.warm_up()
    spawn, config = shim._REHEARSAL[-1]
    spec = runtime_spec.decode(config)
    # Docker's default spec: the decoders and checks a real create runs get their pages copied
    assert spec.linux.seccomp is not None and spec.mounts and spec.linux.masked_paths
    body = json.loads(spawn)
    assert body["op"] == "spawn"
    assert shim.spawn_request_from_json(body["request"]).runtime == "dockyard"
    shim._rehearse_create()
    assert not os.path.exists("/nonexistent")
