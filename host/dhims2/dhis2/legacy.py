"""The legacy /api/events API (servers before 2.36): its event shape and its ImportSummaries,
turned into what the tracker API gives, so callers treat both alike."""

from __future__ import annotations

from dhims2.dhis2.errors import BadServerResponse
from dhims2.dhis2.shapes import count

_LEGACY_ERROR_CODE = "LEGACY_CONFLICT"


def legacy_event(event: dict) -> dict:
    """A tracker event as /api/events wants it: `occurredAt` is called `eventDate` there."""
    converted = {key: value for key, value in event.items() if key != "occurredAt"}
    if "occurredAt" in event:
        converted["eventDate"] = event["occurredAt"]
    return converted


def report_from_import_summaries(summaries: dict, events: list[dict]) -> dict:
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
            "created": count(summaries, "imported", what),
            "updated": count(summaries, "updated", what),
            "deleted": count(summaries, "deleted", what),
            "ignored": count(summaries, "ignored", what),
            "total": count(summaries, "total", what),
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


def tracker_event_from_legacy(event: dict) -> dict:
    converted = {key: value for key, value in event.items() if key != "eventDate"}
    if "eventDate" in event:
        converted["occurredAt"] = event["eventDate"]
    return converted
