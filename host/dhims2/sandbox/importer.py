"""Tracker import semantics: payload and parameters, strategies, atomic modes, stats, the report."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from dhims2.dhis2.uids import new_uid
from dhims2.sandbox.catalog import Catalog
from dhims2.sandbox.params import Query, bool_param, enum_param, first
from dhims2.sandbox.store import Event, EventStore
from dhims2.sandbox.validation import EventValidator, Problem, error_report
from dhims2.sandbox.version import ServerVersion
from dhims2.sandbox.webmessage import BadRequest

EVENT_STATUSES = ("ACTIVE", "COMPLETED", "VISITED", "SCHEDULE", "OVERDUE", "SKIPPED")
IMPORT_MODES = ("COMMIT", "VALIDATE")
IMPORT_STRATEGIES = ("CREATE", "UPDATE", "CREATE_AND_UPDATE", "DELETE")
ATOMIC_MODES = ("ALL", "OBJECT")
REPORT_MODES = ("ERRORS", "WARNINGS", "FULL")
TRACKER_TYPES = ("TRACKED_ENTITY", "ENROLLMENT", "EVENT", "RELATIONSHIP")
ID_SCHEME_PARAMS = (
    "idScheme",
    "dataElementIdScheme",
    "orgUnitIdScheme",
    "programIdScheme",
    "programStageIdScheme",
    "categoryOptionComboIdScheme",
    "categoryOptionIdScheme",
)
DEFAULT_ATTRIBUTE_OPTION_COMBO = "HllvX50cXC0"
_ID_SCHEMES = re.compile(r"(UID|CODE|NAME|ATTRIBUTE:[A-Za-z][A-Za-z0-9]{10})", re.IGNORECASE)


@dataclass(frozen=True)
class ImportOptions:
    import_mode: str = "COMMIT"
    import_strategy: str = "CREATE_AND_UPDATE"
    atomic_mode: str = "ALL"
    report_mode: str = "ERRORS"
    asynchronous: bool = True


def parse_import_options(query: Query, version: ServerVersion) -> ImportOptions:
    for name in ID_SCHEME_PARAMS:
        scheme = first(query, name)
        if scheme is None or scheme.upper() == "UID":
            continue
        if _ID_SCHEMES.fullmatch(scheme):
            raise BadRequest(
                f"Parameter `{name}={scheme}` is not supported by the sandbox: use UID"
            )
        raise BadRequest(
            f"Value `{scheme}` is not valid for parameter `{name}`. "
            "Valid values are: [UID, CODE, NAME, ATTRIBUTE:<uid>]"
        )
    for name in ("skipSideEffects", "skipRuleEngine"):
        bool_param(query, name, False)
    return ImportOptions(
        import_mode=enum_param(query, "importMode", IMPORT_MODES, "COMMIT"),
        import_strategy=enum_param(query, "importStrategy", IMPORT_STRATEGIES, "CREATE_AND_UPDATE"),
        atomic_mode=enum_param(query, "atomicMode", ATOMIC_MODES, "ALL"),
        report_mode=enum_param(query, "reportMode", REPORT_MODES, "ERRORS"),
        asynchronous=_asynchronous(first(query, "async"), version),
    )


def _asynchronous(raw: str | None, version: ServerVersion) -> bool:
    if raw is None:
        return True
    if not version.async_flag_is_boolean:
        return raw != "false"
    if raw.strip().lower() not in ("true", "false"):
        raise BadRequest(f"Value `{raw}` is not valid for parameter `async`: use true or false")
    return raw.strip().lower() == "true"


# --- payload -----------------------------------------------------------------------------------


def parse_json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("JSON parse error: the request body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest("JSON parse error: the document is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise BadRequest(
            f"JSON parse error: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None


def tracker_events(payload: Any) -> list[Event]:
    """The normalised events of a /api/tracker body."""
    if not isinstance(payload, dict):
        raise BadRequest('The request body must be a JSON object such as {"events": [...]}')
    for key in ("trackedEntities", "enrollments", "relationships"):
        if payload.get(key):
            raise BadRequest(
                f"`{key}` cannot be imported: the sandbox holds an event program, send `events`"
            )
    raw_events = payload.get("events") or []
    if not isinstance(raw_events, list):
        raise BadRequest("`events` must be a list")
    return [normalize_event(raw, f"events[{index}]") for index, raw in enumerate(raw_events)]


def normalize_event(
    raw: Any,
    where: str,
    *,
    occurred_key: str = "occurredAt",
    scheduled_key: str = "scheduledAt",
) -> Event:
    """One payload event in a fixed shape; a value of the wrong JSON type is a 400 naming it.

    An event without `event` gets a server-generated UID, as DHIS2 does.
    """
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a JSON object")
    status = _text(raw, "status", where) or "ACTIVE"
    if status not in EVENT_STATUSES:
        raise BadRequest(f"{where}.status `{status}` is not one of {', '.join(EVENT_STATUSES)}")
    return {
        "event": _text(raw, "event", where) or new_uid(),
        "program": _text(raw, "program", where),
        "programStage": _text(raw, "programStage", where),
        "orgUnit": _text(raw, "orgUnit", where),
        "status": status,
        "occurredAt": _timestamp(raw, occurred_key, where),
        "scheduledAt": _timestamp(raw, scheduled_key, where),
        "completedAt": _timestamp(raw, "completedAt", where),
        "attributeOptionCombo": _text(raw, "attributeOptionCombo", where),
        "geometry": _geometry(raw, where),
        "notes": _notes(raw, where),
        "dataValues": _data_values(raw, where),
    }


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{key} must be a string")
    return value


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _timestamp(raw: dict[str, Any], key: str, where: str) -> str | None:
    """An ISO date or date-time as DHIS2 exports it (server time, milliseconds), or None."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        raise BadRequest(f"{where}.{key} `{value}` is not a valid ISO date or date-time") from None
    if zone:
        # The sandbox runs on Africa/Accra time, which is UTC all year.
        sign = -1 if zone.startswith("-") else 1
        digits = zone.lstrip("+-").replace(":", "") if zone != "Z" else "0000"
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment = (moment.replace(tzinfo=timezone(sign * offset))).astimezone(timezone.utc)
        moment = moment.replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds")


