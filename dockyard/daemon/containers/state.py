"""A container's lifecycle as an explicit state machine.

::

    created ──start──> running ──exit──> exited ──start──> running
       │                │  ^                │
       │           pause│  │unpause         │
       │                v  │                │
       │              paused ──exit(kill)──>│
       └──────────────> removing <──────────┘ (remove; running only with force)
                          │
                          └──> dead (removal failed half way)

``restarting`` sits between ``exited`` and ``running`` when a restart policy
brings a container back. ``transition()`` is the only way to change
``State.status``; an illegal move is a Conflict with Docker's words.
"""

from __future__ import annotations

from dockyard import errdefs
from dockyard.apitypes.container import State

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"

_ALLOWED: dict[str, frozenset[str]] = {
    CREATED: frozenset({RUNNING, EXITED, REMOVING}),  # EXITED: a start that failed after create
    RUNNING: frozenset({PAUSED, EXITED, RESTARTING}),
    PAUSED: frozenset({RUNNING, EXITED}),
    RESTARTING: frozenset({RUNNING, EXITED, REMOVING}),
    EXITED: frozenset({RUNNING, RESTARTING, REMOVING}),
    REMOVING: frozenset({DEAD, EXITED, CREATED}),  # back when a removal is refused half way
    DEAD: frozenset({REMOVING}),
}

# Docker's words for the moves a user can ask for at the wrong time, keyed (from, to).
_REFUSALS: dict[tuple[str, str], str] = {
    (PAUSED, RUNNING): "cannot start a paused container, try unpause instead",
    (RUNNING, RUNNING): "container {name} is already running",
    (RUNNING, REMOVING): "cannot remove container \"/{name}\": container is running: "
                         "stop the container before removing or force remove",
    (PAUSED, REMOVING): "cannot remove container \"/{name}\": container is paused: "
                        "unpause the container before removing or force remove",
    (REMOVING, RUNNING): "container is marked for removal and cannot be started",
    (DEAD, RUNNING): "cannot start a dead container",
    (REMOVING, REMOVING): "removal of container {name} is already in progress",
    (CREATED, PAUSED): "Container {name} is not running",
    (EXITED, PAUSED): "Container {name} is not running",
    (PAUSED, PAUSED): "Container {name} is already paused",
}


def check_start(state: State, name: str) -> None:
    """Refuse a start in Docker's words: paused (unpause is the move), removing, dead.
    A running container is the API's 304, not a refusal, so it is the caller's case."""
    if state.status == PAUSED or not can_transition(state.status, RUNNING):
        raise errdefs.Conflict(_REFUSALS.get((state.status, RUNNING), "cannot start container {name}")
                               .format(name=name))


def can_transition(current: str, target: str) -> bool:
    return target in _ALLOWED.get(current, frozenset())


def transition(state: State, target: str, name: str, *, now: str | None = None) -> None:
    """Move ``state`` to ``target``, keeping Docker's derived flags in step.

    ``now`` (RFC 3339) stamps StartedAt when entering running from a stop and
    FinishedAt when entering exited.
    """
    if not can_transition(state.status, target):
        message = _REFUSALS.get(
            (state.status, target), f"cannot move container {name} from {state.status} to {target}")
        raise errdefs.Conflict(message.format(name=name))
    previous = state.status
    state.status = target
    state.running = target in (RUNNING, PAUSED)
    state.paused = target == PAUSED
    state.restarting = target == RESTARTING
    state.dead = target == DEAD
    if target == RUNNING and previous != PAUSED and now is not None:
        state.started_at = now
        state.error = ""
        state.oom_killed = False
        state.exit_code = 0
    if target == EXITED:
        state.pid = 0
        if now is not None:
            state.finished_at = now
