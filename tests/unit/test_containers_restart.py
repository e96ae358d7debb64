"""Restart policy verdicts and moby's back-off."""

from __future__ import annotations

from dockyard.apitypes.container import RestartPolicy
from dockyard.daemon.containers.restart import Backoff, wants_restart


def test_policies():
    assert not wants_restart(RestartPolicy(name=""), 1, False, 0)
    assert not wants_restart(RestartPolicy(name="no"), 1, False, 0)
    assert wants_restart(RestartPolicy(name="always"), 0, True, 99)
    assert wants_restart(RestartPolicy(name="unless-stopped"), 0, False, 5)
    assert not wants_restart(RestartPolicy(name="unless-stopped"), 1, True, 0)
    assert not wants_restart(RestartPolicy(name="on-failure"), 0, False, 0)
    assert wants_restart(RestartPolicy(name="on-failure"), 3, False, 1000)  # 0: no limit
    assert wants_restart(RestartPolicy(name="on-failure", maximum_retry_count=2), 3, False, 1)
    assert not wants_restart(RestartPolicy(name="on-failure", maximum_retry_count=2), 3, False, 2)


def test_backoff_doubles_caps_and_resets():
    b = Backoff()
    assert [b.next(0.1) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    for _ in range(20):
        b.next(1)
    assert b.next(1) == 60.0
    assert b.next(10.0) == 0.1  # a run of 10 s starts over
