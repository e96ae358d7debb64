"""Turning figures into the three outputs: JSON (for plotting and comparing), a Markdown table, and a
PNG of the ratios. A cell is the median of the runs with min and max; a ratio is Dockyard's median
over the reference's (below 1 means Dockyard is faster or smaller)."""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    note: str = ""  # why there is no figure: the target cannot run the case, or it failed

    @property
    def summary(self) -> dict | None:
        if not self.values:
            return None
        return {"median": statistics.median(self.values), "min": min(self.values), "max": max(self.values)}


@dataclass
class Row:
    name: str
    title: str
    unit: str
    cells: dict[str, Cell]  # target name -> cell
    floor: str = ""  # name of the floor row that bounds this one from below


@dataclass
class Report:
    meta: dict
    targets: list[dict]  # name, label, docker_host, unavailable
    rows: list[Row]
    floor: list[Row]  # one cell, keyed "floor"


def ratio(report: Report, row: Row, reference: str) -> float | None:
    mine, theirs = row.cells.get("dockyard"), row.cells.get(reference)
    if mine is None or theirs is None or not mine.summary or not theirs.summary or not theirs.summary["median"]:
        return None
    return mine.summary["median"] / theirs.summary["median"]


def references(report: Report) -> list[str]:
    return [t["name"] for t in report.targets if t["name"] != "dockyard"]


def to_json(report: Report) -> dict:
    def row_json(row: Row) -> dict:
        out = {"name": row.name, "title": row.title, "unit": row.unit, "floor": row.floor, "results": {}}
        for target, cell in row.cells.items():
            out["results"][target] = {"values": cell.values, "note": cell.note, **(cell.summary or {})}
        out["ratios"] = {ref: ratio(report, row, ref) for ref in references(report)}
        return out
    return {"schema": 1, "meta": report.meta, "targets": report.targets,
            "cases": [row_json(r) for r in report.rows], "floor": [row_json(r) for r in report.floor]}


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}"


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    if cell.summary is None:
        return f"— ({' '.join(cell.note.split())})" if cell.note else "—"
    s = cell.summary
    return f"{_fmt(s['median'])} ({_fmt(s['min'])}–{_fmt(s['max'])})"


def to_markdown(report: Report) -> str:
    labels = {t["name"]: t["label"] for t in report.targets}
    names = [t["name"] for t in report.targets]
    floors = {f.name: f.cells["floor"] for f in report.floor}
    head = ["case", "unit", "floor"]
    for name in names:
        head.append(labels[name])
        if name != "dockyard" and "dockyard" in names:
            head.append(f"ratio vs {name}")
    lines = [f"# Dockyard bench, {report.meta['started']}", "",
             f"Runs: {report.meta['runs']} after {report.meta['warmup']} warm-up, alternating targets; "
             f"each cell: median (min–max). Floor: the median of what bounds the case from below "
             f"(the docker CLI's own start, `runc run` of the same bundle, docker-py against a bare HTTP "
             f"server; see the floor table). Ratio = Dockyard / reference (below 1: Dockyard is faster "
             f"or smaller). Host: {report.meta['host']}.", ""]
    down = [t for t in report.targets if t["unavailable"]]
    for t in down:
        lines.append(f"- **{t['label']} could not run**: {t['unavailable']}")
    if down:
        lines.append("")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.rows:
        floor = floors.get(row.floor)
        cols = [row.title, row.unit,
                f"{_fmt(floor.summary['median'])} ({row.floor.removeprefix('floor_')})" if floor and floor.summary else ""]
        for name in names:
            cols.append(cell_text(row.cells.get(name)))
            if name != "dockyard" and "dockyard" in names:
                r = ratio(report, row, name)
                cols.append(("—" if r is None else f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cols) + " |")
    if report.floor:
        lines += ["", "The floor (the machine's own cost for the pieces a container start is made of):", "",
                  "| floor | unit | median (min–max) |", "|---|---|---|"]
    for row in report.floor:
        lines.append(f"| {row.title} | {row.unit} | {cell_text(row.cells.get('floor'))} |")
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> str:
    """Bars of Dockyard's ratio to each reference on a log axis; without Dockyard figures, the
    references' absolute medians. Returns '' or why no plot was written."""
    try:
        os.environ.setdefault("MPLBACKEND", "Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (.venv/bin/pip install matplotlib)"
    refs = references(report)
    series: dict[str, list[float | None]] = {}
    rows = report.rows
    ratios = any(ratio(report, r, ref) for r in rows for ref in refs)
    if ratios:
        series = {f"Dockyard / {ref}": [ratio(report, r, ref) for r in rows] for ref in refs}
        xlabel, title = "ratio (log scale; < 1: Dockyard is faster or smaller)", "Dockyard vs references"
    else:
        for t in report.targets:
            cells = [r.cells.get(t["name"]) for r in rows]
            series[t["label"]] = [c.summary["median"] if c and c.summary else None for c in cells]
        xlabel, title = "median (log scale; ms or MiB as in the table)", "absolute figures"
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(rows) * max(len(series), 1) + 1.5))
    height = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ys = [j + i * height for j in range(len(rows))]
        if ratios:  # bars grow from 1 (parity) to the ratio, left when faster or smaller
            ax.barh(ys, [v - 1 if v else 0 for v in values], left=1, height=height, label=label)
        else:
            ax.barh(ys, [v or 0 for v in values], height=height, label=label)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(rows))])
    ax.set_yticklabels([f"{r.title} [{r.unit}]" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    if ratios:
        ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(f"{title} ({report.meta['started']})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


def write(report: Report, json_path: Path, md_path: Path, plot_path: Path | None) -> list[str]:
    notes = []
    for path in (json_path, md_path, plot_path):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(to_json(report), indent=1))
    md_path.write_text(to_markdown(report))
    if plot_path is not None:
        why = plot(report, plot_path)
        if why:
            notes.append(f"no plot: {why}")
    return notes

