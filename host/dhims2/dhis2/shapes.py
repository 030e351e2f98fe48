"""Checks on what goes to DHIS2 and on the shape of what comes back, before anyone relies on it."""

from __future__ import annotations

from typing import Any

from dhims2.dhis2.errors import BadServerResponse, InvalidInput
from dhims2.dhis2.uids import is_uid

IMPORT_MODES = ("COMMIT", "VALIDATE")
IMPORT_STRATEGIES = ("CREATE", "UPDATE", "CREATE_AND_UPDATE", "DELETE")
ATOMIC_MODES = ("ALL", "OBJECT")
REPORT_STATUSES = ("OK", "WARNING", "ERROR")


def require_uid(value: object, what: str) -> None:
    if not is_uid(value):
        shown = repr(value)[:40]
        raise InvalidInput(
            f"{what} {shown} is not a DHIS2 UID (11 letters or digits, starting with a letter)"
        )


def choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise InvalidInput(f"{name} must be one of {', '.join(allowed)}")


def import_params(import_mode: str, import_strategy: str, atomic_mode: str) -> dict[str, str]:
    return {
        "importMode": choice(import_mode, IMPORT_MODES, "import_mode"),
        "importStrategy": choice(import_strategy, IMPORT_STRATEGIES, "import_strategy"),
        "atomicMode": choice(atomic_mode, ATOMIC_MODES, "atomic_mode"),
    }


def events_body(events: object) -> dict[str, list[dict]]:
    if not isinstance(events, list) or not events:
        raise InvalidInput("events must be a non-empty list of event objects")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise InvalidInput(f"events[{index}] is not an event object")
    return {"events": events}


def field(body: object, name: str, kind: type, what: str) -> Any:
    if not isinstance(body, dict):
        raise BadServerResponse(f"{what}: expected an object, got {type(body).__name__}")
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadServerResponse(f"{what}: '{name}' is missing or not a {kind.__name__}")
    return value


def validated_report(body: dict, what: str) -> dict:
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


def count(body: dict, name: str, what: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadServerResponse(f"{what}: '{name}' is not a count")
    return value
