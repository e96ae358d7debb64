"""What the volume service needs from a volume driver (the local one or a plugin).

The shape follows Docker's volume plugin protocol (Create, Remove, Mount,
Unmount, Path, Get, List, Capabilities), so the local driver and a plugin
client are interchangeable. Calls block; the service runs plugin calls in a
worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class DriverVolume:
    name: str
    mountpoint: str = ""
    status: dict[str, object] = field(default_factory=dict)
    created_at: str = ""  # a plugin's CreatedAt, when it tells


class VolumeDriver(Protocol):
    name: str

    def scope(self) -> str:
        """"local" or "global" (Capabilities.Scope)."""

    def create(self, name: str, options: dict[str, str]) -> None: ...

    def remove(self, name: str) -> None: ...

    def mount(self, name: str, mount_id: str) -> str:
        """Make the volume available; returns the host path to bind into the container."""

    def unmount(self, name: str, mount_id: str) -> None: ...

    def path(self, name: str) -> str: ...

    def get(self, name: str) -> DriverVolume: ...

    def list(self) -> list[DriverVolume]: ...
