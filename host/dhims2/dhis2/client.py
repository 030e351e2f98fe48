"""The DHIS2 HTTP client: auth, system info, metadata, tracker import, jobs, reports, legacy events.

Callers see a few methods and the `Dhis2Error` family. Retries, credentials, redirect refusal,
body caps and shape checks all happen here, following docs/dhis2-tracker-api.md.
"""

from __future__ import annotations

import base64
import copy
import email.utils
import http.cookiejar
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from dhims2 import __version__
from dhims2.dhis2.uids import is_uid

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
TRACKER_IMPORT_SINCE = (2, 36, 0)
PROGRAM_FIELDS = (
    "id,name,programType,organisationUnits[id],programStages[id,name,programStageDataElements"
    "[compulsory,dataElement[id,code,name,formName,valueType,optionSet[id,options[code,name]]]]]"
)
ME_FIELDS = "id,username,organisationUnits[id,path]"

IMPORT_MODES = ("COMMIT", "VALIDATE")
IMPORT_STRATEGIES = ("CREATE", "UPDATE", "CREATE_AND_UPDATE", "DELETE")
ATOMIC_MODES = ("ALL", "OBJECT")
REPORT_STATUSES = ("OK", "WARNING", "ERROR")

_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_LOGIN_MARKERS = ("login", "dhis-web-commons/security")
_LOOPBACK_NAMES = ("localhost", "localhost.")
# RFC 6265 cookie-octet and RFC 7230 token68-ish characters: nothing that could split a header.
_HEADER_SAFE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$")
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")
_LEGACY_ERROR_CODE = "LEGACY_CONFLICT"


# --------------------------------------------------------------------------- errors


class Dhis2Error(Exception):
    """Base of every error the client raises; `code` is stable and shown to users."""

    code: ClassVar[str] = "DHIS2_ERROR"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidInput(Dhis2Error, ValueError):
    """A setting or argument we were given is unusable; nothing was sent."""

    code = "INVALID_INPUT"


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


