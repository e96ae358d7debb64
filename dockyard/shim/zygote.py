"""The zygote: a pre-loaded, single-threaded Python process that forks shims.

The daemon is threaded (asyncio plus executors) and must never fork, and a fresh
interpreter per container costs tens of milliseconds of imports. So the daemon
starts this process once; it imports everything a shim needs, freezes the GC
(so forked children do not dirty the shared object pages) and waits on
``zygote.sock``. Shims are made by a double fork: the middle child calls ``setsid``
and exits at once, so the shim is re-parented away from the zygote and outlives it
and the daemon. One such process is always made ahead (the spare: its forks,
``setsid`` and fd closing cost ~4 ms that a start would wait for), with its create helper
(``shim.Helper``); a ``spawn`` request (``dockyard.shim.protocol``) hands the helper the
connection (SCM_RIGHTS), which reads the request, passes both on to the spare and begins the
create, and the zygote makes the next spare while the shim works. The shim reports its pid
and the create result on the connection itself, so the zygote never waits on a container.
A spare and its helper exit when the zygote goes (EOF on the helper's socketpair).

Run as ``python -m dockyard.shim.zygote --socket PATH [--preload MODULE]...``; it prints
``ready`` once listening and exits when its stdin (a pipe from the daemon) closes.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import socket
import sys
import time
import traceback
from pathlib import Path

from dockyard.runtime import pages
from dockyard.runtime import syscalls as sc
from dockyard.shim import protocol as P
from dockyard.shim import shim
from dockyard.shim.sockpath import short_path

SPARE_DELAY = 0.035  # after a spawn, how long the zygote waits before forking the next spare


class Zygote:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        Path(socket_path).unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with short_path(Path(socket_path)) as reachable:
            self.listener.bind(reachable)
        os.chmod(socket_path, 0o600)
        self.listener.listen(128)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.sel.register(0, selectors.EVENT_READ)  # the daemon's pipe: EOF means it is gone
        self.spare: socket.socket | None = None  # our end of the pair of the next shim
        self.spare_due = 0.0  # when to fork the next spare (monotonic)
        # the pages our prepared inits and create helpers write: learned anew for our layout
        shim.place_page_lists(os.path.dirname(socket_path), os.getpid())

    def serve(self) -> None:
        while True:
            timeout = None
            if self.spare is None:
                timeout = self.spare_due - time.monotonic()
                if timeout <= 0:
                    self.spare = self._fork_spare()
                    timeout = None
            for key, _ in self.sel.select(timeout):
                if key.fd == 0:
                    if not os.read(0, 4096):
                        self.close()
                        return
                    continue
                conn, _ = self.listener.accept()
                try:
                    self._hand_over(conn)
                except Exception as err:
                    try:
                        conn.sendall(P.json_frame(P.REPLY, P.error_reply(err)))
                    except OSError:
                        pass
                finally:
                    conn.close()

    def close(self) -> None:
        self.sel.close()
        self.listener.close()
        if self.spare is not None:
            self.spare.close()  # EOF: the spare leaves
            self.spare = None
        Path(self.socket_path).unlink(missing_ok=True)
        for path in shim.PAGE_LISTS.values():
            Path(path).unlink(missing_ok=True)

    def _hand_over(self, conn: socket.socket) -> None:
        """Give ``conn`` to the spare's create helper; a dead spare is replaced once."""
        # the next spare waits until the shim just handed over is past its create and start
        # (and, for a short-lived container, its exit and cleanup: ~30 ms here): forking it
        # meanwhile would take CPU from them
        self.spare_due = time.monotonic() + SPARE_DELAY
        for _ in range(2):
            spare, self.spare = self.spare or self._fork_spare(), None
            try:
                socket.send_fds(spare, [b"c"], [conn.fileno()])
                return
            except OSError:  # it was killed: make another
                continue
            finally:
                spare.close()
        raise OSError("zygote: no shim process could be made")

    def _fork_spare(self) -> socket.socket:
        """Double fork a spare; returns our end of the pair on which its create helper waits for
        a spawn connection."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        gc.freeze()  # objects made since the last fork join the shared, never-scanned set
        middle = sc.fork()
        if middle == 0:
            code = 1
            try:
                os.setsid()
                if sc.fork() != 0:
                    os._exit(0)
                ours.close()
                self._become_shim(theirs)
                code = _spare(theirs)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        os.waitpid(middle, 0)
        return ours

    def _become_shim(self, keep_sock: socket.socket) -> None:
        """Drop everything of the zygote's but ``keep_sock``."""
        self.sel.close()
        self.listener.close()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        keep = keep_sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)


def _spare(zygote: socket.socket) -> int:
    """Life of a spare: fork its create helper, which takes the spawn connection from the
    ``zygote`` pair and passes it on with the request; be that connection's shim. The pages a
    shim writes to set itself up are copied ahead while it waits (listed by the zygote's first
    helper, ``dockyard.runtime.pages``): on the start path they would be copy-on-write faults,
    taking the CPU from the helper and the init."""
    helper = shim.Helper(zygote)
    zygote.close()  # the helper's now
    listing = shim.PAGE_LISTS.get("shim")
    if listing is not None:
        pages.populate(listing)
    conn, payload = helper.spawn()
    if conn is None:
        helper.close()
        return 0  # the zygote is gone
    try:
        request = json.loads(payload)
        if request.get("op") != "spawn":
            raise ValueError(f"zygote: unknown request {request.get('op')!r}")
    except Exception as err:
        helper.close()
        try:
            conn.sendall(P.json_frame(P.REPLY, P.error_reply(err)))
        except OSError:
            pass
        return 1
    return shim.run(conn, request["request"], helper, request.get("start"))


def _parse_args(argv: list[str]) -> tuple[str, list[str]]:
    """``--socket PATH [--preload MODULE]...`` -> (socket path, modules). By hand: argparse
    would be ~1.6 MB of the zygote's memory, and of every shim's."""
    socket_path, preload = None, []
    pairs = iter(argv)
    for flag in pairs:
        value = next(pairs, None)
        if value is None or flag not in ("--socket", "--preload"):
            raise SystemExit(f"usage: python -m dockyard.shim.zygote --socket PATH [--preload MODULE]... "
                             f"(bad argument {flag!r})")
        if flag == "--socket":
            socket_path = value
        else:
            preload.append(value)  # another module to import before forking (e.g. a test runtime)
    if socket_path is None:
        raise SystemExit("usage: python -m dockyard.shim.zygote --socket PATH [--preload MODULE]...")
    return socket_path, preload


def main(argv: list[str] | None = None) -> int:
    socket_path, preload = _parse_args(sys.argv[1:] if argv is None else argv)
    for name in preload:  # dockyard.shim.shim already imported what a shim uses
        importlib.import_module(name)
    shim.warm_up()
    zygote = Zygote(socket_path)
    gc.freeze()
    sc.malloc_trim()  # what the imports and the warm-up freed: ~1 MB of the zygote's RSS
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
