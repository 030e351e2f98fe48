"""EventValidator: an event checked against its program stage's rules, each fault worded for the
clerk in DHIS2's codes.

The rules are those of schema.py's keyed event schema, compiled once per stage (checks.py), and
checked against a keyed view of the event, `dataValues` as {uid: value}. The keyed view is also
where a data element listed twice is caught, which JSON Schema cannot express. Faults DHIS2
finds from the user rather than the form (capture scope, attribute option combination) are
checked here beside them.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from functools import lru_cache
from typing import Any

from dhims2.forms.checks import Check, Violation, compile_schema
from dhims2.forms.program import ProgramForm
from dhims2.forms.records import RecordError
from dhims2.forms.schema import (
    FORMATS,
    PROPERTY_LABELS,
    STATUSES,
    keyed_event_schema,
    option_codes,
    option_error,
    shown_value,
    unknown_field_error,
    value_type_error,
)


class EventValidator:
    """Checks events against the form's compiled rules and the user's capture scope."""

    def __init__(self, form: ProgramForm, capture_org_units: frozenset[str] | None = None):
        self._form = form
        self._capture_org_units = capture_org_units
        self._data_element_uids = frozenset(element.uid for element in form.data_elements)
        self._check = _compiled_checks(form)

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
        violations: list[Violation] = []
        self._check(view, (), violations)
        for violation in violations:
            findings.extend(self._translate(violation, view, labels))
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
                # No value, but DHIS2 looks the data element up first (E1304 whatever the value:
                # dhis2-core 2.41 tracker DataValuesValidator.validateDataValue, lines 97-100).
                if uid not in self._data_element_uids:
                    unknown = unknown_field_error(self._form, labels.get(uid, uid))
                    findings.append((uid, unknown))
            elif uid in values:
                label = self._label(uid, labels)
                message = f"{label} is given twice; keep only one value."
                findings.append((uid, RecordError("DUPLICATE_VALUE", message, uid, label)))
            else:
                values[uid] = entry["value"]
        view["dataValues"] = values
        return view, findings

    def _translate(
        self, violation: Violation, view: dict[str, Any], labels: dict[str, str]
    ) -> list[tuple[str, RecordError]]:
        path = violation.path
        if not path:
            if violation.keyword != "required":
                return []
            missing = [name for name in violation.expected if name not in view]
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
            if violation.keyword == "enum" and violation.expected == option_codes(element):
                return [(uid, option_error(element, value, label))]
            if element.value_type == "MULTI_TEXT" and element.options:
                codes = option_codes(element)
                wrong = next((code for code in value.split(",") if code not in codes), value)
                return [(uid, option_error(element, wrong, label))]
            return [(uid, value_type_error(element, value, label))]
        if violation.keyword == "required":
            missing = [uid for uid in violation.expected if uid not in values]
            return [(uid, self._missing_value(uid, labels)) for uid in missing]
        if violation.keyword == "additionalProperties":
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
        if expiry is None or not FORMATS["date-or-date-time"](occurred_at):
            return []
        occurred_on = str(occurred_at)[:10]
        closes_on = expiry.closes_on(date.fromisoformat(occurred_on))
        if closes_on is None or date.today() < closes_on:
            return []
        message = (
            f"DHIS2 closed data entry for the {expiry.period_type.lower()} period of"
            f" {occurred_on} on {closes_on.isoformat()} ({expiry.days} days after it ended);"
            " only a user allowed to edit expired periods can enter it."
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
        shown = shown_value(str(value))
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
def _compiled_checks(form: ProgramForm) -> Check:
    """The checks of a form's keyed event schema, compiled once per form."""
    return compile_schema(keyed_event_schema(form), FORMATS)