# --------------------------------------------------------------------------- value types


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class Credentials:
    """One way to sign in. Secrets stay out of repr, logs and messages."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    session_cookie: str | None = None

    def __post_init__(self) -> None:
        for name in ("token", "username", "password", "session_cookie"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"credentials: {name} must be text")
        ways = [
            self.token is not None,
            self.username is not None or self.password is not None,
            self.session_cookie is not None,
        ]
        if sum(ways) != 1:
            raise InvalidInput(
                "credentials: give exactly one of a token, a username with a password,"
                " or a session cookie"
            )
        if self.token is not None and not _HEADER_SAFE.fullmatch(self.token):
            raise InvalidInput(
                "credentials: the token is empty or has spaces or control characters"
            )
        if self.session_cookie is not None and not _HEADER_SAFE.fullmatch(self.session_cookie):
            raise InvalidInput(
                "credentials: the session cookie is empty or has characters a cookie cannot hold"
            )
        if ways[1]:
            if not self.username or not self.password:
                raise InvalidInput("credentials: both a username and a password are needed")
            if ":" in self.username or any(ord(c) < 32 for c in self.username + self.password):
                raise InvalidInput(
                    "credentials: the username has a ':' or either has control characters"
                )

    @property
    def kind(self) -> str:
        if self.token is not None:
            return "token"
        if self.session_cookie is not None:
            return "session"
        return "basic"

    def __repr__(self) -> str:
        if self.kind == "basic":
            return f"Credentials(username={self.username!r}, password=<hidden>)"
        return f"Credentials({self.kind}=<hidden>)"


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
class ServerInfo:
    version: tuple[int, int, int]
    version_text: str
    context_path: str


@dataclass(frozen=True)
class CurrentUser:
    id: str
    username: str
    org_unit_ids: frozenset[str]


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes
    location: str | None = None
    retry_after: float | None = None


# --------------------------------------------------------------------------- client


class Dhis2Client:
    """One DHIS2 server and one set of credentials over one connection pool."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy = DEFAULT_RETRY,
        allow_insecure_http: bool = False,
        user_agent: str = f"dhims2-uploader/{__version__}",
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise InvalidInput("credentials must be a Credentials value")
        if not isinstance(retry, RetryPolicy):
            raise InvalidInput("retry must be a RetryPolicy value")
        if not isinstance(user_agent, str) or not re.fullmatch(r"[\x20-\x7e]+", user_agent):
            raise InvalidInput("user_agent must be printable ASCII text")
        self.base_url = _normalised_base_url(base_url)
        self._origin = _origin(self.base_url)
        scheme, host, _ = self._origin
        if scheme == "http" and not allow_insecure_http and not is_loopback_host(host):
            raise InsecureServer(
                f"{self.base_url} uses plain http, which would expose your password and patient"
                " data on the network; use the https:// address of the server"
            )
        self._timeout = _checked_timeout(timeout)
        self._retry = retry
        self._credentials = credentials
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
        self._auth = _SameOriginAuth(credentials, self._origin)
        self._server_info: ServerInfo | None = None
        self._programs: dict[str, dict] = {}

    def __enter__(self) -> Dhis2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"Dhis2Client({self.base_url!r}, {self._credentials!r})"

    # ----------------------------------------------------------------- metadata

    def server_info(self) -> ServerInfo:
        if self._server_info is None:
            body = self._get_json("system/info", what="system info")
            text = _field(body, "version", str, "system info")
            match = _VERSION.match(text)
            if match is None:
                raise BadServerResponse(
                    f"system info: version {text[:40]!r} is not a DHIS2 version"
                )
            major, minor, patch = (int(part or 0) for part in match.groups())
            context_path = body.get("contextPath", "")
            if not isinstance(context_path, str):
                raise BadServerResponse("system info: contextPath is not text")
            self._server_info = ServerInfo((major, minor, patch), text, context_path)
        return self._server_info

    def supports_tracker_import(self) -> bool:
        return self.server_info().version >= TRACKER_IMPORT_SINCE

    def current_user(self) -> CurrentUser:
        body = self._get_json("me", params={"fields": ME_FIELDS}, what="current user")
        units = _field(body, "organisationUnits", list, "current user")
        if not all(isinstance(unit, dict) and isinstance(unit.get("id"), str) for unit in units):
            raise BadServerResponse("current user: an organisation unit has no id")
        return CurrentUser(
            id=_field(body, "id", str, "current user"),
            username=_field(body, "username", str, "current user"),
            org_unit_ids=frozenset(unit["id"] for unit in units),
        )

    def program(self, uid: str) -> dict:
        _require_uid(uid, "program")
        if uid not in self._programs:
            what = f"program {uid}"
            body = self._get_json(f"programs/{uid}", params={"fields": PROGRAM_FIELDS}, what=what)
            _field(body, "id", str, what)
            stages = _field(body, "programStages", list, what)
            for stage in stages:
                if not isinstance(stage, dict) or not isinstance(stage.get("id"), str):
                    raise BadServerResponse(f"{what}: a program stage has no id")
                elements = stage.get("programStageDataElements", [])
                if not isinstance(elements, list) or not all(
                    isinstance(item, dict) and isinstance(item.get("dataElement"), dict)
                    for item in elements
                ):
                    raise BadServerResponse(f"{what}: a stage's data elements are malformed")
            self._programs[uid] = body
        return copy.deepcopy(self._programs[uid])

    # ----------------------------------------------------------------- tracker import

    def submit_import(
        self,
        events: list[dict],
        *,
        import_mode: str = "COMMIT",
        import_strategy: str = "CREATE_AND_UPDATE",
        atomic_mode: str = "OBJECT",
    ) -> str:
        """Start an asynchronous import; returns the job id to follow."""
        params = _import_params(import_mode, import_strategy, atomic_mode)
        params["async"] = "true"
        answer = self._exchange("POST", "tracker", params=params, body=_events_body(events))
        body = _json_object(answer, "import job")
        response = _field(body, "response", dict, "import job")
        job_id = _field(response, "id", str, "import job")
        # The id becomes part of every job URL we build, so it must be a plain UID.
        if not is_uid(job_id):
            raise BadServerResponse("import job: the job id is not a DHIS2 UID")
        return job_id

    def import_now(
        self,
        events: list[dict],
        *,
        import_mode: str = "COMMIT",
        import_strategy: str = "CREATE_AND_UPDATE",
        atomic_mode: str = "OBJECT",
    ) -> dict:
        """Import synchronously; returns DHIS2's report whether it says OK (200) or ERROR (409)."""
        params = _import_params(import_mode, import_strategy, atomic_mode)
        params["async"] = "false"
        answer = self._exchange(
            "POST", "tracker", params=params, body=_events_body(events), accept=(200, 409)
        )
        body = _json_object(answer, "import report")
        if answer.status == 409 and "httpStatusCode" in body and "validationReport" not in body:
            raise _rejection(answer, "tracker")
        return _validated_report(body, "import report")

    def job_notifications(self, job_id: str) -> list[dict]:
        """The job's notifications, newest first; `[]` while queued or once the server forgot it."""
        _require_uid(job_id, "job id")
        body = self._get_json(f"tracker/jobs/{job_id}", what="job notifications")
        if not isinstance(body, list):
            raise BadServerResponse(
                f"job notifications: expected a list, got {type(body).__name__}"
            )
        for entry in body:
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("message"), str)
                and isinstance(entry.get("level"), str)
                and isinstance(entry.get("completed"), bool)
            ):
                raise BadServerResponse(
                    "job notifications: an entry lacks a text message, a level or a completed flag"
                )
        return body

    def job_report(self, job_id: str) -> dict | None:
        """The job's import report, or None while DHIS2 has none (404, E1005)."""
        _require_uid(job_id, "job id")
        answer = self._exchange(
            "GET",
            f"tracker/jobs/{job_id}/report",
            params={"reportMode": "ERRORS"},
            accept=(200, 404),
        )
        if answer.status == 404:
            return None
        return _validated_report(_json_object(answer, "job report"), "job report")

    def import_legacy_events(self, events: list[dict]) -> dict:
        """Import through /api/events (servers before 2.36); returns a tracker-shaped report."""
        body = _events_body(events)
        legacy_events = []
        for event in body["events"]:
            converted = {key: value for key, value in event.items() if key != "occurredAt"}
            if "occurredAt" in event:
                converted["eventDate"] = event["occurredAt"]
            legacy_events.append(converted)
        answer = self._exchange(
            "POST",
            "events",
            params={"importStrategy": "CREATE_AND_UPDATE"},
            body={"events": legacy_events},
            accept=(200, 409),
        )
        message = _json_object(answer, "legacy import")
        summaries = message.get("response")
        if not isinstance(summaries, dict) or summaries.get("responseType") != "ImportSummaries":
            if answer.status == 409:
                raise _rejection(answer, "events")
            raise BadServerResponse("legacy import: the answer has no import summaries")
        return _report_from_import_summaries(summaries, legacy_events)

    # ----------------------------------------------------------------- reading events

    def list_events(
        self, program: str, org_unit: str | None = None, page_size: int = 1000
    ) -> Iterator[dict]:
        """Every event of `program` (optionally one org unit), page by page, as tracker events."""
        _require_uid(program, "program")
        if org_unit is not None:
            _require_uid(org_unit, "org unit")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInput("page_size must be a whole number of at least 1")
        return self._event_pages(program, org_unit, page_size)

    def _event_pages(self, program: str, org_unit: str | None, page_size: int) -> Iterator[dict]:
        tracker = self.supports_tracker_import()
        path = "tracker/events" if tracker else "events"
        params: dict[str, str] = {"program": program, "pageSize": str(page_size)}
        if org_unit is not None:
            params["orgUnit"] = org_unit
        previous_first: object = None
        page = 1
        while True:
            params["page"] = str(page)
            body = self._get_json(path, params=params, what="event list")
            if not isinstance(body, dict):
                raise BadServerResponse("event list: expected an object")
            key = "instances" if tracker and "instances" in body else "events"
            items = _field(body, key, list, "event list")
            if not all(isinstance(item, dict) for item in items):
                raise BadServerResponse("event list: an event is not an object")
            if page > 1 and items and items[0].get("event") == previous_first:
                raise BadServerResponse("event list: the server repeats the same page")
            previous_first = items[0].get("event") if items else None
            for item in items:
                yield item if tracker else _tracker_event_from_legacy(item)
            if len(items) < page_size:
                return
            page += 1

    # ----------------------------------------------------------------- transport

    def _get_json(self, path: str, *, params: dict | None = None, what: str) -> Any:
        return _json(self._exchange("GET", path, params=params), what)

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> _Answer:
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
            except requests.exceptions.SSLError:
                raise ServerUnreachable(
                    f"the secure connection to {self.base_url} failed (certificate or TLS problem);"
                    " check the server address and the computer's date"
                ) from None
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
            except requests.exceptions.ContentDecodingError:
                raise BadServerResponse(
                    f"{log_path}: the answer's compressed body is corrupt"
                ) from None
            except requests.exceptions.RequestException as exc:
                raise BadServerResponse(
                    f"{log_path}: the answer could not be read ({type(exc).__name__})"
                ) from None
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
    ) -> _Answer:
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
                return _Answer(
                    response.status_code, "", b"", location=response.headers.get("Location", "")
                )
            return _Answer(
                status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                body=_capped_body(response),
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
            )

    def _failure_for(self, answer: _Answer, path: str) -> Dhis2Error:
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
        return _rejection(answer, path)


