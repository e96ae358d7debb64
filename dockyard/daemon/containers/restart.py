"""Restart policies: whether an exited container comes back, and after how long.

Docker's rules (moby's restartmanager): ``always`` restarts on any exit,
``unless-stopped`` unless a user stopped or killed the container, ``on-failure``
only after a non-zero exit and at most ``MaximumRetryCount`` times (0: no limit).
An exit the user asked for (stop, kill, rm -f) or the daemon's own shutdown
never restarts. The delay starts at 100 ms and doubles up to one minute; a run
of 10 seconds or more starts the back-off over.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.apitypes.container import RestartPolicy

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # seconds of run time that make the back-off start over


def wants_restart(policy: RestartPolicy, exit_code: int, manually_stopped: bool, restart_count: int) -> bool:
    """The policy's verdict alone (no back-off): also what the daemon asks at start-up."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


@dataclass
class Backoff:
    """One container's restart delay; kept in memory as moby keeps its restart manager."""
    delay: float = 0.0

    def next(self, ran_for: float) -> float:
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        return self.delay