def _geometry(raw: dict[str, Any], where: str) -> dict[str, Any] | None:
    geometry = raw.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise BadRequest(f"{where}.geometry must be a GeoJSON object")
    return geometry


def _notes(raw: dict[str, Any], where: str) -> list[dict[str, str]]:
    notes = raw.get("notes") or []
    if not isinstance(notes, list):
        raise BadRequest(f"{where}.notes must be a list")
    normalized = []
    for index, note in enumerate(notes):
        if not isinstance(note, dict):
            raise BadRequest(f"{where}.notes[{index}] must be a JSON object")
        value = _text(note, "value", f"{where}.notes[{index}]")
        if value:  # DHIS2 ignores notes without text
            normalized.append(
                {"note": _text(note, "note", f"{where}.notes[{index}]"), "value": value}
            )
    return normalized


def _data_values(raw: dict[str, Any], where: str) -> list[dict[str, str | None]]:
    data_values = raw.get("dataValues") or []
    if not isinstance(data_values, list):
        raise BadRequest(f"{where}.dataValues must be a list")
    normalized = []
    for index, data_value in enumerate(data_values):
        place = f"{where}.dataValues[{index}]"
        if not isinstance(data_value, dict):
            raise BadRequest(f"{place} must be a JSON object")
        normalized.append(
            {
                "dataElement": _text(data_value, "dataElement", place),
                "value": _value(data_value, place),
            }
        )
    return normalized


def _value(data_value: dict[str, Any], place: str) -> str | None:
    """Values travel as strings; like DHIS2's JSON reader, numbers and booleans become text."""
    value = data_value.get("value")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise BadRequest(f"{place}.value must be a string")


# --- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventResult:
    uid: str
    problems: list[Problem]
    action: str | None  # CREATE, UPDATE or DELETE once stored; None when not stored


@dataclass(frozen=True)
class ImportOutcome:
    status: str  # OK or ERROR
    report: dict[str, Any]  # the complete report; see filter_report
    results: list[EventResult]


def _stats(
    created: int = 0, updated: int = 0, deleted: int = 0, ignored: int = 0
) -> dict[str, int]:
    total = created + updated + deleted + ignored
    return {
        "created": created,
        "updated": updated,
        "deleted": deleted,
        "ignored": ignored,
        "total": total,
    }


class _Checked(NamedTuple):
    event: Event
    strategy: str  # effective: CREATE, UPDATE or DELETE
    problems: list[Problem]


