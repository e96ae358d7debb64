"""Error classes that cross package boundaries.

Every error a user can meet is one of these. The API maps the class to an HTTP
status in exactly one place (``dockyard.api.errors``); nothing below the API
knows about status codes. Messages follow Docker's wording where Docker has one
("No such container: abc", "Conflict. The container name ... is already in use").
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class. ``str(err)`` is the message the user sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParameter(DockyardError):
    """Bad input from the client (400)."""


class NotFound(DockyardError):
    """The object asked for does not exist (404)."""


class Conflict(DockyardError):
    """The request conflicts with the object's current state (409)."""


class NotModified(DockyardError):
    """Nothing to do: already in the asked state (304)."""


class Forbidden(DockyardError):
    """Not allowed, whatever the state (403)."""


class Unauthorized(DockyardError):
    """Credentials missing or wrong (401)."""


class Unavailable(DockyardError):
    """A needed service is not there (503)."""


class NotImplementedFeature(DockyardError):
    """This daemon does not support the asked feature on this machine (501)."""


class System(DockyardError):
    """A real internal fault: the kernel or the disk said no (500)."""


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")
