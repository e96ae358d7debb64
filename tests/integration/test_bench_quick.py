"""The benchmark suite's quick mode runs against Dockyard alone without error and writes every case.

Nothing here is timed: benchmarks are not tests. This only keeps bench/ from rotting as the daemon
changes. The bench starts (and stops, by pid) its own private dockyardd."""

import json
import subprocess
from pathlib import Path

import pytest

from bench.catalog import CASES

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_mode_covers_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "bench", "--quick", "--json", str(out),
         "--md", str(tmp_path / "results.md"), "--plot", str(tmp_path / "ratios.png")],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode == 3:
        pytest.skip("dockyardd cannot start: " + proc.stderr.strip().splitlines()[-2][-300:])
    assert proc.returncode == 0, proc.stderr[-2000:]

    result = json.loads(out.read_text())
    by_name = {row["name"]: row for row in result["cases"]}
    expected = [metric.name for case in CASES for metric in case.metrics]
    assert sorted(by_name) == sorted(expected)
    assert all(row["results"]["floor"]["values"] for row in result["floor"]), result["floor"]
    assert (tmp_path / "results.md").read_text().startswith("# Dockyard bench")
    assert (tmp_path / "ratios.png").stat().st_size > 0

    failed = {name: row["results"]["dockyard"]["note"] for name, row in by_name.items()
              if not row["results"]["dockyard"]["values"]}
    # A route the daemon does not serve yet (404 "page not found") is work not done, not breakage.
    not_built = sorted(name for name, note in failed.items() if "page not found" in note)
    broken = {name: note for name, note in failed.items() if name not in not_built}
    assert not broken, f"cases that failed on Dockyard: {broken}"
    if not_built:
        pytest.xfail(f"Dockyard does not serve these yet: {', '.join(not_built)}")
