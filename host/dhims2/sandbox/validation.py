"""Event validation with DHIS2 2.41's rules, error codes, message templates and order.

Mirrors dhis2-core's EventValidator: a sequence of checks per event where the first check that
finds a problem stops the rest (uid format, existence, mandatory fields, metadata references,
program relations, capture scope), then dates and data values are all checked together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from dhims2.dhis2.periods import period_end
from dhims2.dhis2.uids import is_uid
from dhims2.sandbox.catalog import Catalog, StageRules, user_authorities
from dhims2.sandbox.store import Event

Problem = tuple[str, list[str]]  # (error code, message arguments)

MESSAGES = {
    "E1000": "User: `{0}`, has no write access to OrganisationUnit: `{1}`.",
    "E1010": "Could not find Program: `{0}`, linked to Event.",
    "E1011": "Could not find OrganisationUnit: `{0}`, linked to Event.",
    "E1013": "Could not find ProgramStage: `{0}`, linked to Event.",
    "E1029": "Event OrganisationUnit: `{0}`, and Program: `{1}`, don't match.",
    "E1030": "Event: `{0}`, already exists.",
    "E1031": "Event OccurredAt date is missing.",
    "E1032": "Event: `{0}`, do not exist.",
    "E1043": (
        "Event: `{0}`, completeness date has expired. Not possible to make changes to this event."
    ),
    "E1046": "Event: `{0}`, needs to have at least one (event or schedule) date.",
    "E1047": (
        "Event: `{0}`, date belongs to an expired period. It is not possible to create such event."
    ),
    "E1048": "Object: `{0}`, uid: `{1}`, has an invalid uid format.",
    "E1050": "Event ScheduledAt date is missing.",
    "E1076": "`{0}` `{1}` is mandatory and cannot be null",
    "E1082": "Event: `{0}`, is already deleted and cannot be modified.",
    "E1089": (
        "Event: `{0}`, references a Program Stage `{1}` that does not belong to Program `{2}`."
    ),
    "E1123": "Missing required event property: `{0}`.",
    "E1125": "Value `{0}` is not a valid option code in option set `{1}`",
    "E1302": "DataElement `{0}` is not valid: `{1}`",
    "E1303": "Mandatory DataElement `{0}` is not present",
    "E1304": "DataElement `{0}` is not a valid data element",
    "E1305": "DataElement `{0}` is not part of `{1}` program stage",
    "E1055": (
        "Default AttributeOptionCombo is not allowed since program has non-default CategoryCombo."
    ),
    "E1326": (
        "Event `{0}` is completed and its ProgramStage blocks the entry form after completion."
        " Reopen the Event before updating."
    ),
}


def format_message(code: str, args: list[str]) -> str:
    message = MESSAGES[code]
    for index, arg in enumerate(args):
        message = message.replace(f"{{{index}}}", arg)
    return message


def error_report(code: str, args: list[str], uid: str, *, with_args: bool) -> dict[str, Any]:
    report: dict[str, Any] = {
        "message": format_message(code, args),
        "errorCode": code,
        "trackerType": "EVENT",
        "uid": uid,
    }
    if with_args:
        report["args"] = list(args)
    return report


# --- value types -------------------------------------------------------------------------------

VALUE_MAX_LENGTH = 50_000
_INT_RANGE = range(-(2**31), 2**31)
_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
_PHONE_NUMBER = re.compile(r"[0-9+()#.\s/ext-]{6,50}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _integer_in(predicate: Callable[[int], bool]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return (
            _INTEGER.fullmatch(value) is not None
            and int(value) in _INT_RANGE
            and predicate(int(value))
        )

    return check


def _is_date(value: str) -> bool:
    if _DATE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    match = _DATETIME.fullmatch(value)
    if match is None or not _is_date(match.group(1)):
        return False
    hour, minute, second = int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
    return hour < 24 and minute < 60 and second < 60


def _is_percentage(value: str) -> bool:
    return _NUMBER.fullmatch(value) is not None and 0 <= float(value) <= 100


# value type -> (check, DHIS2's key for a value that fails it)
_VALUE_TYPE_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "NUMBER": (lambda value: _NUMBER.fullmatch(value) is not None, "value_not_numeric"),
    "INTEGER": (_integer_in(lambda number: True), "value_not_integer"),
    "INTEGER_POSITIVE": (_integer_in(lambda number: number > 0), "value_not_positive_integer"),
    "INTEGER_NEGATIVE": (_integer_in(lambda number: number < 0), "value_not_negative_integer"),
    "INTEGER_ZERO_OR_POSITIVE": (
        _integer_in(lambda number: number >= 0),
        "value_not_zero_or_positive_integer",
    ),
    "PERCENTAGE": (_is_percentage, "value_not_percentage"),
    "BOOLEAN": (lambda value: value.lower() in ("true", "false"), "value_not_bool"),
    "TRUE_ONLY": (lambda value: value.lower() == "true", "value_not_true_only"),
    "DATE": (_is_date, "value_not_valid_date"),
    "AGE": (_is_date, "value_not_valid_date"),  # DHIS2 stores an age as the date of birth
    "DATETIME": (_is_datetime, "value_not_valid_datetime"),
    "PHONE_NUMBER": (
        lambda value: _PHONE_NUMBER.fullmatch(value) is not None,
        "value_not_valid_phone_number",
    ),
    "EMAIL": (lambda value: _EMAIL.fullmatch(value) is not None, "value_not_valid_email"),
}


def value_type_problem(value_type: str, value: str) -> str | None:
    """DHIS2's key (`value_not_integer`, ...) for a value that does not fit, else None.

    Like DHIS2, a blank value fits every type, and TEXT / LONG_TEXT only have a length limit.
    """
    if not value.strip():
        return None
    if len(value) > VALUE_MAX_LENGTH:
        return "value_length_greater_than_max_length"
    check = _VALUE_TYPE_CHECKS.get(value_type)
    if check is None:
        return None
    fits, key = check
    return None if fits(value) else key


# --- events ------------------------------------------------------------------------------------


def needs_data_value_validation(status: str, stage: StageRules) -> bool:
    """When DHIS2 enforces compulsory data elements (ValidationUtils.needsToValidateDataValues).

    Never for SCHEDULE or SKIPPED events. With the stage's validationStrategy ON_COMPLETE (the
    default, and this program's) only COMPLETED events are checked; with ON_UPDATE_AND_INSERT
    every event is. So an ACTIVE In-Patient event may be saved with compulsory values missing.
    """
    if status in ("SCHEDULE", "SKIPPED"):
        return False
    if stage.validation_strategy == "ON_COMPLETE":
        return status == "COMPLETED"
    return True


@dataclass(frozen=True)
class _Candidate:
    event: Event
    strategy: str  # effective strategy: CREATE, UPDATE or DELETE
    existing: Event | None  # the stored event with the same uid


class EventValidator:
    """Validates normalised events for one importing user; see importer.normalize_event."""

    def __init__(
        self, catalog: Catalog, user: dict[str, Any], *, e1302_names_value_type: bool = False
    ) -> None:
        self._catalog = catalog
        self._user = user
        self._e1302_names_value_type = e1302_names_value_type

    def validate(self, event: Event, strategy: str, existing: Event | None) -> list[Problem]:
        """Problems of one event, given the effective strategy (CREATE, UPDATE or DELETE)."""
        candidate = _Candidate(event, strategy, existing)
        if strategy == "DELETE":
            # DHIS2 runs only the existence and ownership checks for deletions.
            return self._existence(candidate) or self._capture_scope(candidate)
        for check in (
            self._uid_format,
            self._existence,
            self._mandatory_fields,
            self._references,
            self._relations,
            self._capture_scope,
        ):
            problems = check(candidate)
            if problems:
                return problems
        return self._dates(event) + self._data_values(event) + self._update_rules(candidate)

    def _update_rules(self, candidate: _Candidate) -> list[Problem]:
        """Rules only an update meets: a completed event in a stage that blocks entry after
        completion (BlockEntryFormAfterCompletionValidator, E1326), and a completed event older
        than the program's completeEventsExpiryDays (DateValidator.validateCompletionExpiryDays,
        E1043; the stored completion date counts)."""
        event, existing = candidate.event, candidate.existing
        if candidate.strategy != "UPDATE" or existing is None:
            return []
        problems: list[Problem] = []
        stage = self._catalog.stages.get(event["programStage"])
        completed_before = existing["status"] == "COMPLETED"
        if stage and stage.block_entry_form and completed_before and event["status"] == "COMPLETED":
            problems.append(("E1326", [event["event"]]))
        program = self._catalog.programs.get(event["program"], {})
        expiry_days = program.get("completeEventsExpiryDays", 0)
        completed_at = existing.get("completedAt") if completed_before else None
        if expiry_days and completed_at and not self._enters_expired_periods():
            expires = datetime.fromisoformat(completed_at) + timedelta(days=expiry_days)
            if datetime.now() > expires:
                problems.append(("E1043", [event["event"]]))
        return problems

    def _uid_format(self, candidate: _Candidate) -> list[Problem]:
        notes = candidate.event["notes"]
        uids = [candidate.event["event"], *(note["note"] for note in notes if note["note"])]
        return [("E1048", [uid, uid, uid]) for uid in uids if not is_uid(uid)]

    def _existence(self, candidate: _Candidate) -> list[Problem]:
        uid, existing = candidate.event["event"], candidate.existing
        if existing is not None and existing["deleted"]:
            return [("E1082", [uid])]
        if existing is not None and candidate.strategy == "CREATE":
            return [("E1030", [uid])]
        if existing is None and candidate.strategy in ("UPDATE", "DELETE"):
            return [("E1032", [uid])]
        return []

    def _mandatory_fields(self, candidate: _Candidate) -> list[Problem]:
        event = candidate.event
        problems = []
        if not event["orgUnit"]:
            problems.append(("E1123", ["orgUnit"]))
        if not event["programStage"]:
            problems.append(("E1123", ["programStage"]))
        # The program is only required when no known stage implies it.
        if event["programStage"] not in self._catalog.stages and not event["program"]:
            problems.append(("E1123", ["program"]))
        return problems

    def _references(self, candidate: _Candidate) -> list[Problem]:
        event = candidate.event
        problems = []
        if event["orgUnit"] not in self._catalog.org_units:
            problems.append(("E1011", [event["orgUnit"]]))
        if event["program"] not in self._catalog.programs:
            problems.append(("E1010", [event["program"]]))
        if event["programStage"] not in self._catalog.stages:
            problems.append(("E1013", [event["programStage"]]))
        return problems

    def _relations(self, candidate: _Candidate) -> list[Problem]:
        event = candidate.event
        program, stage, org_unit = event["program"], event["programStage"], event["orgUnit"]
        problems = []
        if self._catalog.stages[stage].program_uid != program:
            problems.append(("E1089", [event["event"], stage, program]))
        if org_unit not in self._catalog.program_org_units[program]:
            problems.append(("E1029", [org_unit, program]))
        # DataRelationsValidator: a program with a non-default category combo refuses an event
        # without an attribute option combo (the default one is filled in otherwise).
        combo = self._catalog.programs[program].get("categoryCombo") or {}
        if combo.get("isDefault") is False and not event["attributeOptionCombo"]:
            problems.append(("E1055", []))
        return problems

    def _capture_scope(self, candidate: _Candidate) -> list[Problem]:
        # Like DHIS2, updates and deletions are checked against the stored event's org unit.
        stored = candidate.existing
        org_unit = stored["orgUnit"] if stored is not None else candidate.event["orgUnit"]
        if self._catalog.in_capture_scope(self._user, org_unit):
            return []
        return [("E1000", [self._user["id"], org_unit])]

    def _dates(self, event: Event) -> list[Problem]:
        # An event program needs occurredAt whatever the status; tracker programs only when
        # ACTIVE or COMPLETED (dhis2-core DateValidator).
        if event["occurredAt"] is None and (
            self._catalog.is_event_program(event["program"])
            or event["status"] in ("ACTIVE", "COMPLETED")
        ):
            return [("E1031", [event["event"]])]
        if event["scheduledAt"] is None and event["status"] == "SCHEDULE":
            return [("E1050", [event["event"]])]
        return self._expired_period(event)

    def _expired_period(self, event: Event) -> list[Problem]:
        """DateValidator.validateExpiryPeriodType (dhis2-core 2.41, lines 125-158): an event
        whose date lies in a period that ended more than the program's expiryDays ago, unless
        the user holds F_EDIT_EXPIRED (or ALL)."""
        program = self._catalog.programs.get(event["program"], {})
        period_type, days = program.get("expiryPeriodType"), program.get("expiryDays", 0)
        if not period_type or not days or self._enters_expired_periods():
            return []
        reference = event["occurredAt"] or event["scheduledAt"]
        if reference is None:
            return [("E1046", [event["event"]])]
        end = period_end(period_type, date.fromisoformat(reference[:10]))
        # The period's end at 00:00, plus the expiry days and one more for its last 24 hours.
        if end is not None and end + timedelta(days=days + 1) <= date.today():
            return [("E1047", [event["event"]])]
        return []

    def _enters_expired_periods(self) -> bool:
        return not {"ALL", "F_EDIT_EXPIRED"}.isdisjoint(user_authorities(self._user))

    def _data_values(self, event: Event) -> list[Problem]:
        problems: list[Problem] = []
        stage = self._catalog.stages[event["programStage"]]
        enforce_mandatory = needs_data_value_validation(event["status"], stage)
        for data_value in event["dataValues"]:
            element_uid, value = data_value["dataElement"], data_value["value"]
            rule = self._catalog.data_elements.get(element_uid)
            if rule is None:
                problems.append(("E1304", [element_uid]))
            elif value is None:
                if enforce_mandatory and element_uid in stage.compulsory:
                    problems.append(("E1076", ["DataElement", element_uid]))
            elif rule.option_codes is not None:
                # Option sets take the option code; DHIS2 skips the value type check for them.
                if value not in rule.option_codes:
                    problems.append(("E1125", [value, rule.option_set_uid or ""]))
            else:
                key = value_type_problem(rule.value_type, value)
                if key is not None and self._e1302_names_value_type:
                    sentence = f"Value type is {rule.value_type} but the value `{value}` is not."
                    problems.append(("E1302", [rule.value_type, sentence]))
                elif key is not None:
                    problems.append(("E1302", [element_uid, key]))
        in_payload = dict.fromkeys(data_value["dataElement"] for data_value in event["dataValues"])
        if enforce_mandatory:
            problems.extend(("E1303", [uid]) for uid in stage.compulsory if uid not in in_payload)
        problems.extend(
            ("E1305", [uid, stage.uid]) for uid in in_payload if uid not in stage.data_elements
        )
        return problems
