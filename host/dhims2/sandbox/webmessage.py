"""DHIS2's WebMessage envelope and the errors the API answers with it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def web_message(status_code: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "httpStatus": HTTPStatus(status_code).phrase,
        "httpStatusCode": status_code,
        "status": "OK" if status_code < 400 else "ERROR",
    }
    if message is not None:
        body["message"] = message
    body.update(extra)
    return body


class ApiError(Exception):
    """Answered as a WebMessage with this HTTP status; `extra` adds fields such as errorCode."""

    def __init__(self, status_code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return web_message(self.status_code, self.message, **self.extra)


class BadRequest(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, message, errorCode="E1005")
