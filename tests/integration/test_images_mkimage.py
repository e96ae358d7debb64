"""dockyard-mkimage: a deterministic busybox archive that our loader takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cmd import mkimage

pytestmark = pytest.mark.skipif(not mkimage.BUSYBOX.is_file(), reason="busybox-static not installed")


def test_busybox_archive_is_stable_and_loads(h):
    one, two = h.root / "one.tar", h.root / "two.tar"
    assert mkimage.main(["busybox", "-o", str(one)]) == 0
    out = subprocess.run([sys.executable, "-m", "dockyard.cmd.mkimage", "busybox", "-t", "bb:x"],
                         capture_output=True, check=True)
    two.write_bytes(out.stdout)
    assert mkimage.main(["busybox", "-o", str(two.with_suffix(".again"))]) == 0
    assert one.read_bytes() == two.with_suffix(".again").read_bytes()  # same bytes: same image ID
    with open(one, "rb") as f:
        assert [m.stream for m in h.service.load(f)] == ["Loaded image: busybox:latest\n"]
    with open(two, "rb") as f:
        assert [m.stream for m in h.service.load(f)] == ["Loaded image: bb:x\n"]
    info = h.service.resolve("busybox")
    assert h.service.resolve("bb:x").id == info.id
    assert info.config == {"Env": [mkimage.DEFAULT_PATH], "Cmd": ["sh"]}
    top = h.service.layer_dirs(info)[0]
    assert (top / "bin" / "busybox").is_file()
    assert (top / "bin" / "sh").readlink() == Path("/bin/busybox")
    assert (top / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "nobody:x:65534" in (top / "etc" / "passwd").read_text()
    assert all((top / d).is_dir() for d in ("root", "var", "home", "proc", "sys", "dev"))


def test_refuses_terminal_and_bad_names(capsys):
    assert mkimage.main(["busybox", "-t", "Bad", "-o", "/dev/null"]) == 1
    assert "must be lowercase" in capsys.readouterr().err


def test_load_into_a_running_daemon(h):
    """``--load`` posts the archive to the daemon's unix socket."""
    import asyncio
    import threading

    from aiohttp import web

    from dockyard.api.app import make_app
    from dockyard.api.routers import images as images_router

    socket_path = h.root / "api.sock"
    started = threading.Event()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(lambda app: images_router.setup(app, h.service)))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.UnixSite(runner, str(socket_path)).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert started.wait(10)
        out = subprocess.run([sys.executable, "-m", "dockyard.cmd.mkimage", "busybox", "--load",
                              "-H", f"unix://{socket_path}"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "Loaded image: busybox:latest\n"
        assert h.service.resolve("busybox").config["Cmd"] == ["sh"]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
