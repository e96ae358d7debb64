"""The pages a prepared init writes on its way to "ready", learned once and copied ahead.

A prepared init (``linux.prepare_init``) is a fork of the create helper: every page it writes
before "ready" is first copied from the helper (~2-3 us a page here, ~230 pages after its
rehearsal). The first prepared init of a zygote records which pages it owns by then (the
pagemap's exclusive bit of its writable private mappings) in a file beside the zygote; the
next ones, all forks of the same zygote and so laid out alike, copy those pages in one
``madvise`` per run while they wait (``populate``). A page list from another layout only costs
copies that were not needed.
"""

from __future__ import annotations

import os
import struct

from dockyard.runtime import syscalls as sc

_EXCLUSIVE = 1 << 56  # pagemap: the page is mapped by this process only
_PRESENT = 1 << 63


def populate(path: str) -> bool:
    """Copy the pages listed in ``path`` now; False if there is no such list yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    numbers = struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8])
    start = previous = -2
    for number in (*numbers, -2):
        if number != previous + 1:
            if start >= 0:
                sc.populate_write(start * sc.PAGE_SIZE, (previous - start + 1) * sc.PAGE_SIZE)
            start = number
        previous = number
    return True


def recorder(path: str) -> Recorder | None:
    """A Recorder for ``path``, or None if another process recorded it meanwhile or it cannot be
    opened (the list is a speed-up: its absence must never fail a container)."""
    if os.path.exists(path):
        return None
    try:
        return Recorder(path)
    except OSError:
        return None


class Recorder:
    """Records the pages this process owns into ``path``: opened now (the init's view of the
    host's paths goes with its pivot_root), written by ``record`` once."""

    def __init__(self, path: str) -> None:
        directory, self.name = os.path.split(path)
        self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.temp = f".{self.name}.{os.getpid()}"
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600,
                          dir_fd=self.dir_fd)

    def record(self, pid: int | None = None) -> None:
        """Write the list (of process ``pid``'s pages, by default ours) and put it in place;
        anything in the way (no /proc, say) leaves none."""
        try:
            os.write(self.fd, b"".join(struct.pack("<Q", n) for n in owned_pages(pid)))
            os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError:
            self.abandon()
            return
        self._close()

    def abandon(self) -> None:
        """Leave no list (the work it was to follow failed)."""
        try:
            os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        os.close(self.fd)
        os.close(self.dir_fd)


def owned_pages(pid: int | None = None) -> list[int]:
    """Page numbers of the writable private mappings of this process (or ``pid``) that it alone
    maps. Read from another process, the list has none of the pages its reading writes."""
    proc = f"/proc/{pid}" if pid else "/proc/self"
    owned = []
    with open(f"{proc}/maps", "rb") as maps, open(f"{proc}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if fields[1][1:2] != b"w" or fields[1][3:4] != b"p":
                continue
            start, end = (int(x, 16) // sc.PAGE_SIZE for x in fields[0].split(b"-"))
            pagemap.seek(start * 8)
            entries = struct.unpack(f"<{end - start}Q", pagemap.read((end - start) * 8))
            owned.extend(start + i for i, entry in enumerate(entries)
                         if entry & _PRESENT and entry & _EXCLUSIVE)
    return owned
