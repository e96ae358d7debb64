"""Signalling a running container: Docker's signal names, the kill that marks a user's stop,
and stop's signal-then-SIGKILL (used by stop, restart, rm -f and a daemon shutdown)."""

from __future__ import annotations

import asyncio
import signal as signals

from dockyard import errdefs
from dockyard.daemon.containers.core import ContainerCore, Running, log
from dockyard.daemon.containers.record import ContainerRecord

DEFAULT_STOP_TIMEOUT = 10


def parse_signal(value: str | int | None, default: str = "SIGKILL") -> int:
    """"SIGKILL", "KILL", "kill" or "9" -> 9; Docker's "Invalid signal: x" otherwise."""
    text = str(value if value not in (None, "") else default).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            base, _, offset = name[3:].partition("+")
            if not offset:
                base, _, offset = name[3:].partition("-")
                offset = f"-{offset}" if offset else "0"
            number = (signals.SIGRTMIN if base == "RTMIN" else signals.SIGRTMAX) + int(offset or 0)
            return int(number)
        try:
            return int(signals.Signals[name])
        except KeyError:
            pass
    raise errdefs.InvalidParameter(f"Invalid signal: {value}")


async def send_signal(core: ContainerCore, rec: ContainerRecord, running: Running, number: int) -> None:
    # moby's killWithSignal: the user stopped it (unless-stopped stays down, also after a
    # daemon restart), and the exit this signal causes never restarts
    if not core.shutting_down and not rec.manually_stopped:
        rec.manually_stopped = True
        core.store.save(rec)
    if (number == signals.SIGKILL or not rec.config.stop_signal
            or number == parse_signal(rec.config.stop_signal, default="SIGTERM")):
        running.exit_on_next = True
    await running.handle.kill(number, all_processes=False)
    core.emit(rec, "kill", signal=str(number))
    if number == signals.SIGKILL and rec.state.paused:
        await running.handle.resume()  # a frozen process only dies once thawed


async def stop_running(core: ContainerCore, rec: ContainerRecord, running: Running, timeout: int | None,
                       signal: str | None) -> None:
    """The stop signal, then SIGKILL after ``timeout`` seconds (negative: wait for ever); returns
    once the exit is recorded."""
    if timeout is None:
        timeout = rec.config.stop_timeout if rec.config.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
    number = parse_signal(signal or rec.config.stop_signal, default="SIGTERM")
    if number != signals.SIGKILL:
        try:
            await send_signal(core, rec, running, number)
            await asyncio.wait_for(running.exited.wait(), None if timeout < 0 else timeout)
            return
        except asyncio.TimeoutError:
            pass
        except errdefs.DockyardError as e:
            log.info("container %s: stop signal failed (%s), killing", rec.id, e)
    if not running.exited.is_set():
        try:
            await send_signal(core, rec, running, signals.SIGKILL)
        except errdefs.DockyardError:
            if running.exited.is_set():
                return
            raise
        await running.exited.wait()
