"""What a build is asked for and how it fails: the names the API router and the build service
need without the builder itself, which an idle daemon does not load (``service.BuildService``
imports ``builder`` at the first build)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig, JSONMessage
from dockyard.daemon.build.run import RunResources


class BuildFailed(errdefs.DockyardError):
    """A step failed; ``code`` is the failing command's exit code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = ""
    remote: str = ""
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    quiet: bool = False
    remove: bool = True  # rm: remove intermediate containers after a successful step
    force_remove: bool = False
    pull: bool = False
    cache_from: list[str] = field(default_factory=list)
    resources: RunResources = field(default_factory=RunResources)
    auth_configs: dict[str, AuthConfig] = field(default_factory=dict)  # X-Registry-Config
    squash: bool = False  # the target stage's layers merged into one on top of its FROM image
    platform: str = ""  # the target platform (``docker build --platform``); empty: the host's


class BasePuller(Protocol):
    """Pulls a FROM image that is missing (or every one with ``--pull``)."""

    def pull(self, image: str, tag: str, platform: str, auth: AuthConfig,
             emit: Callable[[JSONMessage], None]) -> None: ...
