"""The DHIS2 client: system info, metadata, tracker import, jobs, reports and legacy events.

Callers see these few methods and the `Dhis2Error` family (errors.py). Retries, credentials,
redirect refusal and body caps happen in transport.py; shape checks in shapes.py; all follow
docs/dhis2-tracker-api.md.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dhims2 import __version__
from dhims2.dhis2.address import is_loopback_host, normalised_base_url, origin
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import BadServerResponse, InsecureServer, InvalidInput
from dhims2.dhis2.legacy import (
    legacy_event,
    report_from_import_summaries,
    tracker_event_from_legacy,
)
from dhims2.dhis2.shapes import (
    events_body,
    field,
    import_params,
    require_uid,
    validated_report,
)
from dhims2.dhis2.transport import DEFAULT_RETRY, RetryPolicy, Transport, json_object, rejection
from dhims2.dhis2.uids import is_uid

TRACKER_IMPORT_SINCE = (2, 36, 0)
# The program settings DHIS2 validates events against come too, and are cached with the form:
# when compulsory values count (validationStrategy), whether an attribute option combo is needed
# (categoryCombo), and the expiry and blocking rules (docs/dhis2-tracker-api.md).
PROGRAM_FIELDS = (
    "id,name,programType,categoryCombo[id,isDefault],expiryDays,expiryPeriodType,"
    "completeEventsExpiryDays,organisationUnits[id,name,path],"
    "programStages[id,name,validationStrategy,blockEntryForm,programStageDataElements"
    "[compulsory,dataElement[id,code,name,formName,valueType,optionSet[id,options[code,name]]]]]"
)
ME_FIELDS = "id,username,authorities,organisationUnits[id,path]"
READ_BACK_FIELDS = "event,status,dataValues[dataElement,value]"
READ_BACK_CHUNK = 100  # event UIDs per request, to keep the URL short
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


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
    authorities: frozenset[str] = frozenset()

    @property
    def may_enter_expired_periods(self) -> bool:
        # User.isAuthorized: ALL implies every authority.
        return not self.authorities.isdisjoint({"ALL", "F_EDIT_EXPIRED"})


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
        self.base_url = normalised_base_url(base_url)
        server_origin = origin(self.base_url)
        scheme, host, _ = server_origin
        if scheme == "http" and not allow_insecure_http and not is_loopback_host(host):
            raise InsecureServer(
                f"{self.base_url} uses plain http, which would expose your password and patient"
                " data on the network; use the https:// address of the server"
            )
        self._credentials = credentials
        self._transport = Transport(
            self.base_url,
            credentials,
            server_origin,
            timeout=timeout,
            retry=retry,
            user_agent=user_agent,
        )
        self._server_info: ServerInfo | None = None
        self._programs: dict[str, dict] = {}

    def __enter__(self) -> Dhis2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"Dhis2Client({self.base_url!r}, {self._credentials!r})"

    # ----------------------------------------------------------------- metadata

    def server_info(self) -> ServerInfo:
        if self._server_info is None:
            body = self._transport.get_json("system/info", what="system info")
            text = field(body, "version", str, "system info")
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
        body = self._transport.get_json("me", params={"fields": ME_FIELDS}, what="current user")
        units = field(body, "organisationUnits", list, "current user")
        if not all(isinstance(unit, dict) and isinstance(unit.get("id"), str) for unit in units):
            raise BadServerResponse("current user: an organisation unit has no id")
        authorities = body.get("authorities", [])
        if not isinstance(authorities, list) or not all(isinstance(a, str) for a in authorities):
            raise BadServerResponse("current user: authorities is not a list of names")
        return CurrentUser(
            id=field(body, "id", str, "current user"),
            username=field(body, "username", str, "current user"),
            org_unit_ids=frozenset(unit["id"] for unit in units),
            authorities=frozenset(authorities),
        )

    def program(self, uid: str) -> dict:
        require_uid(uid, "program")
        if uid not in self._programs:
            what = f"program {uid}"
            body = self._transport.get_json(
                f"programs/{uid}", params={"fields": PROGRAM_FIELDS}, what=what
            )
            field(body, "id", str, what)
            stages = field(body, "programStages", list, what)
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
        params = import_params(import_mode, import_strategy, atomic_mode)
        params["async"] = "true"
        answer = self._transport.exchange(
            "POST", "tracker", params=params, body=events_body(events)
        )
        body = json_object(answer, "import job")
        response = field(body, "response", dict, "import job")
        job_id = field(response, "id", str, "import job")
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
        params = import_params(import_mode, import_strategy, atomic_mode)
        params["async"] = "false"
        answer = self._transport.exchange(
            "POST", "tracker", params=params, body=events_body(events), accept=(200, 409)
        )
        body = json_object(answer, "import report")
        if answer.status == 409 and "httpStatusCode" in body and "validationReport" not in body:
            raise rejection(answer, "tracker")
        return validated_report(body, "import report")

    def job_notifications(self, job_id: str) -> list[dict]:
        """The job's notifications, newest first; `[]` while queued or once the server forgot it."""
        require_uid(job_id, "job id")
        body = self._transport.get_json(f"tracker/jobs/{job_id}", what="job notifications")
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
        require_uid(job_id, "job id")
        answer = self._transport.exchange(
            "GET",
            f"tracker/jobs/{job_id}/report",
            params={"reportMode": "ERRORS"},
            accept=(200, 404),
        )
        if answer.status == 404:
            return None
        return validated_report(json_object(answer, "job report"), "job report")

    def job_configuration(self, job_id: str) -> dict | None:
        """The scheduler's row for the job ({jobStatus, lastExecutedStatus}), which outlives a
        restart; None when DHIS2 has no such job (404)."""
        require_uid(job_id, "job id")
        answer = self._transport.exchange(
            "GET",
            f"jobConfigurations/{job_id}",
            params={"fields": "id,jobStatus,lastExecutedStatus"},
            accept=(200, 404),
        )
        if answer.status == 404:
            return None
        body = json_object(answer, "job configuration")
        field(body, "jobStatus", str, "job configuration")
        return body

    def import_legacy_events(self, events: list[dict]) -> dict:
        """Import through /api/events (servers before 2.36); returns a tracker-shaped report."""
        legacy_events = [legacy_event(event) for event in events_body(events)["events"]]
        answer = self._transport.exchange(
            "POST",
            "events",
            params={"importStrategy": "CREATE_AND_UPDATE"},
            body={"events": legacy_events},
            accept=(200, 409),
        )
        message = json_object(answer, "legacy import")
        summaries = message.get("response")
        if not isinstance(summaries, dict) or summaries.get("responseType") != "ImportSummaries":
            if answer.status == 409:
                raise rejection(answer, "events")
            raise BadServerResponse("legacy import: the answer has no import summaries")
        return report_from_import_summaries(summaries, legacy_events)

    # ----------------------------------------------------------------- reading events

    def stored_events(self, uids: list[str]) -> dict[str, dict]:
        """Which of these events DHIS2 holds now (deleted ones are not returned), by UID, with
        their status and data values: the evidence that a job we could not follow did run."""
        found: dict[str, dict] = {}
        for uid in uids:
            require_uid(uid, "event")
        for start in range(0, len(uids), READ_BACK_CHUNK):
            chunk = uids[start : start + READ_BACK_CHUNK]
            body = self._transport.get_json(
                "tracker/events",
                params={
                    "events": ",".join(chunk),
                    "fields": READ_BACK_FIELDS,
                    "pageSize": str(len(chunk)),
                },
                what="event read-back",
            )
            items = field(body, "instances", list, "event read-back")
            for item in items:
                if isinstance(item, dict) and item.get("event") in chunk:
                    found[item["event"]] = item
        return found

    def list_events(
        self,
        program: str,
        org_unit: str | None = None,
        page_size: int = 1000,
        *,
        value_filter: str | None = None,
        fields: str | None = None,
    ) -> Iterator[dict]:
        """Every event of `program` (optionally one org unit, and only those whose data values
        pass `value_filter`, see `data_value_filter`), page by page, as tracker events."""
        require_uid(program, "program")
        if org_unit is not None:
            require_uid(org_unit, "org unit")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInput("page_size must be a whole number of at least 1")
        params: dict[str, str] = {"program": program, "pageSize": str(page_size)}
        if org_unit is not None:
            params["orgUnit"] = org_unit
        if value_filter is not None:
            params["filter"] = value_filter
        if fields is not None:
            params["fields"] = fields
        return self._event_pages(params, page_size)

    def _event_pages(self, params: dict[str, str], page_size: int) -> Iterator[dict]:
        tracker = self.supports_tracker_import()
        path = "tracker/events" if tracker else "events"
        previous_first: object = None
        page = 1
        while True:
            params["page"] = str(page)
            body = self._transport.get_json(path, params=params, what="event list")
            if not isinstance(body, dict):
                raise BadServerResponse("event list: expected an object")
            key = "instances" if tracker and "instances" in body else "events"
            items = field(body, key, list, "event list")
            if not all(isinstance(item, dict) for item in items):
                raise BadServerResponse("event list: an event is not an object")
            if page > 1 and items and items[0].get("event") == previous_first:
                raise BadServerResponse("event list: the server repeats the same page")
            previous_first = items[0].get("event") if items else None
            for item in items:
                yield item if tracker else tracker_event_from_legacy(item)
            if len(items) < page_size:
                return
            page += 1


def data_value_filter(data_element: str, values: list[str]) -> str:
    """The events API's `filter` for "this data element has one of these values".

    DHIS2 reads `,` and `:` as separators unless escaped with `/`, and splits an `in` list on
    `;`, which cannot be escaped (docs/RELIABILITY.md, "Finding events by value"): a
    value with `;` must be looked up alone, with `eq`.
    """
    require_uid(data_element, "data element")
    if not values:
        raise InvalidInput("a value filter needs at least one value")
    escaped = [value.replace(",", "/,").replace(":", "/:") for value in values]
    if len(values) == 1:
        return f"{data_element}:eq:{escaped[0]}"
    if any(";" in value for value in values):
        raise InvalidInput("a value with ';' cannot be part of an `in` filter; look it up alone")
    return f"{data_element}:in:{';'.join(escaped)}"
