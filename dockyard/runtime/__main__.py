"""``python -m dockyard.runtime``: runc-like verbs over DockyardRuntime, for tests and comparison.

    python -m dockyard.runtime [--root DIR] create --bundle B [--pid-file F] [--console-socket S] ID
    python -m dockyard.runtime [--root DIR] start|pause|resume|state ID
    python -m dockyard.runtime [--root DIR] run --bundle B ID      (create, start, wait, delete; exits
                                                                    with the container's status)
    python -m dockyard.runtime [--root DIR] kill [--all] ID [SIGNAL]
    python -m dockyard.runtime [--root DIR] delete [--force] ID
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from dockyard import errdefs
from dockyard.oci.runtime_spec import OCI_VERSION
from dockyard.runtime import state, syscalls
from dockyard.runtime.linux import DockyardRuntime

DEFAULT_ROOT = "/run/dockyard-runtime"


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise errdefs.InvalidParameter(f"unknown signal {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockyard.runtime")
    parser.add_argument("--root", default=DEFAULT_ROOT)
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb in ("create", "run"):
        p = verbs.add_parser(verb)
        p.add_argument("--bundle", "-b", default=".")
        p.add_argument("--pid-file")
        p.add_argument("--console-socket")
        p.add_argument("id")
    for verb in ("start", "pause", "resume", "state"):
        verbs.add_parser(verb).add_argument("id")
    p = verbs.add_parser("kill")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p = verbs.add_parser("delete")
    p.add_argument("--force", "-f", action="store_true")
    p.add_argument("id")
    args = parser.parse_args(argv)

    runtime = DockyardRuntime(Path(args.root))
    try:
        if args.verb in ("create", "run"):
            console = Path(args.console_socket) if args.console_socket else None
            pid_file = Path(args.pid_file) if args.pid_file else None
            if args.verb == "create":
                runtime.create(args.id, Path(args.bundle), stdio=(0, 1, 2), console_socket=console, pid_file=pid_file)
                return 0
            # run: we wait for the init, so it must be re-parented to us if anything sits between
            syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
            pid = runtime.create(args.id, Path(args.bundle), stdio=(0, 1, 2), console_socket=console, pid_file=pid_file)
            try:
                runtime.start(args.id)
                _, status = os.waitpid(pid, 0)
            finally:
                runtime.delete(args.id, force=True)
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
        if args.verb == "start":
            runtime.start(args.id)
        elif args.verb == "pause":
            runtime.pause(args.id)
        elif args.verb == "resume":
            runtime.resume(args.id)
        elif args.verb == "state":
            st = runtime.state(args.id)
            record = state.load(str(Path(args.root) / args.id))
            print(json.dumps({"ociVersion": OCI_VERSION, "id": st.id, "pid": st.pid, "status": st.status,
                              "bundle": st.bundle, "rootfs": record.rootfs, "created": record.created}, indent=2))
        elif args.verb == "kill":
            runtime.kill(args.id, parse_signal(args.signal), all_processes=args.all)
        elif args.verb == "delete":
            runtime.delete(args.id, force=args.force)
    except errdefs.DockyardError as err:
        print(f"{args.verb}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
