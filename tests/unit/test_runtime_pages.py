"""runtime.pages against the real kernel: which pages a process owns, recorded and copied ahead."""

from __future__ import annotations

import mmap
import os
import struct

from dockyard.runtime import pages
from dockyard.runtime import syscalls as sc
from tests.unit.forked import in_child


def test_owned_pages_are_the_ones_written_since_the_fork():
    area = mmap.mmap(-1, 8 * sc.PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(8):
        area[i * sc.PAGE_SIZE] = 1  # ours, then shared with the child
    first = _address(area) // sc.PAGE_SIZE

    def child() -> int:
        area[3 * sc.PAGE_SIZE] = 2  # copied: the child's own now
        owned = set(pages.owned_pages())
        return sum(1 << i for i in range(8) if first + i in owned)

    assert in_child(child) == 1 << 3


def test_recorded_pages_are_copied_ahead_by_populate(tmp_path):
    area = mmap.mmap(-1, 8 * sc.PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(8):
        area[i * sc.PAGE_SIZE] = 1
    first = _address(area) // sc.PAGE_SIZE
    listing = tmp_path / "pages"

    def recording_child() -> int:
        recorder = pages.Recorder(str(listing))
        area[2 * sc.PAGE_SIZE] = area[5 * sc.PAGE_SIZE] = 2
        recorder.record()
        return 0

    assert not pages.populate(str(listing))  # nothing learned yet
    in_child(recording_child)
    numbers = set(struct.unpack(f"<{listing.stat().st_size // 8}Q", listing.read_bytes()))
    assert {first + 2, first + 5} <= numbers and first + 3 not in numbers
    assert not [p for p in os.listdir(tmp_path) if p != "pages"]  # the temp file was renamed

    def populated_child() -> int:
        assert pages.populate(str(listing))
        owned = set(pages.owned_pages())  # copied without being written
        return sum(1 << i for i in range(8) if first + i in owned)

    assert in_child(populated_child) == (1 << 2) | (1 << 5)


def _address(area: mmap.mmap) -> int:
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(area))
