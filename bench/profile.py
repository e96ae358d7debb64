"""Where the time and memory of one case go in Dockyard, for whoever sets out to speed it up.

CPU: py-spy attaches to the running daemon (and, with --subprocesses, the shims and helpers below
it) while the case runs, and writes a flame graph SVG. It samples from outside, so the daemon needs
no change and no restart; pyinstrument would have to run inside it. Memory: the PSS of every
process in the daemon's tree after the last run (with what the case set up still in place), and
the daemon's largest mappings.
py-spy is installed into the venv on first use."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import procs
from bench.cases import Case
from bench.targets import Target


def _py_spy() -> str:
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        print("bench: installing py-spy into the venv (pip install py-spy)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(path) if path.exists() else shutil.which("py-spy") or "py-spy"


def memory_breakdown(target: Target) -> str:
    lines = [f"# memory of {target.label} (pid {target.daemon_pid}) and the processes below it", "",
             "PSS KiB   RSS KiB   pid      command"]
    for pid in procs.descendants(target.daemon_pid):
        lines.append(f"{procs.pss_kib(pid):>8}  {procs.rss_kib(pid):>8}  {pid:<7}  {procs.command(pid)}")
    shims = {cid: procs.supervisors_of(target.api.inspect_container(cid)["State"]["Pid"], target.core_pids)
             for cid in target.containers}
    if shims:
        lines += ["", "# per-container supervisors of the containers running now (detached from the daemon)", ""]
        for cid, pids in shims.items():
            lines += [f"{procs.pss_kib(p):>8}  {procs.rss_kib(p):>8}  {p:<7}  [{cid[:12]}] {procs.command(p)}"
                      for p in pids]
    lines += ["", "# largest mappings of the daemon (PSS KiB)", ""]
    lines += [f"{kib:>8}  {name}" for name, kib in procs.top_mappings(target.daemon_pid)]
    return "\n".join(lines) + "\n"


def run(case: Case, target: Target, runs: int, outdir: Path) -> list[Path]:
    """Run the case `runs` times on target under py-spy; returns the files written."""
    outdir.mkdir(parents=True, exist_ok=True)
    svg, mem = outdir / f"profile-{case.name}.svg", outdir / f"memory-{case.name}.txt"
    spy = subprocess.Popen([_py_spy(), "record", "--pid", str(target.daemon_pid), "--subprocesses",
                            "--rate", "500", "--output", str(svg), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1)  # py-spy attaches before the first request
    state = case.setup(target)
    try:
        for i in range(runs):
            case.measure(target, state)
            if i == runs - 1:
                mem.write_text(memory_breakdown(target))
    finally:
        case.teardown(target, state)
        target.remove_containers()
        spy.send_signal(signal.SIGINT)  # py-spy writes the flame graph when interrupted
        _, err = spy.communicate(timeout=60)
    if not svg.exists():
        print(f"bench: py-spy wrote no profile: {err.strip()[-300:]}", file=sys.stderr)
        return [mem]
    return [svg, mem]
