"""local log driver: framing, writer (partials, rotation, compression) and reader (filters, follow)."""

from __future__ import annotations

import asyncio
import gzip
import struct
from pathlib import Path

import pytest

from dockyard.shim.jsonlog import PARTIAL_LIMIT
from dockyard.shim.jsonlog_reader import parse_time
from dockyard.shim.locallog import LocalLogWriter, LogEntry, decode_entry, encode_entry
from dockyard.shim.logcompress import gzip_extra_last_time
from dockyard.shim.locallog_reader import follow, parse_records, read_logs
from tests.unit.shim_logs import follow_while_writing


def frames(raw: bytes) -> list[LogEntry]:
    found, pos = [], 0
    while pos < len(raw):
        (size,) = struct.unpack_from(">I", raw, pos)
        assert raw[pos + 4 + size:pos + 8 + size] == raw[pos:pos + 4]
        found.append(decode_entry(raw[pos + 4:pos + 4 + size]))
        pos += size + 8
    return found


def entries(path: Path) -> list[LogEntry]:
    return frames(path.read_bytes())


def test_frame_is_dockerd_shape() -> None:
    # length prefix and suffix (big-endian) around protobuf LogEntry{source, time_nano, line}
    frame = encode_entry(LogEntry("stdout", 1, b"hi"))
    body = b"\x0a\x06stdout" + b"\x10\x01" + b"\x1a\x02hi"
    assert frame == struct.pack(">I", len(body)) + body + struct.pack(">I", len(body))
    partial = LogEntry("stderr", 1_795_910_400_123_456_789, b"", True, True, "ab", 3)
    assert decode_entry(encode_entry(partial)[4:-4]) == partial
    assert b"\x20\x01\x2a\x08\x08\x01\x12\x02ab\x18\x03" in encode_entry(partial)
    # fields we do not write (attrs, 6) are skipped
    assert decode_entry(body + b"\x32\x04\x0a\x00\x12\x00").line == b"hi"


def test_fast_and_general_decoding_agree() -> None:
    items = [LogEntry("stdout", 1_795_910_400_123_456_789, b"x" * n) for n in (0, 1, 127, 128, 20000)]
    items += [LogEntry("stderr", 1_795_910_400_123_456_789, b"p", True, False, "id", 1),
              LogEntry("stdout", 5, b"y")]
    raw = b"".join(encode_entry(e) for e in items)
    records, used = parse_records(raw + encode_entry(items[0])[:-1])
    assert used == len(raw)
    assert [(r.stream, r.data, r.time_ns) for r in records] == \
        [(e.source, e.line + (b"" if e.partial else b"\n"), e.time_ns) for e in items]
    assert records[0].time == "2026-11-29T00:00:00.123456789Z"


def test_writer_lines_partials_and_stream_end(tmp_path: Path) -> None:
    log = tmp_path / "local-logs" / "container.log"
    w = LocalLogWriter(log, compress=False)
    w.write("stdout", b"one\n\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\n")
    w.write("stdout", b"x" * (PARTIAL_LIMIT * 2 + 5))
    w.write("stdout", b"yz\nrest")
    w.close()
    got = entries(log)
    assert [(e.source, e.line, e.partial) for e in got[:4]] == [
        ("stdout", b"one", False), ("stdout", b"", False), ("stderr", b"err", False),
        ("stdout", b"two", False)]
    long = got[4:7]
    assert [len(e.line) for e in long] == [PARTIAL_LIMIT, PARTIAL_LIMIT, 7]
    assert all(e.partial and e.partial_id == long[0].partial_id for e in long)
    assert [(e.partial_ordinal, e.partial_last) for e in long] == [(1, False), (2, False), (3, True)]
    assert long[0].time_ns == long[2].time_ns
    # output that ends without a newline: a partial piece, not last (dockerd's copier at EOF)
    assert got[7].line == b"rest" and got[7].partial and not got[7].partial_last
    records, _ = read_logs(log)
    assert b"".join(r.data for r in records if r.stream == "stdout") == \
        b"one\n\ntwo\n" + b"x" * (PARTIAL_LIMIT * 2 + 5) + b"yz\nrest"


