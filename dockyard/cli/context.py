"""What every command gets (its name, the lazily built API client) and the exit-status error."""

from __future__ import annotations

PROG = "dockyard"
VERSION = "0.1.0"


class StatusError(Exception):
    """Exit with ``code``, after printing ``message`` (if any) to stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Context:
    def __init__(self, name: str, host: str | None, tls_flags: dict[str, object]) -> None:
        self.name = name
        self._host = host
        self._tls_flags = tls_flags
        self._client = None

    @property
    def client(self):  # noqa: ANN201 - typed in dockyard.cli.client, imported lazily
        if self._client is None:
            from dockyard.cli.client import from_environment

            self._client = from_environment(self._host, self._tls_flags)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
