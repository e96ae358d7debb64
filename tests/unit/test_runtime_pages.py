"""runtime.pages against the real kernel: which pages a process owns, recorded and copied ahead."""

from __future__ import annotations

import mmap
import os
import struct

from dockyard.runtime import pages
from dockyard.runtime import syscalls as sc
from tests.unit.forked import in_child


def test_owned_pages_are_the_ones_written_since_the_fork():
    area, first = _written_area()  # ours, then shared with the child

    def child() -> int:
        area[3 * sc.PAGE_SIZE] = 2  # copied: the child's own now
        owned = set(pages.owned_pages())
        return sum(1 << i for i in range(8) if first + i in owned)

    assert in_child(child) == 1 << 3


def test_recorded_pages_are_copied_ahead_by_populate(tmp_path):
    area, first = _written_area()
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


def _written_area() -> tuple[mmap.mmap, int]:
    """Eight private pages, each written (so ours), and the number of the first."""
    area = mmap.mmap(-1, 8 * sc.PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(8):
        area[i * sc.PAGE_SIZE] = 1
    return area, _address(area) // sc.PAGE_SIZE


def _address(area: mmap.mmap) -> int:
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(area))


def test_another_process_records_a_process_pages(tmp_path):
    """The create helper, the spare shim's child, lists the shim's pages (``Recorder.record(pid)``):
    the list has what the shim wrote since, and none of the pages the reading wrote."""
    area, first = _written_area()
    listing = tmp_path / "pages"

    def shim() -> int:
        recorder = pages.Recorder(str(listing))
        go_r, go_w = os.pipe()
        helper = os.fork()
        if helper == 0:
            try:
                os.read(go_r, 1)  # the shim has written by now
                area[1 * sc.PAGE_SIZE] = 3  # the reader's own write
                recorder.record(os.getppid())
            finally:
                os._exit(0)
        area[6 * sc.PAGE_SIZE] = 2
        os.write(go_w, b"x")
        os.waitpid(helper, 0)
        return 0

    in_child(shim)
    numbers = set(struct.unpack(f"<{listing.stat().st_size // 8}Q", listing.read_bytes()))
    assert first + 6 in numbers and first + 1 not in numbers


def test_an_abandoned_recorder_leaves_nothing(tmp_path):
    recorder = pages.Recorder(str(tmp_path / "pages"))
    recorder.abandon()
    assert os.listdir(tmp_path) == []
