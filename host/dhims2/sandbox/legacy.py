"""The deprecated /api/events import (removed in 2.42): synchronous, per event, ImportSummaries."""

from __future__ import annotations

from typing import Any

from dhims2.sandbox.importer import ImportOutcome, normalize_event
from dhims2.sandbox.store import Event
from dhims2.sandbox.validation import Problem, format_message
from dhims2.sandbox.webmessage import BadRequest, web_message

_COUNT_KEYS = {"CREATE": "imported", "UPDATE": "updated", "DELETE": "deleted"}


def legacy_events(payload: Any) -> list[Event]:
    """`{"events": [...]}` or a single event, with `eventDate`/`dueDate` for the tracker's
    `occurredAt`/`scheduledAt`."""
    if isinstance(payload, dict) and "events" in payload:
        raw_events = payload["events"]
        if not isinstance(raw_events, list):
            raise BadRequest("`events` must be a list")
    elif isinstance(payload, dict):
        raw_events = [payload]
    else:
        raise BadRequest('The request body must be a JSON object such as {"events": [...]}')
    return [
        normalize_event(raw, f"events[{index}]", occurred_key="eventDate", scheduled_key="dueDate")
        for index, raw in enumerate(raw_events)
    ]


def import_summaries(outcome: ImportOutcome) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when every event was imported, else 409 with the conflicts."""
    summaries = [_summary(result.uid, result.action, result.problems) for result in outcome.results]
    totals = {
        key: sum(summary["importCount"][key] for summary in summaries)
        for key in ("imported", "updated", "deleted", "ignored")
    }
    failed = totals["ignored"] > 0
    response = {
        "responseType": "ImportSummaries",
        "status": "ERROR" if failed else "SUCCESS",
        **totals,
        "total": len(summaries),
        "importSummaries": summaries,
    }
    if failed:
        return 409, web_message(
            409, "An error occurred, please check import summary.", response=response
        )
    return 200, web_message(200, "Import was successful.", response=response)


def _summary(uid: str, action: str | None, problems: list[Problem]) -> dict[str, Any]:
    counts = {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0}
    counts[_COUNT_KEYS[action] if action else "ignored"] = 1
    return {
        "responseType": "ImportSummary",
        "status": "SUCCESS" if action else "ERROR",
        "importCount": counts,
        "conflicts": [_conflict(uid, code, args) for code, args in problems],
        "reference": uid,
    }


def _conflict(uid: str, code: str, args: list[str]) -> dict[str, str]:
    # Data value problems name the data element, as the legacy importer did; others the event.
    subject = args[0] if code.startswith("E13") else uid
    return {"object": subject, "value": format_message(code, args), "errorCode": code}
