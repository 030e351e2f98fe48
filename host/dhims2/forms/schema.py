"""JSON Schema of a DHIS2 event for one program stage, and the messages of its faults (DHIS2 codes).

The schema is generated from the stage metadata: one value schema per data element (option codes
as an enum, the value type as a pattern or format), the program's org units, the UID format, and
DHIS2's rules on when a value is required:

- occurredAt is required for ACTIVE and COMPLETED events (E1031), ACTIVE being the default status.
- Compulsory data elements (E1303) follow DHIS2's `needsToValidateDataValues` (dhis2-core, tracker
  `ValidationUtils`): with the stage's validationStrategy ON_COMPLETE, DHIS2's default, they are
  enforced only for COMPLETED events; with ON_UPDATE_AND_INSERT, for every status except SCHEDULE
  and SKIPPED.
- Events with status SCHEDULE, SKIPPED or OVERDUE may carry no data values (E1315).

`event_schema` describes the payload exactly as DHIS2 receives it, where `dataValues` is a list,
so a value's rules are an if/then per data element: it is the published contract. The same rules
over a keyed view of the event, `dataValues` as {uid: value}, are `keyed_event_schema`, which
EventValidator (validation.py) compiles into plain checks once per stage.

jsonschema is imported only by `format_checker`, for those who validate against the contract
itself; the host and the mapping never need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from dhims2.dhis2.uids import UID_PATTERN
from dhims2.forms.program import DataElement, ProgramForm
from dhims2.forms.records import RecordError

STATUSES = ("ACTIVE", "COMPLETED", "VISITED", "SCHEDULE", "OVERDUE", "SKIPPED")
_STATUSES_REQUIRING_OCCURRED_AT = ("ACTIVE", "COMPLETED")
_STATUSES_WITHOUT_DATA_VALUES = ("SCHEDULE", "SKIPPED", "OVERDUE")
_STATUSES_NEVER_VALIDATED = ("SCHEDULE", "SKIPPED")
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DATE = r"\d{4}-\d{2}-\d{2}"
# The date-times DHIS2 parses (DateUtils SUPPORTED_DATE_TIME_FORMAT_PARSERS, used for DATETIME
# values and, through ParseInstantStdDeserializer, for occurredAt): `T` before the time, which
# may stop after the hour or the minutes; 3, 4, 6 or 9 digits of fraction; a space only in
# `yyyy-MM-dd HH:mm:ssZ`. An occurredAt it cannot parse fails the whole payload with a 400.
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})"
_DATE_AND_TIME = (
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(?:\d{9}|\d{6}|\d{4}|\d{3}))?)?)?"
    rf"{_ZONE}?| (\d{{2}}):(\d{{2}}):(\d{{2}}){_ZONE})"
)
_DATE_PATTERN = f"^{_DATE}$"
_DATETIME_PATTERN = f"^{_DATE_AND_TIME}$"
_DATE_OR_DATETIME_PATTERN = f"^(?:{_DATE}|{_DATE_AND_TIME})$"
_DATETIME = re.compile(_DATETIME_PATTERN)
# DHIS2's own limit on a data value's length (ValidationUtils.VALUE_MAX_LENGTH).
_TEXT_MAX_LENGTH = 50_000
_MESSAGE_VALUE_LENGTH = 60
_LISTED_OPTIONS_MAX = 12


def _up_to(limit: int) -> str:
    """A regular expression for the whole numbers 1..limit without leading zeros."""
    digits = str(limit)
    shorter = f"[1-9]\\d{{0,{len(digits) - 2}}}"
    same_length = [
        digits[:i] + f"[{lowest}-{int(d) - 1}]" + f"\\d{{{len(digits) - i - 1}}}"
        for i, d in enumerate(digits)
        if int(d) > (lowest := 1 if i == 0 else 0)
    ]
    return "(?:" + "|".join([shorter, *same_length, digits]) + ")"


# DHIS2 checks integers as Java ints (MathUtils.isInteger: IntegerValidator): 32 bits.
_POSITIVE_INT = _up_to(2**31 - 1)
_NEGATIVE_INT = f"-{_up_to(2**31)}"

# Value type -> the rules DHIS2 applies (dhis2-core MathUtils and ValidationUtils.valueIsValid).
_VALUE_TYPE_RULES: dict[str, dict[str, Any]] = {
    # MathUtils.NUMERIC_REGEXP: no exponent.
    "NUMBER": {"pattern": r"^(-?0|-?[1-9]\d*)(\.\d+)?$"},
    "INTEGER": {"pattern": f"^(0|{_POSITIVE_INT}|{_NEGATIVE_INT})$"},
    "INTEGER_POSITIVE": {"pattern": f"^{_POSITIVE_INT}$"},
    "INTEGER_ZERO_OR_POSITIVE": {"pattern": f"^(0|{_POSITIVE_INT})$"},
    "INTEGER_NEGATIVE": {"pattern": f"^{_NEGATIVE_INT}$"},
    # MathUtils.isPercentage: a NUMBER from 0 to 100, decimals allowed.
    "PERCENTAGE": {"pattern": r"^(-?0(\.0+)?|0\.\d+|[1-9]\d?(\.\d+)?|100(\.0+)?)$"},
    "BOOLEAN": {"enum": ["true", "false"]},
    "TRUE_ONLY": {"const": "true"},
    "DATE": {"pattern": _DATE_PATTERN, "format": "date"},
    "AGE": {"pattern": _DATE_PATTERN, "format": "date"},
    "DATETIME": {"pattern": _DATETIME_PATTERN, "format": "date-time"},
    "EMAIL": {"pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
    "PHONE_NUMBER": {"pattern": r"^[0-9+()#.\s/ext-]{6,50}$"},
    "TEXT": {"maxLength": _TEXT_MAX_LENGTH},
}

# What a clerk should write, per value type, completing "write ...".
VALUE_TYPE_EXPECTATIONS: dict[str, str] = {
    "NUMBER": "a number, like 1200 or 12.5",
    "INTEGER": "a whole number",
    "INTEGER_POSITIVE": "a whole number above 0",
    "INTEGER_ZERO_OR_POSITIVE": "a whole number, 0 or more",
    "INTEGER_NEGATIVE": "a whole number below 0",
    "PERCENTAGE": "a number from 0 to 100",
    "BOOLEAN": "Yes or No",
    "TRUE_ONLY": "Yes, or leave it empty",
    "DATE": "a date, day first, like 14-03-2025",
    "AGE": "a date of birth, day first, like 14-03-2025",
    "DATETIME": "a date and time, like 14-03-2025 09:30",
    "EMAIL": "an e-mail address, like name@example.org",
    "PHONE_NUMBER": "a phone number of 6 to 50 digits",
    "TEXT": f"text of at most {_TEXT_MAX_LENGTH:,} characters",
}

# How the user knows the event's own properties, when their source did not name them.
PROPERTY_LABELS = {
    "event": "Event ID",
    "program": "Program",
    "programStage": "Program stage",
    "orgUnit": "Organisation unit",
    "occurredAt": "Report date",
    "status": "Status",
}


def event_schema(form: ProgramForm) -> dict[str, Any]:
    """JSON Schema (2020-12) of one DHIS2 event payload for this stage."""
    # A null value is allowed: DHIS2 reads it as "no value".
    value_rules = [
        {
            "if": {
                "properties": {"dataElement": {"const": element.uid}, "value": {"type": "string"}}
            },
            "then": {"properties": {"value": value_schema(element)}},
        }
        for element in form.data_elements
    ]
    data_value = {
        "type": "object",
        "required": ["dataElement"],
        "properties": {
            "dataElement": {"enum": [element.uid for element in form.data_elements]},
            "value": {"type": ["string", "null"]},
        },
        "allOf": value_rules,
    }
    compulsory = {
        "required": ["dataValues"],
        "properties": {
            "dataValues": {
                "allOf": [
                    {
                        "contains": {
                            "required": ["dataElement", "value"],
                            "properties": {
                                "dataElement": {"const": uid},
                                "value": {"type": "string"},
                            },
                        }
                    }
                    for uid in _compulsory_uids(form)
                ]
            }
        },
    }
    return _envelope(
        form,
        data_values={"type": "array", "items": data_value},
        compulsory=compulsory,
        # A null value says "no value", so only a value that is there counts (as the validator).
        no_data_values={
            "properties": {
                "dataValues": {
                    "not": {
                        "contains": {
                            "required": ["value"],
                            "properties": {"value": {"type": "string"}},
                        }
                    }
                }
            }
        },
    )


def value_schema(element: DataElement) -> dict[str, Any]:
    """The schema of one data element's value as DHIS2 accepts it: a string in its value type,
    and an option code when it has an option set."""
    rules = _VALUE_TYPE_RULES.get(element.value_type, {})
    if not element.options:
        return {"type": "string", **rules}
    codes = option_codes(element)
    if element.value_type == "MULTI_TEXT":
        # Several codes separated by commas (ValueType.splitMultiText), each one an option.
        code = "(?:" + "|".join(re.escape(code) for code in codes) + ")"
        return {"type": "string", "pattern": f"^{code}(?:,{code})*$"}
    if "enum" in rules or "const" in rules:
        return {"type": "string", "enum": codes, "allOf": [rules]}
    return {"type": "string", "enum": codes, **rules}


def option_error(element: DataElement, value: str, field: str | None = None) -> RecordError:
    """E1125 for a value that is no option of the element, naming the closest options."""
    suggestions = element.suggest_options(value)
    if suggestions:
        hint = "did you mean " + " or ".join(f'"{name}"' for name in suggestions) + "?"
    elif len(element.options) <= _LISTED_OPTIONS_MAX:
        hint = "choose one of: " + ", ".join(option.name for option in element.options) + "."
    else:
        hint = "choose one of the options the form lists."
    label = field or element.label
    return RecordError(
        "E1125",
        f'"{shown_value(value)}" is not an option of {label}; {hint}',
        element.uid,
        label,
        value,
    )


def value_type_error(
    element: DataElement, value: str, field: str | None = None, advice: str | None = None
) -> RecordError:
    """E1302 for a value that does not fit the element's value type."""
    expectation = VALUE_TYPE_EXPECTATIONS.get(element.value_type, "text")
    label = field or element.label
    return RecordError(
        "E1302",
        f'"{shown_value(value)}" is not a valid {label}; {advice or "write " + expectation}.',
        element.uid,
        label,
        value,
    )


