"""The sandbox's web application: routing, authentication, the DHIS2 endpoints and the pages.

Works on plain Request/Response values; server.py owns sockets, latency and connection resets.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from importlib import resources
from typing import Any

from dhims2.dhis2.uids import is_uid
from dhims2.sandbox.auth import Authentication, Authenticator
from dhims2.sandbox.capture_app import CaptureApp, empty_list
from dhims2.sandbox.catalog import Catalog, user_authorities
from dhims2.sandbox.event_filters import data_value_filter, filter_terms
from dhims2.sandbox.fields import parse_fields, select_fields
from dhims2.sandbox.importer import (
    IMPORT_STRATEGIES,
    REPORT_MODES,
    Importer,
    ImportOptions,
    ImportOutcome,
    filter_report,
    parse_import_options,
    parse_json_body,
    tracker_events,
)
from dhims2.sandbox.jobs import JobRunner
from dhims2.sandbox.knobs import Dice, Knobs
from dhims2.sandbox.legacy import import_summaries, legacy_events
from dhims2.sandbox.params import Query, bool_param, enum_param, first, positive_int_param
from dhims2.sandbox.store import Event, EventStore
from dhims2.sandbox.version import ServerVersion
from dhims2.sandbox.webmessage import ApiError, BadRequest, NotFound, web_message

JSON = "application/json;charset=UTF-8"
HTML = "text/html;charset=UTF-8"
API_VERSIONS = range(28, 43)  # /api/28/... to /api/42/... behave like /api/...
_VERSIONED_API = re.compile(r"/api/([0-9]+)(/.*)?")
_METADATA_LIST = re.compile(r"/api/([A-Za-z]+)")
_TRACKER_LIST = re.compile(r"/api/tracker/([A-Za-z]+)")
_UID = r"([^/]+)"
_GATEWAY_ERRORS = (
    (502, "Bad Gateway"),
    (503, "Service Temporarily Unavailable"),
    (504, "Gateway Time-out"),
)
_PAGES = {
    "/dhis-web-login/": ("login.html", HTML),
    "/dhis-web-login/index.html": ("login.html", HTML),
    "/dhis-web-capture/": ("capture.html", HTML),
    "/dhis-web-capture/index.html": ("capture.html", HTML),
    "/dhis-web-capture/capture.js": ("capture.js", "text/javascript;charset=UTF-8"),
    "/dhis-web-capture/capture.css": ("capture.css", "text/css;charset=UTF-8"),
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below the context path, e.g. /api/41/tracker
    query: Query
    headers: Message
    origin: str  # scheme://host:port as the client addressed the server
    read_body: Callable[[], bytes]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    reset: bool = False  # drop the connection without answering


CONNECTION_RESET = Response(0, reset=True)


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), JSON, headers)


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(302, b"", HTML, (("Location", location), *headers))


def canonical_path(path: str) -> str:
    """/api/41/tracker -> /api/tracker; other paths unchanged."""
    match = _VERSIONED_API.fullmatch(path)
    if match and int(match.group(1)) in API_VERSIONS:
        return "/api" + (match.group(2) or "")
    return path


class SandboxApp:
    """Answers requests; safe to call from many threads, as its collaborators lock their state."""

    def __init__(
        self,
        *,
        context_path: str,
        version: ServerVersion,
        catalog: Catalog,
        store: EventStore,
        importer: Importer,
        jobs: JobRunner,
        authenticator: Authenticator,
        knobs: Knobs,
        dice: Dice,
        capture_app: CaptureApp | None = None,
        date_format: str = "yyyy-mm-dd",
    ) -> None:
        self._context_path = context_path
        self._capture_app = capture_app
        self._date_format = date_format
        self._version = version
        self._catalog = catalog
        self._store = store
        self._importer = importer
        self._jobs = jobs
        self._auth = authenticator
        self._knobs = knobs
        self._dice = dice
        pages = resources.files("dhims2.sandbox").joinpath("pages")
        self._pages = {
            path: (pages.joinpath(name).read_bytes(), content_type)
            for path, (name, content_type) in _PAGES.items()
        }

        routes: list[tuple[str, str, Callable[..., Response]]] = []
        if capture_app is not None:
            # Before /api/programs/{uid}, which would take "orgUnits" for a program UID.
            routes += [
                (method, path, _json_handler(handler))
                for method, path, handler in capture_app.routes()
            ]
        routes += [
            ("GET", "/api/system/info", self._system_info),
            ("GET", "/api/me", self._me),
            ("GET", f"/api/programs/{_UID}", self._program),
            ("GET", f"/api/organisationUnits/{_UID}", self._org_unit),
            ("GET", f"/api/jobConfigurations/{_UID}", self._job_configuration),
            ("POST", "/api/apiToken", self._create_token),
        ]
        if version.has_tracker_api:
            routes += [
                ("POST", "/api/tracker", self._tracker_import),
                ("GET", f"/api/tracker/jobs/{_UID}", self._job_notifications),
                ("GET", f"/api/tracker/jobs/{_UID}/report", self._job_report),
                ("GET", "/api/tracker/events", self._events),
                ("GET", f"/api/tracker/events/{_UID}", self._event),
            ]
        if version.has_legacy_events:
            routes.append(("POST", "/api/events", self._legacy_import))
        self._routes = [(method, re.compile(path), handler) for method, path, handler in routes]

    def handle(self, request: Request) -> Response:
        path = canonical_path(request.path)
        try:
            if path == "/api" or path.startswith("/api/"):
                return self._api(request, path)
            return self._page(request, path)
        except ApiError as error:
            return json_response(error.status_code, error.body())

    # --- plumbing ------------------------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        path = path.removesuffix(".json")  # DHIS2 takes /api/me.json for /api/me
        if self._dice.chance(self._knobs.error_rate):
            return self._gateway_error()
        if path == "/api/auth/login" and self._version.has_login_api:
            if request.method != "POST":
                raise ApiError(405, f"Request method '{request.method}' is not supported")
            return self._login(request)
        authentication = self._auth.authenticate(request.headers)
        if authentication.user is None:
            return self._unauthenticated(request, authentication)
        path_known = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and method == request.method:
                return handler(request, authentication.user, *match.groups())
            path_known = path_known or match is not None
        if path_known:
            raise ApiError(405, f"Request method '{request.method}' is not supported")
        if self._capture_app is not None and request.method == "GET":
            # The Capture app asks for metadata the sandbox does not model (program rules,
            # constants, relationship types...): DHIS2 answers an empty list for those.
            if listed := _METADATA_LIST.fullmatch(path):
                return json_response(200, empty_list(listed.group(1), request.query))
            if _TRACKER_LIST.fullmatch(path):
                # The shape of an empty tracker list is a guess from 2.41's paged answers.
                return json_response(200, {"page": 1, "pageSize": 50, "instances": []})
        raise ApiError(404, f"No endpoint {request.method} {path} on this DHIS2 {self._version}")

    def _unauthenticated(self, request: Request, authentication: Authentication) -> Response:
        if authentication.failure == "bad_token":
            return json_response(
                401, web_message(401, authentication.message), (("WWW-Authenticate", "ApiToken"),)
            )
        if (
            authentication.failure != "missing"
            or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        ):
            return json_response(401, web_message(401, authentication.message))
        # Like DHIS2, a request without (valid) credentials is sent to the login page.
        return redirect(self._url(request, "/dhis-web-login/"))

    def _gateway_error(self) -> Response:
        status, phrase = self._dice.choice(_GATEWAY_ERRORS)
        title = f"{status} {phrase}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return Response(status, page.encode(), "text/html")

    def _url(self, request: Request, path: str) -> str:
        return f"{request.origin}{self._context_path}{path}"

    def _session_cookie(self, username: str) -> tuple[str, str]:
        session_id = self._auth.open_session(username)
        return (
            "Set-Cookie",
            f"JSESSIONID={session_id}; Path={self._context_path or '/'}; HttpOnly",
        )

    def _import_now(
        self, events: list[Event], options: ImportOptions, user: dict[str, Any]
    ) -> ImportOutcome:
        time.sleep(self._knobs.processing_seconds(len(events)))
        return self._importer.run(events, options, user["username"])

    # --- metadata ------------------------------------------------------------------------------

    def _system_info(self, request: Request, user: dict[str, Any]) -> Response:
        # DHIS2 reports the context path as the full URL the client used.
        return json_response(
            200,
            {
                "contextPath": self._url(request, ""),
                "version": str(self._version),
                "revision": "sandbox",
                "serverDate": datetime.now().isoformat(timespec="milliseconds"),
                "serverTimeZoneId": self._catalog.system.get("serverTimeZoneId", "Africa/Accra"),
                "calendar": "iso8601",
                "dateFormat": self._date_format,
                "systemName": "DHIMS2 sandbox",
            },
        )

    def _me(self, request: Request, user: dict[str, Any]) -> Response:
        units = [self._catalog.org_units[unit["id"]] for unit in user.get("organisationUnits", [])]
        name = user.get("name") or user["username"]
        scope = [
            {**{key: unit[key] for key in ("id", "name", "path")}, "displayName": unit["name"]}
            for unit in units
        ]
        # What Capture reads at start (dhis2-core MeController#getCurrentUser): names, roles,
        # the capture and search scopes, and the locales in `settings`.
        me = {
            "id": user["id"],
            "username": user["username"],
            "name": name,
            "displayName": name,
            "firstName": user.get("firstName", name),
            "surname": user.get("surname", ""),
            "email": "",
            "organisationUnits": scope,
            "teiSearchOrganisationUnits": scope,
            "dataViewOrganisationUnits": scope,
            "userRoles": [],
            "userGroups": [],
            "programs": sorted(self._catalog.programs),
            "authorities": user_authorities(user),
            "settings": {"keyUiLocale": "en", "keyDbLocale": "en"},
        }
        return json_response(200, self._select(request, me))

    def _program(self, request: Request, user: dict[str, Any], uid: str) -> Response:
        program = self._catalog.programs.get(uid)
        if program is None:
            raise NotFound(f"Program with id {uid} could not be found.")
        return json_response(200, self._select(request, program))

    def _org_unit(self, request: Request, user: dict[str, Any], uid: str) -> Response:
        unit = self._catalog.org_units.get(uid)
        if unit is None:
            raise NotFound(f"OrganisationUnit with id {uid} could not be found.")
        ancestors = [part for part in unit.get("path", "").split("/") if part and part != uid]
        described = {
            **unit,
            "displayName": unit["name"],
            "code": unit.get("code"),
            # Capture's header lists the ancestors; an ancestor the sandbox does not hold is
            # named by its UID.
            "ancestors": [
                {"id": a, "displayName": self._catalog.org_units.get(a, {}).get("name", a)}
                for a in ancestors
            ],
        }
        return json_response(200, self._select(request, described))

    def _select(self, request: Request, value: Any) -> Any:
        fields = first(request.query, "fields")
        return select_fields(value, parse_fields(fields)) if fields else value

    # --- authentication ------------------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        payload = parse_json_body(request.read_body())
        if not (
            isinstance(payload, dict)
            and isinstance(payload.get("username"), str)
            and isinstance(payload.get("password"), str)
        ):
            raise BadRequest('The login body must be {"username": "...", "password": "..."}')
        user = self._auth.check_password(payload["username"], payload["password"])
        if user is None:
            return json_response(401, web_message(401, "Bad credentials"))
        return json_response(
            200,
            {"loginStatus": "SUCCESS", "redirectUrl": f"{self._context_path}/dhis-web-capture/"},
            (self._session_cookie(user["username"]),),
        )

    def _create_token(self, request: Request, user: dict[str, Any]) -> Response:
        body = request.read_body()
        payload = parse_json_body(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise BadRequest("The request body must be a JSON object")
        expire = payload.get("expire")
        if expire is not None and (not isinstance(expire, int) or isinstance(expire, bool)):
            raise BadRequest("`expire` must be a time in milliseconds since 1970-01-01")
        uid, key = self._auth.create_token(
            user["username"],
            self._version.token_prefix,
            expire / 1000 if expire is not None else None,
        )
        return json_response(201, web_message(201, response={"uid": uid, "key": key}))

    # --- tracker import ------------------------------------------------------------------------

    def _tracker_import(self, request: Request, user: dict[str, Any]) -> Response:
        if self._dice.chance(self._knobs.drop_before_rate):
            return CONNECTION_RESET
        options = parse_import_options(request.query, self._version)
        body = request.read_body()
        refusal = self._refusal_before_import(len(body))
        if refusal is not None:
            return refusal
        events = tracker_events(parse_json_body(body))
        if options.asynchronous:
            job_uid = self._jobs.submit(events, options, user["username"])
            if self._dice.chance(self._knobs.drop_after_rate):
                return CONNECTION_RESET
            job = {"id": job_uid, "location": self._url(request, f"/api/tracker/jobs/{job_uid}")}
            if self._version.job_answer_has_response_type:
                job = {"responseType": "TrackerJob", **job}
            return json_response(200, web_message(200, "Tracker job added", response=job))
        outcome = self._import_now(events, options, user)
        if self._dice.chance(self._knobs.drop_after_rate):
            return CONNECTION_RESET
        status = 200 if outcome.status == "OK" else 409
        return json_response(status, filter_report(outcome.report, options.report_mode))

    def _refusal_before_import(self, body_size: int) -> Response | None:
        """Answers that are not verdicts on the events: a proxy's body limit (nginx's HTML 413),
        a firewall's HTML 403, and the job scheduler's 409 when the new job cannot be moved to
        ONCE_ASAP (DefaultJobSchedulerService.executeNow, via TrackerImportController)."""
        limit = self._knobs.max_body_bytes
        if limit and body_size > limit:
            return _html_error(413, "Request Entity Too Large")
        refused = int(self._knobs.refuse_imports_status)
        if refused == 409:
            return json_response(
                409, web_message(409, "Failed to transition job into ONCE_ASAP state.")
            )
        if refused:
            return _html_error(refused, "Forbidden" if refused == 403 else "Refused")
        return None

    def _job_configuration(self, request: Request, user: dict[str, Any], uid: str) -> Response:
        configuration = self._jobs.job_configuration(uid)
        if configuration is None:
            raise NotFound(f"JobConfiguration with id {uid} could not be found.")
        return json_response(200, self._select(request, configuration))

    def _job_notifications(self, request: Request, user: dict[str, Any], job_uid: str) -> Response:
        _require_uid(job_uid, "job id")
        return json_response(200, self._jobs.notifications(job_uid))

    def _job_report(self, request: Request, user: dict[str, Any], job_uid: str) -> Response:
        _require_uid(job_uid, "job id")
        report_mode = enum_param(request.query, "reportMode", REPORT_MODES, "ERRORS")
        report = self._jobs.report(job_uid)
        if report is None:
            raise NotFound(f"Summary for job {job_uid} does not exist")
        return json_response(200, filter_report(report, report_mode))

    def _legacy_import(self, request: Request, user: dict[str, Any]) -> Response:
        if self._dice.chance(self._knobs.drop_before_rate):
            return CONNECTION_RESET
        strategy = enum_param(
            request.query, "importStrategy", IMPORT_STRATEGIES, "CREATE_AND_UPDATE"
        )
        events = legacy_events(parse_json_body(request.read_body()))
        options = ImportOptions(import_strategy=strategy, atomic_mode="OBJECT", asynchronous=False)
        outcome = self._import_now(events, options, user)
        if self._dice.chance(self._knobs.drop_after_rate):
            return CONNECTION_RESET
        status, body = import_summaries(outcome)
        return json_response(status, body)

    # --- tracker export ------------------------------------------------------------------------

    def _events(self, request: Request, user: dict[str, Any]) -> Response:
        query = request.query
        program = first(query, "program")
        if program and program not in self._catalog.programs:
            raise BadRequest(f"Program is specified but does not exist: {program}")
        org_units = _uid_list(first(query, "orgUnits") or first(query, "orgUnit"))
        for org_unit in org_units:
            if org_unit not in self._catalog.org_units:
                raise BadRequest(f"Organisation unit does not exist: {org_unit}")
        wanted = _uid_list(first(query, "events") or first(query, "event"))
        page = positive_int_param(query, "page", 1)
        page_size = positive_int_param(query, "pageSize", 50)
        raw_filter = first(query, "filter")
        with_values = data_value_filter(raw_filter)
        with_total = bool_param(query, "totalPages", False)
        paged = bool_param(query, "paging", True) and not bool_param(query, "skipPaging", False)

        def matches(event: Event) -> bool:
            return (
                (not program or event["program"] == program)
                and (not org_units or event["orgUnit"] in org_units)
                and (not wanted or event["event"] in wanted)
                and with_values(event)
            )

        terms = filter_terms(raw_filter)
        if terms:
            # Any one term narrows the candidates: read them through the store's value index.
            events = self._store.live_with_value(*terms[0], matches)
        else:
            events = self._store.live(matches)
        if not paged:
            return json_response(200, {"instances": self._select(request, events)})
        pager: dict[str, int] = {"page": page, "pageSize": page_size}
        if with_total:
            pager["total"] = len(events)
            pager["pageCount"] = math.ceil(len(events) / page_size)
        instances = self._select(request, events[(page - 1) * page_size : page * page_size])
        # 2.41 repeats the pager's fields at the top level (deprecated since 2.41).
        return json_response(200, {"pager": pager, **pager, "instances": instances})

    def _event(self, request: Request, user: dict[str, Any], uid: str) -> Response:
        _require_uid(uid, "event id")
        event = self._store.find_live(uid)
        if event is None:
            raise NotFound(f"Event with id {uid} could not be found.")
        return json_response(200, self._select(request, event))

    # --- pages ---------------------------------------------------------------------------------

    def _page(self, request: Request, path: str) -> Response:
        if (
            self._capture_app is not None
            and path.startswith("/dhis-web-capture/")
            and request.method == "GET"
        ):
            relative = path.removeprefix("/dhis-web-capture/")
            return self._capture_file(self._capture_app, request, relative)
        if path in ("", "/", "/dhis-web-capture"):
            return redirect(self._url(request, "/dhis-web-capture/"))
        if path == "/dhis-web-login":
            return redirect(self._url(request, "/dhis-web-login/"))
        if path == "/dhis-web-commons-security/login.action" and request.method == "POST":
            return self._form_login(request)
        if path not in _PAGES or request.method != "GET":
            return Response(404, b"<html><body><h1>404 Not Found</h1></body></html>", HTML)
        if (
            path.startswith("/dhis-web-capture/")
            and self._auth.authenticate(request.headers).user is None
        ):
            return redirect(self._url(request, "/dhis-web-login/"))
        body, content_type = self._pages[path]
        return Response(200, body, content_type)

    def _capture_file(self, capture_app: CaptureApp, request: Request, relative: str) -> Response:
        if relative in ("", "index.html"):
            # DHIS2 sends a browser without a session to its login page first.
            if self._auth.authenticate(request.headers).user is None:
                return redirect(self._url(request, "/dhis-web-login/"))
            body = capture_app.index_html(self._url(request, ""))
            return Response(200, body, HTML, (("Cache-Control", "no-cache"),))
        found = capture_app.file(relative)
        if found is None:
            return Response(404, b"<html><body><h1>404 Not Found</h1></body></html>", HTML)
        return Response(200, *found)

    def _form_login(self, request: Request) -> Response:
        form = urllib.parse.parse_qs(request.read_body().decode("utf-8", errors="replace"))
        user = self._auth.check_password(
            first(form, "j_username") or "", first(form, "j_password") or ""
        )
        if user is None:
            return redirect(self._url(request, "/dhis-web-login/?failed=true"))
        return redirect(
            self._url(request, "/dhis-web-capture/"), (self._session_cookie(user["username"]),)
        )


def _html_error(status: int, phrase: str) -> Response:
    title = f"{status} {phrase}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><hr>nginx</body></html>"
    return Response(status, page.encode(), HTML)


def _json_handler(handler: Callable[..., Any]) -> Callable[..., Response]:
    """A route answering `handler(query, user, *groups)` as JSON."""

    def answer(request: Request, user: dict[str, Any], *groups: str) -> Response:
        return json_response(200, handler(request.query, user, *groups))

    return answer


def _require_uid(value: str, what: str) -> None:
    if not is_uid(value):
        raise BadRequest(f"Value `{value}` is not a valid {what}: expected an 11-character UID")


def _uid_list(raw: str | None) -> set[str]:
    return {part for part in re.split(r"[,;]", raw or "") if part}