class _SameOriginAuth(requests.auth.AuthBase):
    """Attaches the credentials only to requests bound for the configured origin."""

    def __init__(self, credentials: Credentials, origin: tuple[str, str, int]) -> None:
        self._credentials = credentials
        self._origin = origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(request.url or "") != self._origin:
            return request
        credentials = self._credentials
        if credentials.token is not None:
            request.headers["Authorization"] = f"ApiToken {credentials.token}"
        elif credentials.session_cookie is not None:
            request.headers["Cookie"] = f"JSESSIONID={credentials.session_cookie}"
        else:
            # Spring Security decodes Basic credentials as UTF-8; requests would use Latin-1.
            pair = f"{credentials.username}:{credentials.password}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request


# --------------------------------------------------------------------------- checks and shapes


def _normalised_base_url(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("the server address is empty")
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput("the server address must start with https://")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput("the server address has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the server address must not contain a user name or password")
    if not host or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", parts.netloc):
        raise InvalidInput("the server address has no valid host name")
    if parts.query or parts.fragment:
        raise InvalidInput(
            "the server address must not contain '?' or '#' parts; give it up to the context"
            " path, for example https://events.chimgh.org/events"
        )
    return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return ("", "", 0)
    return (scheme, (parts.hostname or "").lower(), port)


def is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_timeout(timeout: object) -> tuple[float, float]:
    if (
        not isinstance(timeout, (tuple, list))
        or len(timeout) != 2
        or not all(_is_number(part) and 0 < part < float("inf") for part in timeout)
    ):
        raise InvalidInput("timeout must be two positive numbers of seconds: (connect, read)")
    return (float(timeout[0]), float(timeout[1]))


def _require_uid(value: object, what: str) -> None:
    if not is_uid(value):
        shown = repr(value)[:40]
        raise InvalidInput(
            f"{what} {shown} is not a DHIS2 UID (11 letters or digits, starting with a letter)"
        )


def _choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise InvalidInput(f"{name} must be one of {', '.join(allowed)}")


def _import_params(import_mode: str, import_strategy: str, atomic_mode: str) -> dict[str, str]:
    return {
        "importMode": _choice(import_mode, IMPORT_MODES, "import_mode"),
        "importStrategy": _choice(import_strategy, IMPORT_STRATEGIES, "import_strategy"),
        "atomicMode": _choice(atomic_mode, ATOMIC_MODES, "atomic_mode"),
    }


def _events_body(events: object) -> dict[str, list[dict]]:
    if not isinstance(events, list) or not events:
        raise InvalidInput("events must be a non-empty list of event objects")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise InvalidInput(f"events[{index}] is not an event object")
    return {"events": events}


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


def _redirect_failure(answer: _Answer, base_url: str) -> Dhis2Error:
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


def _rejection(answer: _Answer, path: str) -> RequestRejected:
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


def _json(answer: _Answer, what: str) -> Any:
    if "html" in answer.content_type.lower() or answer.body.lstrip()[:1] == b"<":
        raise NotSignedIn(
            f"DHIS2 answered the {what} request with a web page instead of data, as it does when"
            " the sign-in has ended; sign in to DHIMS2 again"
        )
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        raise BadServerResponse(f"{what}: the answer is not valid JSON") from None


def _json_object(answer: _Answer, what: str) -> dict:
    body = _json(answer, what)
    if not isinstance(body, dict):
        raise BadServerResponse(f"{what}: expected an object, got {type(body).__name__}")
    return body


def _field(body: object, name: str, kind: type, what: str) -> Any:
    if not isinstance(body, dict):
        raise BadServerResponse(f"{what}: expected an object, got {type(body).__name__}")
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadServerResponse(f"{what}: '{name}' is missing or not a {kind.__name__}")
    return value


def _validated_report(body: dict, what: str) -> dict:
    if body.get("status") not in REPORT_STATUSES:
        raise BadServerResponse(f"{what}: 'status' is missing or not one of OK, WARNING, ERROR")
    stats = body.get("stats", {})
    if not isinstance(stats, dict) or not all(
        isinstance(value, int) and not isinstance(value, bool) for value in stats.values()
    ):
        raise BadServerResponse(f"{what}: 'stats' is not a set of counts")
    validation = body.get("validationReport", {})
    if not isinstance(validation, dict):
        raise BadServerResponse(f"{what}: 'validationReport' is not an object")
    for key in ("errorReports", "warningReports"):
        entries = validation.get(key, [])
        if not isinstance(entries, list) or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("errorCode", entry.get("warningCode")), str)
            and isinstance(entry.get("message", ""), str)
            and isinstance(entry.get("uid", ""), (str, type(None)))
            for entry in entries
        ):
            raise BadServerResponse(f"{what}: '{key}' entries lack a code, message or uid")
    return body


