"""json-file: log-opts attrs in each record (dockerd's layout) and compress=true rotation
(``<log>.N.gz`` with dockerd's lastTime header) read back by tail, since and follow; the
local driver's attrs (LogEntry field 6)."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

from dockyard.shim.jsonlog import JsonLogWriter, attrs_json
from dockyard.shim.jsonlog_reader import follow, parse_time, read_logs
from dockyard.shim.locallog import LocalLogWriter, LogEntry, decode_entry, encode_entry
from dockyard.shim.locallog_reader import read_logs as local_read_logs
from dockyard.shim.logcompress import gzip_extra_last_time

ATTRS = (("com.site", "a<b&c"), ("tag", "web/1 é"))


def test_records_carry_attrs_between_stream_and_time(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, attrs=ATTRS)
    w.write("stdout", b"plain\n")
    w.write("stderr", b"needs \"escape\"\n")
    w.close()
    raw = log.read_bytes().splitlines()
    # Go's json.Marshal of the attrs map: sorted keys, <>& escaped, UTF-8 raw
    assert attrs_json(ATTRS) == '{"com.site":"a\\u003cb\\u0026c","tag":"web/1 é"}'.encode()
    assert raw[0].startswith(b'{"log":"plain\\n","stream":"stdout","attrs":{"com.site":"a\\u003cb')
    assert raw[0].split(b',"time":"')[1].endswith(b'Z"}')
    for line in raw:
        assert json.loads(line)["attrs"] == {"com.site": "a<b&c", "tag": "web/1 é"}
    records = list(read_logs(log)[0])
    assert [r.data for r in records] == [b"plain\n", b'needs "escape"\n']
    assert all(r.attrs == ATTRS for r in records)


def test_compressed_rotation_is_read_by_tail_since_and_all(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, max_size=400, max_files=4, compress=True)
    for i in range(40):
        w.write("stdout", f"line {i:02d}\n".encode())
        w.wait_compressed()  # so that no rotation blocks on the last one by chance
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.log", "c.log.1.gz", "c.log.2.gz", "c.log.3.gz"]
    with gzip.open(tmp_path / "c.log.1.gz") as f:
        last = json.loads(f.read().splitlines()[-1])
    assert gzip_extra_last_time(tmp_path / "c.log.1.gz") == last["time"]
    everything = [r.data for r in read_logs(log, max_files=4)[0]]
    assert everything[-1] == b"line 39\n" and len(everything) > 10
    assert everything == sorted(everything)
    assert [r.data for r in read_logs(log, max_files=4, tail=len(everything) - 1)[0]] == everything[1:]
    # --since after the oldest file's lastTime skips that file by its header
    since = parse_time(gzip_extra_last_time(tmp_path / "c.log.3.gz")) + 1
    kept = [r.data for r in read_logs(log, max_files=4, since_ns=since)[0]]
    assert kept and kept[-1] == b"line 39\n" and set(kept) <= set(everything)


def test_follow_reads_compressed_files_rotated_while_it_lagged(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, max_size=300, max_files=20, compress=True)
    w.write("stdout", b"before\n")
    _, position = read_logs(log, max_files=20)

    async def lagging_follower() -> list[bytes]:
        reading = follow(log, position, stop=lambda: True, poll_interval=0.01)
        w.write("stdout", b"early\n")
        got = [r.data for r in await reading.__anext__()]  # holds the first file open
        for i in range(40):  # meanwhile several rotations, each then gzipped
            w.write("stdout", f"line {i}\n".encode())
            w.wait_compressed()
        got += [rec.data async for batch in reading for rec in batch]
        return got

    got = asyncio.run(lagging_follower())
    w.close()
    assert any(p.name.endswith(".gz") for p in tmp_path.iterdir())
    assert got == [b"early\n"] + [f"line {i}\n".encode() for i in range(40)]


def test_local_entries_carry_attrs_as_field_6(tmp_path: Path) -> None:
    entry = LogEntry("stdout", 5, b"x", attrs=ATTRS)
    framed = encode_entry(entry)
    assert b"\x32" in framed and decode_entry(framed[4:-4]) == entry
    log = tmp_path / "container.log"
    w = LocalLogWriter(log, attrs=ATTRS)
    w.write("stdout", b"one\ntwo\n")
    w.write("stderr", b"x" * 20000 + b"\n")  # pieces of a long line carry them too
    w.close()
    records = list(local_read_logs(log)[0])
    assert [r.data for r in records][:2] == [b"one\n", b"two\n"]
    assert all(r.attrs == ATTRS for r in records)


def test_local_attrs_read_in_place_after_the_first_entry(tmp_path: Path) -> None:
    from dockyard.shim.locallog_reader import parse_records

    empty_value = (("a", ""), ("tag", "x"))
    frames = b"".join(encode_entry(LogEntry("stdout", 1_700_000_000_000_000_000 + i, b"l%d" % i,
                                            attrs=empty_value)) for i in range(3))
    frames += encode_entry(LogEntry("stdout", 1_700_000_000_000_000_009, b"bare"))
    records, used = parse_records(frames)
    assert used == len(frames)
    assert [(r.data, r.attrs) for r in records] == \
        [(b"l0\n", empty_value), (b"l1\n", empty_value), (b"l2\n", empty_value), (b"bare\n", ())]
