"""The published JSON Schema and the checks compiled from it agree on every event of the corpus:
on whether it is accepted, and on which fields are at fault. jsonschema stays the reference; the
compiled checks are what the mapping runs."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dhims2.forms.checks import Violation, compile_schema
from dhims2.forms.program import ProgramForm
from dhims2.forms.records import RecordError
from dhims2.forms.schema import (
    FORMATS,
    PROPERTY_LABELS,
    event_schema,
    format_checker,
    keyed_event_schema,
)
from dhims2.forms.validation import EventValidator
from validation_corpus import events, forms, malformed_events

FORMS = forms()
PROPERTY_OF_LABEL = {label: name for name, label in PROPERTY_LABELS.items()}


def payload_validator(form: ProgramForm) -> Draft202012Validator:
    return Draft202012Validator(event_schema(form), format_checker=format_checker())


def schema_fields(validator: Draft202012Validator, event: dict) -> set[str]:
    """The event properties and data elements (uids) the payload schema finds at fault; none
    when it accepts the event."""
    found: set[str] = set()
    for error in validator.iter_errors(event):
        path = list(error.absolute_path)
        if not path:
            assert error.validator == "required", error
            found.update(name for name in error.validator_value if name not in event)
        elif path[0] != "dataValues":
            found.add(path[0])
        elif len(path) == 1:
            found.add(_data_values_field(error))
        else:
            entry = event["dataValues"][path[1]]
            uid = entry.get("dataElement") if isinstance(entry, dict) else None
            found.add(uid if isinstance(uid, str) else "dataValues")
    return found


def _data_values_field(error: Any) -> str:
    if error.validator == "contains":  # a compulsory value is missing
        return error.validator_value["properties"]["dataElement"]["const"]
    if error.validator == "not":  # values on an event whose status allows none
        return "status"
    return "dataValues"


def validator_fields(errors: list[RecordError]) -> set[str]:
    """The same, from the compiled validator's errors (labelled with the form's own names)."""
    found: set[str] = set()
    for error in errors:
        if error.code == "MALFORMED_RECORD":
            found.add("dataValues")
        elif error.data_element or error.code == "E1304":
            found.add(error.data_element or str(error.field))
        else:
            found.add(PROPERTY_OF_LABEL[str(error.field)])
    return found


def keyed_view(event: dict) -> dict:
    """The event with dataValues as {uid: value}, what the compiled checks look at."""
    values = {entry["dataElement"]: entry["value"] for entry in event["dataValues"]}
    view = {key: value for key, value in event.items() if key != "dataValues"}
    return view | {"dataValues": {uid: value for uid, value in values.items() if value is not None}}


@pytest.mark.parametrize("name", FORMS)
def test_the_payload_schema_and_the_compiled_validator_agree_on_every_event(name: str) -> None:
    form = FORMS[name]
    reference, compiled = payload_validator(form), EventValidator(form)
    checked = rejected = 0
    for event in events(form):
        expected = schema_fields(reference, event)
        errors = compiled.errors(event)
        # Accepted by both (no field at fault), or refused by both for the same fields.
        assert validator_fields(errors) == expected, (event, errors)
        checked, rejected = checked + 1, rejected + bool(errors)
    # The corpus really tries both sides on every form.
    assert checked > 200 and 0 < rejected < checked


@pytest.mark.parametrize("name", FORMS)
def test_both_refuse_a_malformed_event_for_its_data_values(name: str) -> None:
    form = FORMS[name]
    reference, compiled = payload_validator(form), EventValidator(form)
    for event in malformed_events(form):
        errors = compiled.errors(event)  # type: ignore[arg-type]
        assert not reference.is_valid(event)
        assert "MALFORMED_RECORD" in [error.code for error in errors]
        if isinstance(event, dict):
            assert "dataValues" in schema_fields(reference, event)


@pytest.mark.parametrize("name", FORMS)
def test_the_compiled_checks_find_what_jsonschema_finds_in_the_same_order(name: str) -> None:
    form = FORMS[name]
    schema = keyed_event_schema(form)
    reference = Draft202012Validator(schema, format_checker=format_checker())
    check = compile_schema(schema, FORMATS)
    for event in events(form):
        view = keyed_view(event)
        found: list[Violation] = []
        check(view, (), found)
        expected = [
            (tuple(error.absolute_path), error.validator, error.validator_value)
            for error in reference.iter_errors(view)
        ]
        assert [(v.path, v.keyword, v.expected) for v in found] == expected, event


@pytest.mark.parametrize(
    "schema",
    [
        {"minLength": 1},
        {"type": "number"},
        {"type": ["string", "null"]},
        {"enum": ["a", 1]},
        {"format": "email"},
        {"properties": {"a": {"items": {}}}},
        {"additionalProperties": {"type": "string"}},
        {"if": {"type": "string"}, "else": {"const": "x"}},
    ],
)
def test_a_keyword_the_checks_cannot_compile_is_refused_not_skipped(schema: dict) -> None:
    with pytest.raises(ValueError, match="the compiled checks"):
        compile_schema(schema, FORMATS)
