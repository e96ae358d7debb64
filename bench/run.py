"""Entry point: start the targets, run every case on each (warm-up, then runs alternating A B A B so
machine drift hits all alike), measure the floor, write JSON + Markdown + PNG, stop what it started.

    .venv/bin/python -m bench             # full: Dockyard, docker.io and podman (installed by apt)
    .venv/bin/python -m bench --quick     # CI: Dockyard only, 2 runs, no warm-up, no references
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import requests

from bench import cases, catalog, floor, references, report, targets
from bench.targets import Target

RESULTS = Path(__file__).resolve().parent / "results"
ALL_TARGETS = ["dockyard", "docker.io", "podman"]
# What a target answering "no" looks like; anything else is a bug in the bench and stops it.
DAEMON_ERRORS = (RuntimeError, docker.errors.DockerException, requests.RequestException,
                 subprocess.TimeoutExpired)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few iterations, Dockyard only (what CI runs)")
    p.add_argument("--runs", type=int, help="timed runs per case and target (default 5; quick: 2)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 1; quick: 0)")
    p.add_argument("--settle", type=float, help="seconds of pause after each measurement, so what a "
                   "target does in the background after one (a removal, a shim's exit) does not "
                   "land in the next target's (default 0.25; quick: 0)")
    p.add_argument("--cases", help="comma-separated case names (default: all): " + ",".join(catalog.BY_NAME))
    p.add_argument("--targets", help="comma-separated from " + ",".join(ALL_TARGETS) + " (quick: dockyard)")
    p.add_argument("--no-floor", action="store_true", help="skip the floor measurements")
    p.add_argument("--dockyard-host", help="DOCKER_HOST of a running dockyardd (default: start a private one)")
    p.add_argument("--json", type=Path, default=RESULTS / "results.json")
    p.add_argument("--md", type=Path, default=RESULTS / "results.md")
    p.add_argument("--plot", type=Path, default=RESULTS / "ratios.png")
    p.add_argument("--profile", metavar="CASE",
                   help="after the runs, profile CASE on Dockyard with py-spy (CPU) and smaps (memory)")
    args = p.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    args.settle = args.settle if args.settle is not None else (0.0 if args.quick else 0.25)
    args.targets = args.targets.split(",") if args.targets else (["dockyard"] if args.quick else ALL_TARGETS)
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    args.cases = args.cases.split(",") if args.cases else list(catalog.BY_NAME)
    unknown = set(args.cases) - set(catalog.BY_NAME)
    if args.profile and args.profile not in catalog.BY_NAME:
        unknown.add(args.profile)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}; known: {', '.join(catalog.BY_NAME)}")
    return args


def start_targets(args: argparse.Namespace) -> list[Target]:
    started: list[Target] = []
    if "dockyard" in args.targets:
        say("starting Dockyard" + (f" at {args.dockyard_host}" if args.dockyard_host else " (private dockyardd)"))
        started.append(targets.dockyard_remote(args.dockyard_host) if args.dockyard_host
                       else targets.dockyard_local())
    wanted = [t for t in args.targets if t != "dockyard"]
    install_error = references.install() if wanted else ""
    for name in wanted:
        say(f"starting {name}")
        if install_error:
            started.append(Target(name, name, unavailable=install_error))
        else:
            started.append(references.docker_io() if name == "docker.io" else references.podman())
    for t in started:
        if t.unavailable:
            say(f"{t.label}: cannot run: {t.unavailable}")
    return started


def run_case(case: cases.Case, live: list[Target], args: argparse.Namespace) -> list[report.Row]:
    cells = {m.name: {} for m in case.metrics}
    for t in live:
        for m in case.metrics:
            cells[m.name][t.name] = report.Cell(note=t.cannot.get(case.name, "") or t.cannot.get(m.name, ""))
    running = [t for t in live if not cells[case.metrics[0].name][t.name].note]

    def fail(t: Target, what: str, exc: Exception) -> None:
        for m in case.metrics:
            cells[m.name][t.name].note = f"{what} failed: {exc}"[:300]
        running.remove(t)

    states = {}
    for t in list(running):
        try:
            states[t.name] = case.setup(t)
        except DAEMON_ERRORS as exc:
            fail(t, "setup", exc)
    for _ in range(args.warmup):
        for t in list(running):
            try:
                case.measure(t, states[t.name])
            except DAEMON_ERRORS as exc:
                fail(t, "warm-up", exc)
            time.sleep(args.settle)
    for _ in range(args.runs):
        for t in list(running):  # A B A B: each run visits every target before the next run
            try:
                for name, value in case.measure(t, states[t.name]).items():
                    cells[name][t.name].values.append(value)
            except DAEMON_ERRORS as exc:
                fail(t, "run", exc)
            time.sleep(args.settle)
    for t in live:
        try:
            if t.name in states:
                case.teardown(t, states[t.name])
            t.remove_containers()  # also what a failed setup or run left behind
        except DAEMON_ERRORS as exc:
            say(f"  {t.name}: teardown failed: {exc}")
    rows = [report.Row(m.name, m.title, m.unit, cells[m.name], m.floor) for m in case.metrics]
    for row in rows:
        say("  " + row.title + ": " + ", ".join(f"{n} {report.cell_text(c)}" for n, c in row.cells.items()))
    return rows


def run_floor(args: argparse.Namespace) -> list[report.Row]:
    try:
        bundle = floor.RuncBundle()
    except (OSError, subprocess.CalledProcessError) as exc:
        say(f"floor: no runc bundle: {exc}")
        bundle = None
    ping = floor.PingServer()
    rows = []
    try:
        for item in floor.items(bundle, ping):
            cell = report.Cell()
            try:
                for i in range(args.warmup + args.runs):
                    value = item.measure()
                    if i >= args.warmup:
                        cell.values.append(value)
            except DAEMON_ERRORS as exc:
                cell.note = str(exc)[:300]
            rows.append(report.Row(item.name, item.title, "ms", {"floor": cell}))
            say(f"  {item.title}: {report.cell_text(cell)}")
    finally:
        ping.close()
        if bundle is not None:
            bundle.close()
    return rows


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (CI timeout) must still stop the daemons the bench started and free their mounts.
    signal.signal(signal.SIGTERM, _interrupt)
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    live: list[Target] = []
    try:
        live = start_targets(args)
        if args.quick and any(t.name == "dockyard" and t.unavailable for t in live):
            say("quick mode needs Dockyard, which cannot run")
            return 3
        ready = [t for t in live if not t.unavailable]
        for t in ready:
            t.quick = args.quick
        rows = []
        for name in args.cases:
            say(f"case {name}")
            rows += run_case(catalog.BY_NAME[name], ready, args)
        for t in live:
            if t.unavailable:
                for row in rows:
                    row.cells[t.name] = report.Cell(note="could not start")
        floor_rows = [] if args.no_floor else run_floor(args)
        meta = {"started": started_at, "runs": args.runs, "warmup": args.warmup, "quick": args.quick,
                "host": f"{platform.node()}, Linux {platform.release()}, {_cpus()} CPUs",
                "client": subprocess.run([targets.DOCKER_CLI, "--version"], capture_output=True,
                                         text=True).stdout.strip()}
        result = report.Report(meta, [{"name": t.name, "label": t.label, "docker_host": t.docker_host,
                                       "unavailable": t.unavailable} for t in live], rows, floor_rows)
        for note in report.write(result, args.json, args.md, args.plot):
            say(note)
        print(report.to_markdown(result))
        say(f"wrote {args.json}, {args.md}" + (f", {args.plot}" if args.plot else ""))
        if args.profile:
            from bench import profile
            dockyard = next((t for t in ready if t.name == "dockyard"), None)
            if dockyard is None:
                say("--profile needs a running Dockyard")
                return 1
            for path in profile.run(catalog.BY_NAME[args.profile], dockyard, args.runs, args.json.parent):
                say(f"profile written: {path}")
        return 0
    except KeyboardInterrupt:
        say("interrupted; stopping the daemons the bench started")
        return 130
    finally:
        for t in live:
            t.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cpus() -> int:
    return len(os.sched_getaffinity(0))