def _count(body: dict, name: str, what: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadServerResponse(f"{what}: '{name}' is not a count")
    return value


def _report_from_import_summaries(summaries: dict, events: list[dict]) -> dict:
    """A tracker-shaped report from legacy ImportSummaries, so callers treat both alike.

    Legacy imports are per event, like atomicMode=OBJECT, so the status is OK and the rejected
    events are the error reports."""
    what = "legacy import"
    entries = summaries.get("importSummaries", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BadServerResponse(f"{what}: 'importSummaries' is not a list of objects")
    error_reports = []
    for index, entry in enumerate(entries):
        if entry.get("status") != "ERROR":
            continue
        uid = entry.get("reference")
        if not isinstance(uid, str) and index < len(events):
            uid = events[index].get("event")
        conflicts = entry.get("conflicts") or []
        if not isinstance(conflicts, list) or not all(isinstance(c, dict) for c in conflicts):
            raise BadServerResponse(f"{what}: 'conflicts' is not a list of objects")
        if not conflicts:
            description = entry.get("description")
            text = description if isinstance(description, str) else "the event was not imported"
            error_reports.append(_legacy_error_report(uid, None, text))
        for conflict in conflicts:
            subject, value = conflict.get("object"), conflict.get("value")
            text = f"{subject}: {value}" if isinstance(subject, str) and subject else str(value)
            error_reports.append(_legacy_error_report(uid, conflict.get("errorCode"), text))
    return {
        "status": "OK",
        "stats": {
            "created": _count(summaries, "imported", what),
            "updated": _count(summaries, "updated", what),
            "deleted": _count(summaries, "deleted", what),
            "ignored": _count(summaries, "ignored", what),
            "total": _count(summaries, "total", what),
        },
        "validationReport": {"errorReports": error_reports, "warningReports": []},
    }


def _legacy_error_report(uid: object, code: object, message: str) -> dict:
    return {
        "errorCode": code if isinstance(code, str) and code else _LEGACY_ERROR_CODE,
        "message": message,
        "trackerType": "EVENT",
        "uid": uid if isinstance(uid, str) else None,
        "args": [],
    }


def _tracker_event_from_legacy(event: dict) -> dict:
    converted = {key: value for key, value in event.items() if key != "eventDate"}
    if "eventDate" in event:
        converted["occurredAt"] = event["eventDate"]
    return converted
