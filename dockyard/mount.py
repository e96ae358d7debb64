"""A mount to perform: the meeting point of storage and runtime.

A snapshotter returns ``Mount`` objects instead of mounting; the runtime (or a
short-lived helper in the daemon, e.g. for ``export``) performs them. The shape
is the OCI runtime-spec mount: ``type``, ``source``, ``options``, plus the
``target`` (``destination`` in OCI) where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mount:
    type: str  # "overlay", "bind", "tmpfs", "proc", ...
    source: str
    target: str = ""  # empty for a root filesystem mount: the caller picks the target
    options: tuple[str, ...] = field(default_factory=tuple)

    def option_string(self) -> str:
        """Options joined as mount(8) and mount(2)'s data argument expect, flags excluded."""
        return ",".join(self.options)