def test_rotation_and_compression(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    w = LocalLogWriter(log, max_size=2000, max_files=3, compress=True)
    for i in range(400):
        w.write("stdout", f"line {i}\n".encode())
        if i % 50 == 0:
            w.wait_compressed()  # so that no rotation blocks on the last one by chance
    w.wait_compressed()
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["container.log", "container.log.1.gz", "container.log.2.gz"]
    assert log.stat().st_size < 2000 + 40
    raw = gzip.decompress((tmp_path / "container.log.1.gz").read_bytes())
    last = frames(raw)[-1]
    assert parse_time(gzip_extra_last_time(tmp_path / "container.log.1.gz")) == last.time_ns
    records, _ = read_logs(log, max_files=3)
    numbers = [int(r.data.split()[1]) for r in records]
    assert numbers == list(range(numbers[0], 400)) and numbers[0] > 0
    assert [r.data for r in read_logs(log, max_files=3, tail=2)[0]] == [b"line 398\n", b"line 399\n"]
    tail = [r.data for r in read_logs(log, max_files=3, tail=len(numbers) - 3)[0]]
    assert tail == [f"line {n}\n".encode() for n in numbers[3:]]  # across the gzipped files
    # a file whose last entry is before --since is not even decompressed
    assert [r.data for r in read_logs(log, max_files=3, since_ns=last.time_ns + 1)[0]] == \
        [f"line {n}\n".encode() for n in numbers if n > int(last.line.split()[1])]


def test_uncompressed_rotation_and_one_file(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = LocalLogWriter(log, max_size=500, max_files=2, compress=False)
    for i in range(100):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log", "c.log.1"]
    one = tmp_path / "one.log"
    w = LocalLogWriter(one, max_size=500, max_files=1, compress=True)  # nothing to compress
    for i in range(100):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log", "c.log.1", "one.log"]
    assert entries(one)[-1].line == b"line 99"


def test_reader_since_until_tail_and_torn_end(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    base = parse_time("2026-11-29T00:00:00.5Z")
    torn = encode_entry(LogEntry("stdout", base + 9 * 10**9, b"torn"))
    with open(log, "wb") as f:
        for i in range(8):
            f.write(encode_entry(LogEntry("stdout" if i % 2 else "stderr", base + i * 10**9, b"%d" % i)))
        f.write(torn[:-3])  # the writer caught mid-write
    records, position = read_logs(log)
    records = list(records)
    assert [r.data for r in records] == [b"%d\n" % i for i in range(8)]
    assert records[0].stream == "stderr" and records[0].time == "2026-11-29T00:00:00.5Z"
    assert position.offset == log.stat().st_size - len(torn) + 3  # follow goes on from a boundary
    since, until = parse_time("2026-11-29T00:00:03Z"), parse_time("2026-11-29T00:00:06Z")
    assert [r.data for r in read_logs(log, since_ns=since, until_ns=until)[0]] == [b"3\n", b"4\n", b"5\n"]
    assert [r.data for r in read_logs(log, tail=2)[0]] == [b"6\n", b"7\n"]
    assert [r.data for r in read_logs(log, tail=2, until_ns=until)[0]] == [b"4\n", b"5\n"]
    assert read_logs(log, tail=0)[0] == []
    assert list(read_logs(tmp_path / "missing.log")[0]) == []
    with open(log, "ab") as f:
        f.write(torn[-3:])

    async def rest() -> list[bytes]:
        return [r.data async for batch in follow(log, position, stop=lambda: True) for r in batch]
    assert asyncio.run(rest()) == [b"torn\n"]


def test_follow_continues_across_rotation_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "c.log"

    w = LocalLogWriter(log, max_size=100, max_files=3, compress=True)
    w.write("stdout", b"before\n")
    _, position = read_logs(log, max_files=3)
    writes = [f"after {i}\n".encode() for i in range(6)] + [b"partial"]  # rotates every few entries
    assert follow_while_writing(follow, log, position, w, writes) == writes
    w.wait_compressed()


def test_a_restarted_container_appends_and_its_first_rotation_keeps_since_working(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = LocalLogWriter(log, max_size=200, max_files=2, compress=True)
    w.write("stdout", b"first start\n")
    w.close()
    written = entries(log)[-1].time_ns
    w = LocalLogWriter(log, max_size=len(log.read_bytes()), max_files=2, compress=True)
    w.write("stdout", b"second start\n")  # the file is full: it rotates before this entry
    w.wait_compressed()
    w.close()
    assert parse_time(gzip_extra_last_time(tmp_path / "c.log.1.gz")) >= written
    assert [r.data for r in read_logs(log, max_files=2, since_ns=written)[0]] == \
        [b"first start\n", b"second start\n"]


DOCKERD_LOG = Path(__file__).parent / "data" / "dockerd-local-log" / "container.log"


def test_reads_what_dockerd_wrote() -> None:
    """Files of dockerd 20.10's local driver (max-size=3k, max-file=4) for
    ``for i in 0..119: echo line-$i; head -c 40000 /dev/zero | tr '\\0' y; echo; printf tail``
    (and an ``echo err >&2`` that dockerd's separate stderr copier logged early enough to be
    rotated out): its framing, partial pieces and gzip header are ours."""
    records = list(read_logs(DOCKERD_LOG, max_files=4)[0])
    assert {r.stream for r in records} == {"stdout"}
    # 20.10 printed the last piece of a long line without its newline; dockerd 28 adds it, as we do
    assert b"".join(r.data for r in records) == \
        b"".join(b"line-%d\n" % i for i in range(86, 120)) + b"y" * 40000 + b"\ntail"
    pieces = [r for r in records if r.data.startswith(b"y")]
    assert [len(r.data) for r in pieces] == [16384, 16384, 7233] and len({r.time_ns for r in pieces}) == 1
    last = parse_time(gzip_extra_last_time(DOCKERD_LOG.with_name("container.log.3.gz")))
    assert last == pieces[0].time_ns  # the first piece ends the oldest file
    assert [r.data for r in read_logs(DOCKERD_LOG, max_files=4, tail=2)[0]] == [b"y" * 7232 + b"\n", b"tail"]


@pytest.mark.parametrize("compress", [True, False])
def test_follow_reads_the_files_rotated_while_it_lagged(tmp_path: Path, compress: bool) -> None:
    log = tmp_path / "c.log"
    w = LocalLogWriter(log, max_size=300, max_files=10, compress=compress)
    w.write("stdout", b"before\n")
    _, position = read_logs(log, max_files=10)

    async def follow_after_the_writer_ran_ahead() -> list[bytes]:
        got = []
        reading = follow(log, position, stop=lambda: True, poll_interval=0.01)
        for i in range(3):
            w.write("stdout", f"early {i}\n".encode())
        got.extend(r.data for r in await reading.__anext__())  # the follower holds the first file open
        for i in range(60):  # meanwhile several rotations
            w.write("stdout", f"line {i}\n".encode())
            if i % 10 == 0:
                w.wait_compressed()
        w.wait_compressed()
        got += [rec.data async for batch in reading for rec in batch]
        return got

    got = asyncio.run(follow_after_the_writer_ran_ahead())
    w.close()
    assert len([p for p in tmp_path.iterdir() if p.name != "c.log"]) >= 3
    assert got == [f"early {i}\n".encode() for i in range(3)] + [f"line {i}\n".encode() for i in range(60)]