class Importer:
    def __init__(self, catalog: Catalog, store: EventStore, version: ServerVersion) -> None:
        self._catalog = catalog
        self._store = store
        self._with_args = version.error_reports_have_args

    def run(self, events: list[Event], options: ImportOptions, username: str) -> ImportOutcome:
        """Validate and (unless VALIDATE or rejected as a whole) store the events atomically."""
        started = time.perf_counter()
        validator = EventValidator(self._catalog, self._catalog.users[username])
        with self._store.transaction() as stored:
            checked = []
            for event in events:
                self._fill_program_and_stage(event)
                existing = stored.get(event["event"])
                strategy = _effective_strategy(options.import_strategy, existing)
                problems = validator.validate(event, strategy, existing)
                checked.append(_Checked(event, strategy, problems))
            validated = time.perf_counter()
            errors = [
                error_report(code, args, item.event["event"], with_args=self._with_args)
                for item in checked
                for code, args in item.problems
            ]
            ignored = sum(1 for item in checked if item.problems)
            if ignored and options.atomic_mode == "ALL":
                results = [
                    EventResult(item.event["event"], item.problems, None) for item in checked
                ]
                report = _report("ERROR", errors, _stats(ignored=len(events)), None)
                return ImportOutcome("ERROR", report, results)
            commit = options.import_mode == "COMMIT"
            now = datetime.now().isoformat(timespec="milliseconds")
            results = [
                EventResult(
                    item.event["event"],
                    item.problems,
                    _store(stored, item, now, username) if commit and not item.problems else None,
                )
                for item in checked
            ]
        actions = [result.action for result in results if result.action]
        counts = _stats(actions.count("CREATE"), actions.count("UPDATE"), actions.count("DELETE"))
        bundle = _bundle_report(counts, results) if commit else _empty_bundle_report()
        stats = {**counts, "ignored": ignored, "total": counts["total"] + ignored}
        report = _report("OK", errors, stats, bundle)
        finished = time.perf_counter()
        report["timingsStats"] = {
            "timers": {
                "validation": f"{validated - started:.6f} sec.",
                "commit": f"{finished - validated:.6f} sec.",
                "totalImport": f"{finished - started:.6f} sec.",
            }
        }
        return ImportOutcome("OK", report, results)

    def _fill_program_and_stage(self, event: Event) -> None:
        """DHIS2's pre-processing: the program follows from the stage, and an event program's
        only stage follows from the program."""
        stage = self._catalog.stages.get(event["programStage"])
        if not event["program"] and stage is not None:
            event["program"] = stage.program_uid
        if not event["programStage"] and event["program"]:
            event["programStage"] = self._catalog.event_program_stage(event["program"]) or ""


def _effective_strategy(requested: str, existing: Event | None) -> str:
    if requested == "CREATE_AND_UPDATE":
        return "UPDATE" if existing is not None else "CREATE"
    return requested


def _store(stored: dict[str, Event], item: _Checked, now: str, username: str) -> str:
    """Write one validated event; returns what happened to it (CREATE, UPDATE or DELETE).

    Decided on the current row rather than the validated strategy, so an event sent twice in
    one payload is created once and then updated."""
    event = item.event
    current = stored.get(event["event"])
    if item.strategy == "DELETE":
        assert current is not None, "validation rejects DELETE of an unknown event (E1032)"
        stored[event["event"]] = {**current, "deleted": True, "updatedAt": now}
        return "DELETE"
    if current is None:
        stored[event["event"]] = _new_event(event, now, username)
        return "CREATE"
    stored[event["event"]] = _updated_event(current, event, now, username)
    return "UPDATE"


def _new_event(event: Event, now: str, username: str) -> Event:
    stored: Event = {
        "event": event["event"],
        "status": event["status"],
        "program": event["program"],
        "programStage": event["programStage"],
        "orgUnit": event["orgUnit"],
        "occurredAt": event["occurredAt"],
        "storedBy": username,
        "createdAt": now,
        "updatedAt": now,
        "attributeOptionCombo": event["attributeOptionCombo"] or DEFAULT_ATTRIBUTE_OPTION_COMBO,
        "deleted": False,
        "followUp": False,
        "dataValues": [],
        "notes": [],
    }
    return _apply_changes(stored, event, now, username)


