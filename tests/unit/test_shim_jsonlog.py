"""json-file log: writer (line splitting, partial lines, rotation) and reader (filters, follow)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dockyard.shim.jsonlog import PARTIAL_LIMIT, JsonLogWriter, format_time
from dockyard.shim.jsonlog_reader import follow, parse_time, read_logs
from tests.unit.shim_logs import follow_while_writing


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def test_time_format_is_go_rfc3339nano() -> None:
    assert format_time(1_795_910_400_123_456_789) == "2026-11-29T00:00:00.123456789Z"
    assert format_time(1_795_910_400_120_000_000) == "2026-11-29T00:00:00.12Z"
    assert format_time(1_795_910_400_000_000_000) == "2026-11-29T00:00:00Z"
    assert parse_time("2026-11-29T00:00:00.12Z") == 1_795_910_400_120_000_000
    assert parse_time("2026-11-29T01:00:00+01:00") == 1_795_910_400_000_000_000


def test_writer_splits_lines_and_keeps_partials_until_the_stream_ends(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthr")
    assert [(r["stream"], r["log"]) for r in lines(log)] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n")]
    w.end_stream("stdout")
    w.write("stdout", "é\u2028<&>\n".encode() + b"\xff\n")
    w.close()
    recs = lines(log)
    assert recs[3]["log"] == "thr"
    assert recs[4]["log"] == "é\u2028<&>\n" and recs[5]["log"] == "\ufffd\n"
    assert "\\u2028" in log.read_text()  # escaped, as Go's encoder does
    assert all(r["time"].endswith("Z") and set(r) == {"log", "stream", "time"} for r in recs)


def test_a_long_line_without_newline_is_flushed_in_pieces(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log)
    w.write("stdout", b"x" * (PARTIAL_LIMIT * 2 + 10))
    assert [len(r["log"]) for r in lines(log)] == [PARTIAL_LIMIT, PARTIAL_LIMIT]
    w.close()
    assert len(lines(log)[-1]["log"]) == 10


def test_rotation_keeps_max_files(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, max_size=1000, max_files=3)
    for i in range(200):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c.log", "c.log.1", "c.log.2"]
    assert all(os.path.getsize(tmp_path / f) <= 1000 for f in files)
    records, _ = read_logs(log, max_files=3)
    assert not isinstance(records, list)  # lazy: a large log is not read into memory at once
    numbers = [int(r.data.split()[1]) for r in records]
    assert numbers == list(range(numbers[0], 200))
    assert len(read_logs(log, max_files=3, tail=5)[0]) == 5
    assert [r.data for r in read_logs(log, max_files=3, tail=2)[0]] == [b"line 198\n", b"line 199\n"]


def test_rotation_with_one_file_truncates(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w = JsonLogWriter(log, max_size=500, max_files=1)
    for i in range(100):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log"]
    assert lines(log)[-1]["log"] == "line 99\n"


def write_records(log: Path, items: list[tuple[str, str, str]]) -> None:
    with open(log, "a") as f:
        for stream, text, stamp in items:
            f.write(json.dumps({"log": text, "stream": stream, "time": stamp}) + "\n")


def test_reader_since_until_tail(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write_records(log, [("stdout", f"{i}\n", f"2026-11-29T00:00:0{i}.5Z") for i in range(8)])
    with open(log, "a") as f:
        f.write('{"torn": ')  # a line being written is skipped
    all_records, position = read_logs(log)
    all_records = list(all_records)
    assert [r.data for r in all_records] == [f"{i}\n".encode() for i in range(8)]
    assert position.offset == os.path.getsize(log)
    since = parse_time("2026-11-29T00:00:03Z")
    until = parse_time("2026-11-29T00:00:06Z")
    assert [r.data for r in read_logs(log, since_ns=since, until_ns=until)[0]] == [b"3\n", b"4\n", b"5\n"]
    assert [r.data for r in read_logs(log, tail=2)[0]] == [b"6\n", b"7\n"]
    assert [r.data for r in read_logs(log, tail=2, until_ns=until)[0]] == [b"4\n", b"5\n"]
    assert read_logs(log, tail=0)[0] == []
    assert list(read_logs(tmp_path / "missing.log")[0]) == []


def test_follow_continues_across_rotation_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "c.log"

    w = JsonLogWriter(log, max_size=300, max_files=2)
    w.write("stdout", b"before\n")
    _, position = read_logs(log, max_files=2)
    writes = [f"after {i}\n".encode() for i in range(6)]  # rotates every few records
    assert follow_while_writing(follow, log, position, w, writes) == writes
