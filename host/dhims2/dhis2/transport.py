"""Sending requests to one DHIS2 server: retries with backoff, redirect refusal, body caps, and
the translation of every unusable answer into the matching Dhis2Error.

Nothing here knows what the requests mean; the client (client.py) does.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

from dhims2.dhis2.credentials import Credentials, SameOriginAuth
from dhims2.dhis2.errors import (
    BadServerResponse,
    Dhis2Error,
    InvalidInput,
    NotSignedIn,
    RequestRejected,
    ServerError,
    ServerUnreachable,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_LOGIN_MARKERS = ("login", "dhis-web-commons/security")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter between `attempts` tries."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise InvalidInput("retry policy: attempts must be a whole number")
        if self.attempts < 1:
            raise InvalidInput("retry policy: attempts must be at least 1")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise InvalidInput(f"retry policy: {name} must be a number of seconds >= 0")

    def backoff(self, attempt: int) -> float:
        """Delay after failed try number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    location: str | None = None
    retry_after: float | None = None


class Transport:
    """One server, one set of credentials, one connection pool."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        server_origin: tuple[str, str, int],
        *,
        timeout: tuple[float, float],
        retry: RetryPolicy,
        user_agent: str,
    ) -> None:
        self.base_url = base_url
        self._timeout = _checked_timeout(timeout)
        self._retry = retry
        self._session = requests.Session()
        # Basic auth keeps DHIS2's session cookie so the server does not open a session per
        # request; every other kind carries its own credential and must not pick up strays.
        keep_cookies = credentials.kind == "basic"
        self._session.cookies.set_policy(
            http.cookiejar.DefaultCookiePolicy(allowed_domains=None if keep_cookies else [])
        )
        self._session.headers.update(
            {
                "Accept": "application/json",
                "User-Agent": user_agent,
                # DHIS2 answers 401 instead of redirecting to its login page for XHR requests.
                "X-Requested-With": "XMLHttpRequest",
            }
        )
        self._auth = SameOriginAuth(credentials, server_origin)

    def close(self) -> None:
        self._session.close()

    def get_json(self, path: str, *, params: dict | None = None, what: str) -> Any:
        return json_body(self.exchange("GET", path, params=params), what)

    def exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> Answer:
        """Send one request, retrying what may succeed later; return an answer with an accepted
        status or raise the matching Dhis2Error."""
        url = f"{self.base_url}/api/{path}"
        log_path = f"/api/{path}"
        data = None
        headers = {}
        if body is not None:
            data = _json_bytes(body)
            headers["Content-Type"] = "application/json"
        # POSTs are retried too, even after the server may have received them: events carry
        # client-minted UIDs and go out with CREATE_AND_UPDATE, so a re-send updates the same
        # events instead of creating duplicates.
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                answer = self._send_once(method, url, params, data, headers)
            except requests.exceptions.SSLError as exc:
                # The TLS detail (certificate, protocol) is for whoever reads the log.
                logger.warning("%s %s: secure connection failed: %s", method, log_path, exc)
                raise ServerUnreachable(
                    f"the secure connection to {self.base_url} failed (certificate or TLS problem);"
                    " check the server address and the computer's date"
                ) from exc
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                logger.info(
                    "%s %s failed after %.0f ms: %s",
                    method,
                    log_path,
                    _ms_since(started),
                    type(exc).__name__,
                )
                failure: Dhis2Error = ServerUnreachable(
                    f"could not reach {self.base_url} (no answer or connection lost);"
                    " check the internet connection and try again"
                )
                delay = self._retry.backoff(attempt)
            except requests.exceptions.ContentDecodingError as exc:
                logger.warning("%s %s: corrupt compressed body: %s", method, log_path, exc)
                raise BadServerResponse(
                    f"{log_path}: the answer's compressed body is corrupt"
                ) from exc
            except requests.exceptions.RequestException as exc:
                logger.warning("%s %s: unreadable answer: %r", method, log_path, exc)
                raise BadServerResponse(
                    f"{log_path}: the answer could not be read ({type(exc).__name__})"
                ) from exc
            else:
                logger.debug(
                    "%s %s -> %d in %.0f ms", method, log_path, answer.status, _ms_since(started)
                )
                if answer.status in accept:
                    return answer
                failure = self._failure_for(answer, path)
                if answer.status not in _RETRYABLE_STATUSES:
                    raise failure
                delay = self._retry.backoff(attempt)
                if answer.retry_after is not None:
                    delay = min(answer.retry_after, self._retry.max_delay)
            if attempt >= self._retry.attempts:
                raise failure
            logger.info(
                "retrying %s %s in %.2f s (attempt %d of %d failed: %s)",
                method,
                log_path,
                delay,
                attempt,
                self._retry.attempts,
                failure.code if failure.status is None else f"HTTP {failure.status}",
            )
            time.sleep(delay)

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
    ) -> Answer:
        response = self._session.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=self._auth,
            timeout=self._timeout,
            allow_redirects=False,
            stream=True,
        )
        with response:
            if response.is_redirect:
                return Answer(
                    response.status_code, "", b"", location=response.headers.get("Location", "")
                )
            return Answer(
                status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                body=_capped_body(response),
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
            )

    def _failure_for(self, answer: Answer, path: str) -> Dhis2Error:
        status = answer.status
        if answer.location is not None:
            return _redirect_failure(answer, self.base_url)
        if status == 401:
            return NotSignedIn(
                "DHIS2 did not accept the sign-in (HTTP 401); sign in to DHIMS2 again or check"
                " the token, username and password"
            )
        if status == 429:
            return ServerError(
                "DHIS2 is asking us to slow down (HTTP 429); try again in a few minutes",
                status=status,
            )
        if status in _RETRYABLE_STATUSES:
            return ServerError(
                f"DHIS2 or its gateway is unavailable (HTTP {status}); try again later",
                status=status,
            )
        if status >= 500:
            return ServerError(
                f"DHIS2 had an internal problem (HTTP {status}); try again later, and tell the"
                " DHIMS2 administrators if it persists",
                status=status,
            )
        return rejection(answer, path)


def _checked_timeout(timeout: object) -> tuple[float, float]:
    if (
        not isinstance(timeout, (tuple, list))
        or len(timeout) != 2
        or not all(_is_number(part) and 0 < part < float("inf") for part in timeout)
    ):
        raise InvalidInput("timeout must be two positive numbers of seconds: (connect, read)")
    return (float(timeout[0]), float(timeout[1]))


def _json_bytes(body: object) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        raise InvalidInput(
            "the events cannot be sent as JSON: values must be text, finite numbers, true/false,"
            " null, lists or objects"
        ) from None


def _capped_body(response: requests.Response) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(response.url)
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large(response.url)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(url: str) -> BadServerResponse:
    return BadServerResponse(
        f"{urlsplit(url).path}: the answer is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB"
    )


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _redirect_failure(answer: Answer, base_url: str) -> Dhis2Error:
    target = urlsplit(answer.location or "")
    if any(marker in target.path.lower() for marker in _LOGIN_MARKERS):
        return NotSignedIn(
            "DHIS2 sent us to its login page: the session has ended or the credentials are"
            " missing; sign in to DHIMS2 again"
        )
    shown = f"{target.scheme}://{target.netloc}{target.path}" if target.netloc else target.path
    return BadServerResponse(
        f"DHIS2 redirected the request to {shown or 'an unnamed address'} (HTTP {answer.status});"
        f" redirects are not followed, check that {base_url} is the server's exact address",
        status=answer.status,
    )


def rejection(answer: Answer, path: str) -> RequestRejected:
    detail = server_code = None
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            detail = body["message"][:300]
        if isinstance(body.get("errorCode"), str):
            server_code = body["errorCode"]
    hint = {
        403: "the signed-in user is not allowed to do this",
        404: "not found: check the server address",
    }.get(answer.status)
    text = f"DHIS2 refused /api/{path.split('?')[0]} (HTTP {answer.status})"
    for extra in (detail, hint):
        if extra:
            text += f": {extra}"
    return RequestRejected(text, status=answer.status, server_code=server_code)


def json_body(answer: Answer, what: str) -> Any:
    if "html" in answer.content_type.lower() or answer.body.lstrip()[:1] == b"<":
        raise NotSignedIn(
            f"DHIS2 answered the {what} request with a web page instead of data, as it does when"
            " the sign-in has ended; sign in to DHIMS2 again"
        )
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        raise BadServerResponse(f"{what}: the answer is not valid JSON") from None


def json_object(answer: Answer, what: str) -> dict:
    body = json_body(answer, what)
    if not isinstance(body, dict):
        raise BadServerResponse(f"{what}: expected an object, got {type(body).__name__}")
    return body