def unknown_field_error(form: ProgramForm, name: str, value: str | None = None) -> RecordError:
    """E1304 for a value under a name that is no data element of the form."""
    suggestions = form.suggest_labels(name)
    hint = (
        "did you mean "
        + " or ".join(f'"{label}"' for label in suggestions)
        + "? Rename or remove it."
        if suggestions
        else "rename it to a field of the form or remove it."
    )
    return RecordError(
        "E1304", f'"{shown_value(name)}" is not a field of this form; {hint}', None, name, value
    )


def format_checker() -> Any:
    """A jsonschema FormatChecker for the formats `event_schema` uses, as DHIS2 reads them."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, has_format in FORMATS.items():
        checker.checks(name, raises=ValueError)(has_format)
    return checker


def keyed_event_schema(form: ProgramForm) -> dict[str, Any]:
    """The rules of `event_schema` for an event whose dataValues are {uid: value}: one schema
    per value, where the payload needs an if/then per data element."""
    return _envelope(
        form,
        data_values={
            "type": "object",
            "properties": {element.uid: value_schema(element) for element in form.data_elements},
            "additionalProperties": False,
        },
        compulsory={"properties": {"dataValues": {"required": _compulsory_uids(form)}}},
        no_data_values={"properties": {"dataValues": {"maxProperties": 0}}},
    )


def _envelope(
    form: ProgramForm,
    *,
    data_values: dict[str, Any],
    compulsory: dict[str, Any],
    no_data_values: dict[str, Any],
) -> dict[str, Any]:
    if form.validation_strategy == "ON_COMPLETE":
        compulsory_when = {"required": ["status"], "properties": {"status": {"const": "COMPLETED"}}}
    else:
        never_validated = list(_STATUSES_NEVER_VALIDATED)
        compulsory_when = {"properties": {"status": {"not": {"enum": never_validated}}}}
    # An absent status means ACTIVE to DHIS2, so the occurredAt rule applies to it as well.
    occurred_at_when = {"properties": {"status": {"enum": list(_STATUSES_REQUIRING_OCCURRED_AT)}}}
    no_data_values_when = {
        "required": ["status"],
        "properties": {"status": {"enum": list(_STATUSES_WITHOUT_DATA_VALUES)}},
    }
    conditions = [
        {"if": occurred_at_when, "then": {"required": ["occurredAt"]}},
        {"if": no_data_values_when, "then": no_data_values},
    ]
    if _compulsory_uids(form):
        conditions.append({"if": compulsory_when, "then": compulsory})
    return {
        "$schema": _DIALECT,
        "title": f"{form.program_name}: {form.stage_name} event",
        "type": "object",
        "required": ["program", "programStage", "orgUnit"],
        "properties": {
            "event": {"type": "string", "pattern": UID_PATTERN.pattern},
            "program": {"const": form.program_uid},
            "programStage": {"const": form.stage_uid},
            "orgUnit": {"type": "string", "enum": sorted(form.org_unit_ids)},
            "occurredAt": {
                "type": "string",
                "pattern": _DATE_OR_DATETIME_PATTERN,
                "format": "date-or-date-time",
            },
            "status": {"enum": list(STATUSES)},
            "dataValues": data_values,
        },
        "allOf": conditions,
    }


def option_codes(element: DataElement) -> list[str]:
    return [option.code for option in element.options]


def _compulsory_uids(form: ProgramForm) -> list[str]:
    return [element.uid for element in form.data_elements if element.compulsory]


def _is_date(text: object) -> bool:
    if isinstance(text, str):
        date.fromisoformat(text)
    return True


def _is_datetime(text: object) -> bool:
    match = _DATETIME.match(text) if isinstance(text, str) else None
    if match is None:
        return True
    day, *clock = match.groups()
    hours, minutes, seconds = clock[:3] if clock[0] is not None else clock[3:]
    date.fromisoformat(day)
    return int(hours) < 24 and int(minutes or 0) < 60 and int(seconds or 0) < 60


def _is_date_or_datetime(text: object) -> bool:
    return _is_datetime(text) if _DATETIME.match(str(text)) else _is_date(text)


# The formats the schemas name, as DHIS2 reads them: "date" and "date-time" must be real calendar
# dates and times, and "date-or-date-time" is either (occurredAt). A check may also raise
# ValueError for no.
FORMATS: dict[str, Callable[[object], bool]] = {
    "date": _is_date,
    "date-time": _is_datetime,
    "date-or-date-time": _is_date_or_datetime,
}


def shown_value(value: str) -> str:
    """A value as quoted in a message: a long text cut short so the message stays readable."""
    if len(value) <= _MESSAGE_VALUE_LENGTH:
        return value
    return value[: _MESSAGE_VALUE_LENGTH - 1] + "…"
