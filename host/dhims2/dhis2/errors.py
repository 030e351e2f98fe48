"""The errors the DHIS2 client raises: one family, each with a stable code shown to users."""

from __future__ import annotations

from typing import ClassVar

from dhims2.errors import Dhims2Error, ExitStatus


class Dhis2Error(Dhims2Error):
    """Base of every error the client raises; `code` is stable and shown to users."""

    code: ClassVar[str] = "DHIS2_ERROR"
    exit_status: ClassVar[ExitStatus] = ExitStatus.DHIS2_UNAVAILABLE
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidInput(Dhis2Error, ValueError):
    """A setting or argument we were given is unusable; nothing was sent."""

    code = "INVALID_INPUT"
    exit_status = ExitStatus.USAGE


class InsecureServer(Dhis2Error):
    """Plain http to a host other than this computer, without allow_insecure_http."""

    code = "INSECURE_SERVER"


class NotSignedIn(Dhis2Error):
    """401, a redirect to the login page, or a web page where data was expected."""

    code = "AUTH_REQUIRED"


class ServerUnreachable(Dhis2Error):
    """No answer (connection refused, reset or timed out), after the retries."""

    code = "SERVER_UNREACHABLE"
    retryable = True


class ServerError(Dhis2Error):
    """A 5xx or 429; gateway errors and 429 only after the retries."""

    code = "SERVER_ERROR"
    retryable = True


class BadServerResponse(Dhis2Error):
    """An answer we cannot use: not JSON, wrong shape, too large, or an unexpected redirect."""

    code = "BAD_SERVER_RESPONSE"


class RequestRejected(Dhis2Error):
    """Any other 4xx; `message` carries DHIS2's own message, `server_code` its errorCode."""

    code = "REQUEST_REJECTED"

    def __init__(self, message: str, *, status: int, server_code: str | None = None) -> None:
        super().__init__(message, status=status)
        self.server_code = server_code