def _updated_event(current: Event, event: Event, now: str, username: str) -> Event:
    """DHIS2 replaces the event's properties; data values are merged (null deletes one)."""
    updated = {
        **current,
        "status": event["status"],
        "program": event["program"],
        "programStage": event["programStage"],
        "orgUnit": event["orgUnit"],
        "occurredAt": event["occurredAt"],
        "updatedAt": now,
    }
    if event["attributeOptionCombo"]:
        updated["attributeOptionCombo"] = event["attributeOptionCombo"]
    return _apply_changes(updated, event, now, username)


def _apply_changes(stored: Event, event: Event, now: str, username: str) -> Event:
    for optional in ("scheduledAt", "geometry"):
        if event[optional] is not None:
            stored[optional] = event[optional]
    if event["status"] == "COMPLETED":
        stored["completedAt"] = event["completedAt"] or stored.get("completedAt") or now
        stored["completedBy"] = stored.get("completedBy") or username
    else:
        stored.pop("completedAt", None)
        stored.pop("completedBy", None)
    values = {value["dataElement"]: value for value in stored["dataValues"]}
    for change in event["dataValues"]:
        element = change["dataElement"]
        if change["value"] is None:
            values.pop(element, None)
            continue
        previous = values.get(element)
        values[element] = {
            "dataElement": element,
            "value": change["value"],
            "providedElsewhere": False,
            "storedBy": username,
            "createdAt": previous["createdAt"] if previous else now,
            "updatedAt": now,
        }
    stored["dataValues"] = list(values.values())
    stored["notes"] = [
        *stored["notes"],
        *(
            {
                "note": note["note"] or new_uid(),
                "value": note["value"],
                "storedAt": now,
                "storedBy": username,
            }
            for note in event["notes"]
        ),
    ]
    return stored


# --- report ------------------------------------------------------------------------------------


def _report(
    status: str, errors: list[dict[str, Any]], stats: dict[str, int], bundle: dict[str, Any] | None
) -> dict[str, Any]:
    """With atomicMode=ALL and errors, DHIS2 leaves `bundleReport` out altogether."""
    report: dict[str, Any] = {
        "status": status,
        "validationReport": {"errorReports": errors, "warningReports": []},
        "stats": stats,
    }
    if bundle is not None:
        report["bundleReport"] = bundle
    return report


def _bundle_report(stats: dict[str, int], results: list[EventResult]) -> dict[str, Any]:
    type_reports: dict[str, dict[str, Any]] = {
        tracker_type: {"trackerType": tracker_type, "stats": _stats(), "objectReports": []}
        for tracker_type in TRACKER_TYPES
    }
    type_reports["EVENT"] = {
        "trackerType": "EVENT",
        "stats": stats,
        "objectReports": [
            {"trackerType": "EVENT", "uid": result.uid, "errorReports": []}
            for result in results
            if result.action
        ],
    }
    return {"status": "OK", "typeReportMap": type_reports, "stats": stats}


def _empty_bundle_report() -> dict[str, Any]:
    """importMode=VALIDATE stores nothing and reports no types."""
    return {"status": "OK", "typeReportMap": {}, "stats": _stats()}


def filter_report(report: dict[str, Any], report_mode: str) -> dict[str, Any]:
    """The report as a client asked for it with reportMode.

    ERRORS drops warnings; ERRORS and WARNINGS drop per-object reports and timings, which only
    FULL shows. (DHIS2 itself also sends objectReports for ERRORS; leaving them out keeps clients
    from depending on details they did not ask for.)
    """
    view = {
        key: value
        for key, value in report.items()
        if key != "timingsStats" or report_mode == "FULL"
    }
    if report_mode == "ERRORS":
        view["validationReport"] = {**report["validationReport"], "warningReports": []}
    if report_mode != "FULL" and "bundleReport" in report:
        bundle = report["bundleReport"]
        view["bundleReport"] = {
            **bundle,
            "typeReportMap": {
                tracker_type: {
                    key: value for key, value in type_report.items() if key != "objectReports"
                }
                for tracker_type, type_report in bundle["typeReportMap"].items()
            },
        }
    return view


def completion_message(report: dict[str, Any]) -> str:
    stats = report["stats"]
    return (
        f"Import complete with status {report['status']}, {stats['created']} created, "
        f"{stats['updated']} updated, {stats['deleted']} deleted, {stats['ignored']} ignored"
    )
