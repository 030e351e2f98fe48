"""JSON Schema of a DHIS2 event for one program stage, and local validation with DHIS2's codes.

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
so a value's rules are an if/then per data element. jsonschema evaluates that chain for every
value of every event (about 2.6 ms an event), so `EventValidator` validates the same rules against
a keyed view of the event, `dataValues` as {uid: value}, built from the same value schemas (about
0.06 ms an event). The keyed view is also where a data element listed twice is caught, which JSON
Schema cannot express.

jsonschema is imported on first use, so importing this module stays cheap for the native host,
which must greet the browser quickly.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from datetime import date
from functools import lru_cache
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
    codes = _option_codes(element)
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
        f'"{_shown(value)}" is not an option of {label}; {hint}',
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
        f'"{_shown(value)}" is not a valid {label}; {advice or "write " + expectation}.',
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
        "E1304", f'"{_shown(name)}" is not a field of this form; {hint}', None, name, value
    )


def format_checker() -> Any:
    """A jsonschema FormatChecker for the formats `event_schema` uses, as DHIS2 reads them:
    "date" and "date-time" must be real calendar dates and times, and "date-or-date-time" is
    either (occurredAt)."""
    from jsonschema import FormatChecker

    formats = FormatChecker(formats=())
    formats.checks("date", raises=ValueError)(_is_date)
    formats.checks("date-time", raises=ValueError)(_is_datetime)
    formats.checks("date-or-date-time", raises=ValueError)(_is_date_or_datetime)
    return formats


class EventValidator:
    """Checks events against the form's schema (built once) and the user's capture scope."""

    def __init__(self, form: ProgramForm, capture_org_units: frozenset[str] | None = None):
        self._form = form
        self._capture_org_units = capture_org_units
        self._data_element_uids = frozenset(element.uid for element in form.data_elements)
        self._validator = _schema_validator(form)

    def errors(
        self, event: dict, fields: dict[str, str] | None = None, *, skip: Collection[str] = ()
    ) -> list[RecordError]:
        """The event's faults, each once, labelled with the names in `fields` (data element uid
        or event property -> the column the user knows it by).

        `skip` names data element uids and event properties whose faults the caller has already
        reported in the user's own terms.
        """
        labels = fields or {}
        if not isinstance(event, dict):
            return [RecordError("MALFORMED_RECORD", "The event is not a JSON object.")]
        view, findings = self._keyed_view(event, labels)
        for error in self._validator.iter_errors(view):
            findings.extend(self._translate(error, view, labels))
        findings.extend(self._scope_findings(view, labels))
        findings.extend(self._attribute_option_combo_findings(view, labels))
        findings.extend(self._entry_expiry_findings(view, labels))
        unique: list[RecordError] = []
        reported: set[tuple[str, str]] = set()
        for target, error in findings:
            if target not in skip and (target, error.code) not in reported:
                reported.add((target, error.code))
                unique.append(error)
        return unique

    def _keyed_view(
        self, event: dict, labels: dict[str, str]
    ) -> tuple[dict[str, Any], list[tuple[str, RecordError]]]:
        view = {key: value for key, value in event.items() if key != "dataValues"}
        values: dict[str, object] = {}
        findings: list[tuple[str, RecordError]] = []
        data_values = event.get("dataValues", [])
        if not isinstance(data_values, list):
            message = "dataValues must be a list of {dataElement, value}."
            findings.append(("dataValues", RecordError("MALFORMED_RECORD", message)))
            data_values = []
        for position, entry in enumerate(data_values, start=1):
            uid = entry.get("dataElement") if isinstance(entry, dict) else None
            if not isinstance(uid, str):
                message = f"Data value {position} does not name its dataElement."
                findings.append(("dataValues", RecordError("MALFORMED_RECORD", message)))
            elif entry.get("value") is None:
                continue
            elif uid in values:
                label = self._label(uid, labels)
                message = f"{label} is given twice; keep only one value."
                findings.append((uid, RecordError("DUPLICATE_VALUE", message, uid, label)))
            else:
                values[uid] = entry["value"]
        view["dataValues"] = values
        return view, findings

    def _translate(
        self, error: Any, view: dict[str, Any], labels: dict[str, str]
    ) -> list[tuple[str, RecordError]]:
        path = list(error.absolute_path)
        if not path:
            if error.validator != "required":
                return []
            missing = [name for name in error.validator_value if name not in view]
            return [(name, self._missing_property(name, labels)) for name in missing]
        if path[0] != "dataValues":
            return [(path[0], self._property_error(path[0], view[path[0]], labels))]
        values = view["dataValues"]
        if len(path) > 1:
            uid = path[1]
            element = self._form.data_element(uid)
            assert element is not None, "the schema lists only the form's data elements"
            value = str(values[uid])
            label = self._label(uid, labels)
            # Booleans are an enum too; only an element's own option codes make E1125.
            if error.validator == "enum" and error.validator_value == _option_codes(element):
                return [(uid, option_error(element, value, label))]
            if element.value_type == "MULTI_TEXT" and element.options:
                codes = _option_codes(element)
                wrong = next((code for code in value.split(",") if code not in codes), value)
                return [(uid, option_error(element, wrong, label))]
            return [(uid, value_type_error(element, value, label))]
        if error.validator == "required":
            missing = [uid for uid in error.validator_value if uid not in values]
            return [(uid, self._missing_value(uid, labels)) for uid in missing]
        if error.validator == "additionalProperties":
            unknown = [uid for uid in values if uid not in self._data_element_uids]
            return [
                (uid, unknown_field_error(self._form, labels.get(uid, uid), str(values[uid])))
                for uid in unknown
            ]
        status = view.get("status")
        message = f"A {status} event cannot carry values; use status COMPLETED or ACTIVE."
        return [("status", RecordError("E1315", message, field=self._label("status", labels)))]

    def _scope_findings(
        self, view: dict[str, Any], labels: dict[str, str]
    ) -> list[tuple[str, RecordError]]:
        org_unit = view.get("orgUnit")
        if (
            self._capture_org_units is None
            or org_unit not in self._form.org_unit_ids
            or org_unit in self._capture_org_units
        ):
            return []
        message = (
            f'Your DHIMS2 user may not enter data for organisation unit "{org_unit}"; '
            "choose one of your own facilities."
        )
        label = self._label("orgUnit", labels)
        return [("orgUnit", RecordError("E1000", message, field=label, value=org_unit))]

    def _attribute_option_combo_findings(
        self, view: dict[str, Any], labels: dict[str, str]
    ) -> list[tuple[str, RecordError]]:
        if not self._form.needs_attribute_option_combo or view.get("attributeOptionCombo"):
            return []
        message = (
            "This program records an attribute (its category combination is not the default);"
            " choose the attribute option combination for the event."
        )
        label = self._label("attributeOptionCombo", labels)
        return [("attributeOptionCombo", RecordError("E1055", message, field=label))]

    def _entry_expiry_findings(
        self, view: dict[str, Any], labels: dict[str, str]
    ) -> list[tuple[str, RecordError]]:
        expiry, occurred_at = self._form.entry_expiry, view.get("occurredAt")
        if expiry is None or not _is_date_or_datetime(occurred_at):
            return []
        closes_on = expiry.closes_on(date.fromisoformat(str(occurred_at)[:10]))
        if closes_on is None or date.today() < closes_on:
            return []
        message = (
            f"DHIS2 closed data entry for the {expiry.period_type.lower()} period of"
            f" {str(occurred_at)[:10]} on {closes_on.isoformat()} ({expiry.days} days after it"
            " ended); only a user allowed to edit expired periods can enter it."
        )
        label = self._label("occurredAt", labels)
        return [("occurredAt", RecordError("E1047", message, field=label))]

    def _missing_property(self, name: str, labels: dict[str, str]) -> RecordError:
        label = self._label(name, labels)
        if name == "occurredAt":
            message = "The report date is missing; add a Report date (the date of the visit)."
            return RecordError("E1031", message, field=label)
        if name == "orgUnit":
            message = "No organisation unit: add an orgUnit column or choose the facility."
            return RecordError("E1123", message, field=label)
        return RecordError("E1123", f"The event does not say its {name}.", field=label)

    def _property_error(self, name: str, value: object, labels: dict[str, str]) -> RecordError:
        form = self._form
        shown = _shown(str(value))
        messages = {
            "program": (
                "E1010",
                f'Program "{shown}" is not {form.program_name} ({form.program_uid}).',
            ),
            "programStage": (
                "E1013",
                f'Program stage "{shown}" is not {form.stage_name} ({form.stage_uid}).',
            ),
            "orgUnit": (
                "E1029",
                f'Organisation unit "{shown}" is not assigned to {form.program_name}; '
                "use the ID of one of its facilities.",
            ),
            "event": (
                "E1048",
                f'Event ID "{shown}" is not a DHIS2 ID (11 letters and digits, starting with a '
                "letter); leave it empty to get a new one.",
            ),
            "occurredAt": ("E1031", f'Report date "{shown}" is not a date like 2025-03-14.'),
            "status": ("INVALID_STATUS", f'Status "{shown}" is not one of {", ".join(STATUSES)}.'),
        }
        code, message = messages[name]
        return RecordError(code, message, field=self._label(name, labels), value=str(value))

    def _missing_value(self, uid: str, labels: dict[str, str]) -> RecordError:
        label = self._label(uid, labels)
        message = f"{label} is compulsory but has no value; fill it in."
        return RecordError("E1303", message, uid, label)

    def _label(self, key: str, labels: dict[str, str]) -> str:
        if key in labels:
            return labels[key]
        element = self._form.data_element(key)
        return element.label if element else PROPERTY_LABELS.get(key, key)


@lru_cache(maxsize=8)
def _schema_validator(form: ProgramForm) -> Any:
    """The jsonschema validator of a form's keyed event schema, built once per form."""
    schema = _keyed_event_schema(form)
    validator_class = _validator_class()
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=format_checker())


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    """Draft 2020-12 with a set lookup for `enum` of strings.

    jsonschema compares an instance with each enum member in turn, and a diagnosis option set
    has about 1,700 codes: that linear scan was most of the time spent validating.
    """
    from jsonschema import Draft202012Validator, validators

    linear_enum = Draft202012Validator.VALIDATORS["enum"]
    # id(enum list) -> (the list, kept alive so its id is never reused; its members as a set)
    members_of: dict[int, tuple[list, frozenset | None]] = {}

    def enum(validator: Any, enums: list, instance: object, schema: dict) -> Iterator[Any]:
        known = members_of.get(id(enums))
        if known is None:
            strings_only = all(isinstance(member, str) for member in enums)
            known = members_of[id(enums)] = (enums, frozenset(enums) if strings_only else None)
        members = known[1]
        if members is not None and isinstance(instance, str):
            if instance not in members:
                yield from linear_enum(validator, enums, instance, schema)
        else:
            yield from linear_enum(validator, enums, instance, schema)

    return validators.extend(Draft202012Validator, {"enum": enum})


def _keyed_event_schema(form: ProgramForm) -> dict[str, Any]:
    """The rules of `event_schema`, for an event whose dataValues are {uid: value}."""
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


def _option_codes(element: DataElement) -> list[str]:
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


def _shown(value: str) -> str:
    """A value as quoted in a message: a long text cut short so the message stays readable."""
    if len(value) <= _MESSAGE_VALUE_LENGTH:
        return value
    return value[: _MESSAGE_VALUE_LENGTH - 1] + "…"
