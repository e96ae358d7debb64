"""Layer blobs from a registry into the content store.

A blob is streamed into an ingest file (``ContentStore.resumable_writer``), hashed as it
arrives and committed only when size and digest match: nothing unverified is ever visible.
A broken connection is retried with back-off (Docker's five attempts), resuming with a Range
request from the bytes already written when the registry supports it (a 200 answer means it
ignored the Range: the download starts over). A blob already in the content store (left by an
interrupted pull) is not fetched again, and a half-downloaded one survives a failed pull and
a daemon restart (even kill -9) in the ingest area: the next pull of it re-hashes that prefix
and asks for the rest. If the whole then fails verification (the kept prefix was damaged), it
is downloaded once more from byte 0.

``Downloads`` is daemon-wide: at most ``max-concurrent-downloads`` transfers at once, and
two pulls that need the same blob share one transfer. Each pull holds the blobs it uses
and releases them when done; the compressed blob is deleted once its layer is part of an
image (the layer store keeps the uncompressed diff), and kept after a failure, so the
next pull resumes from it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from dockyard import errdefs
from dockyard.daemon.distribution.progress import Meter
from dockyard.daemon.distribution.registry import BlobResponse, RepositoryAPI
from dockyard.distribution.transport import TLSFailed
from dockyard.storage.content import BlobWriter, ContentStore

_CHUNK = 1 << 20


@dataclass
class _Transfer:
    future: Future
    holders: int = 0
    watchers: list[Callable[[str, int], None]] = field(default_factory=list)  # (event, bytes)


class Downloads:
    def __init__(self, content: ContentStore, max_concurrent: int = 3, attempts: int = 5,
                 first_delay: float = 1.0, closing: threading.Event | None = None) -> None:
        self.content = content
        self.attempts = attempts
        self.first_delay = first_delay
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="download")
        self._lock = threading.Lock()
        self._transfers: dict[str, _Transfer] = {}
        self.closing = closing or threading.Event()  # set when the daemon stops

    def fetch(self, repo: RepositoryAPI, digest: str, size: int, meter: Meter | None) -> Future:
        """Start (or join) the transfer of a blob; the future's result is None once it is committed.
        The caller must ``release(digest, ...)`` when it no longer needs the blob."""
        with self._lock:
            transfer = self._transfers.get(digest)
            if transfer is None:
                future: Future = Future()
                transfer = self._transfers[digest] = _Transfer(future)
                if self.content.has(digest):
                    future.set_result(None)
                else:
                    self._pool.submit(self._run, repo, digest, size, transfer)
            transfer.holders += 1
            if meter is not None:
                transfer.watchers.append(_watcher(meter))
        return transfer.future

    def release(self, digest: str, consumed: bool) -> None:
        """Drop a hold; ``consumed``: the layer is registered, the compressed blob can go."""
        with self._lock:
            transfer = self._transfers.get(digest)
            if transfer is None:
                return
            transfer.holders -= 1
            if transfer.holders > 0:
                return
            del self._transfers[digest]
        if consumed:
            self.content.delete(digest)

    def shutdown(self) -> None:
        """Stop: queued transfers are cancelled, running ones end at their next chunk (the
        interpreter waits for pool threads at exit, so a long download would hold up the daemon)."""
        self.closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _notify(self, transfer: _Transfer, event: str, n: int = 0) -> None:
        with self._lock:
            watchers = list(transfer.watchers)
        for watch in watchers:
            try:
                watch(event, n)
            except errdefs.DockyardError:
                pass  # that client went away; the transfer goes on for the others

    def _run(self, repo: RepositoryAPI, digest: str, size: int, transfer: _Transfer) -> None:
        if transfer.future.set_running_or_notify_cancel():
            try:
                self._download(repo, digest, size, transfer)
            except OSError as e:  # the network is errdefs already: this is the disk
                transfer.future.set_exception(errdefs.System(f"failed to store blob {digest}: {e.strerror or e}"))
            except BaseException as e:
                transfer.future.set_exception(e)
            else:
                transfer.future.set_result(None)

    def _download(self, repo: RepositoryAPI, digest: str, size: int, transfer: _Transfer) -> None:
        writer = self.content.resumable_writer(digest, size)
        committed = False
        try:
            if writer.resumed_from:
                self._notify(transfer, "bytes", writer.resumed_from)
            self._transfer(repo, digest, size, transfer, writer)
            self._notify(transfer, "verify")
            try:
                writer.commit(digest, size)
            except errdefs.InvalidParameter:
                if not writer.resumed_from:
                    raise errdefs.InvalidParameter(
                        f"filesystem layer verification failed for digest {digest}") from None
                # the kept prefix was not this blob's (a torn write, a crash of the machine):
                # one more time from byte 0
                writer = self.content.resumable_writer(digest, size)
                self._notify(transfer, "reset")
                self._transfer(repo, digest, size, transfer, writer)
                self._notify(transfer, "verify")
                try:
                    writer.commit(digest, size)
                except errdefs.InvalidParameter:
                    raise errdefs.InvalidParameter(
                        f"filesystem layer verification failed for digest {digest}") from None
            committed = True
        finally:
            if not committed:
                writer.keep()  # a partial download stays for the next pull; a bad one is gone already

    def _transfer(self, repo: RepositoryAPI, digest: str, size: int, transfer: _Transfer, writer: BlobWriter) -> None:
        """Fill ``writer`` up to ``size`` bytes from the registry, retrying and resuming."""
        if writer.size >= size:
            return  # everything arrived before the interruption: only the commit was missing
        attempt = 0
        while True:
            try:
                response = repo.open_blob(digest, writer.size)
                try:
                    if writer.size and (response.status != 206 or _range_start(response) != writer.size):
                        # the registry ignored the Range (or answered another one): start over
                        writer.reset()
                        self._notify(transfer, "reset")
                        if response.status == 206:
                            raise errdefs.Unavailable(f"the registry sent another range of {digest}")
                    for chunk in response.iter_chunks(_CHUNK):
                        if self.closing.is_set():
                            raise _Closing("the daemon is shutting down")
                        writer.write(chunk)
                        if writer.size > size:
                            break
                        self._notify(transfer, "bytes", len(chunk))
                finally:
                    response.close(reuse=False)
                if writer.size < size:
                    raise errdefs.Unavailable(
                        f"unexpected EOF: got {writer.size} of {size} bytes of {digest}")
                return
            except errdefs.Unavailable as e:
                attempt += 1
                if attempt >= self.attempts or isinstance(e, (TLSFailed, _Closing)):  # no use retrying
                    raise
                delay = getattr(e, "retry_after", None)
                if delay is None:
                    delay = self.first_delay * (2 ** (attempt - 1))
                self._notify(transfer, "retry", int(delay))
                time.sleep(delay)


def _range_start(response: BlobResponse) -> int:
    """The first byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``); -1 if unreadable."""
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    try:
        return int(spec.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1

class _Closing(errdefs.Unavailable):
    pass


def _watcher(meter: Meter) -> Callable[[str, int], None]:
    def watch(event: str, n: int) -> None:
        if event == "bytes":
            meter.add(n)
        elif event == "reset":
            meter.reset()
        elif event == "retry":
            meter.status(f"Retrying in {max(n, 1)} second{'s' if n > 1 else ''}")
        elif event == "verify":
            meter.flush()
            meter.status("Verifying Checksum")
    return watch
