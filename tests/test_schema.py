"""The event JSON Schema generated from metadata, and validation with DHIS2's error codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.program import ProgramForm
from dhims2.forms.schema import STATUSES, event_schema, format_checker
from dhims2.forms.validation import EventValidator
from test_program import (
    SYNTHETIC_ORG_UNITS,
    SYNTHETIC_PROGRAM,
    SYNTHETIC_STAGE,
    bundled_program,
    synthetic_element,
    synthetic_program,
)
from validation_corpus import TYPE_CASES, VALID_VALUES, typed_uid

GENDER = "fg8sMCaTOrK"
AGE = "upqhIcii1iC"
DIAGNOSIS = "yPXPzceTIvq"
COST = "fRkwcThGCTM"


def payload(values: dict[str, object] | None = None, **properties: object) -> dict:
    """The valid event with `properties` changed (None removes one) and `values` as dataValues."""
    event: dict = {
        "event": "evSynthet01",
        "program": PROGRAM_UID,
        "programStage": STAGE_UID,
        "orgUnit": ORG_UNIT_UID,
        "occurredAt": "2025-03-14",
        "status": "COMPLETED",
        "dataValues": [
            {"dataElement": uid, "value": value}
            for uid, value in (VALID_VALUES if values is None else values).items()
        ],
    }
    event.update(properties)
    return {key: value for key, value in event.items() if value is not None}


def with_values(**changes: object) -> dict[str, object]:
    """The valid values with `changes` (uid -> value; None removes the value)."""
    merged = {**VALID_VALUES, **changes}
    return {uid: value for uid, value in merged.items() if value is not None}


@pytest.fixture(scope="module")
def form() -> ProgramForm:
    return ProgramForm.from_metadata(bundled_program())


@pytest.fixture(scope="module")
def validator(form: ProgramForm) -> EventValidator:
    return EventValidator(form)


def codes(validator: EventValidator, event: object) -> list[str]:
    return [error.code for error in validator.errors(event)]  # type: ignore[arg-type]


def test_event_schema_is_a_valid_2020_12_schema_that_accepts_a_valid_event(
    form: ProgramForm,
) -> None:
    schema = event_schema(form)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema, format_checker=format_checker()).validate(payload())


def test_event_schema_holds_option_codes_and_compulsory_elements(form: ProgramForm) -> None:
    schema = event_schema(form)
    item_rules = schema["properties"]["dataValues"]["items"]["allOf"]
    gender_rule = next(
        rule for rule in item_rules if rule["if"]["properties"]["dataElement"]["const"] == GENDER
    )
    assert gender_rule["then"]["properties"]["value"]["enum"] == ["Male", "Female"]
    compulsory_rule = schema["allOf"][-1]
    assert compulsory_rule["if"]["properties"]["status"] == {"const": "COMPLETED"}
    required = compulsory_rule["then"]["properties"]["dataValues"]["allOf"]
    assert len(required) == 14  # all but Additional diagnosis and Cost of treatment


def test_a_valid_event_has_no_errors(validator: EventValidator) -> None:
    assert validator.errors(payload()) == []


@pytest.mark.parametrize(
    ("properties", "code", "field"),
    [
        ({"program": "prOther0001"}, "E1010", "Program"),
        ({"programStage": "stOther0001"}, "E1013", "Program stage"),
        ({"orgUnit": "ouNotInProg"}, "E1029", "Organisation unit"),
        ({"orgUnit": None}, "E1123", "Organisation unit"),
        ({"program": None}, "E1123", "Program"),
        ({"event": "not-a-uid"}, "E1048", "Event ID"),
        ({"event": "1abcdefghij"}, "E1048", "Event ID"),
        ({"occurredAt": None}, "E1031", "Report date"),
        ({"occurredAt": "2025-02-30"}, "E1031", "Report date"),
        ({"occurredAt": "14-03-2025"}, "E1031", "Report date"),
        ({"occurredAt": "2025-03-14T24:00:00"}, "E1031", "Report date"),
        ({"status": "completed"}, "INVALID_STATUS", "Status"),
    ],
)
def test_event_properties_get_dhis2_codes(
    validator: EventValidator, properties: dict, code: str, field: str
) -> None:
    [error] = validator.errors(payload(**properties))
    assert (error.code, error.field) == (code, field)
    assert error.message


def test_occurred_at_accepts_a_date_or_a_date_time(validator: EventValidator) -> None:
    for occurred_at in ("2025-03-14", "2025-03-14T09:30:00", "2025-03-14T09:30:00.000Z"):
        assert validator.errors(payload(occurredAt=occurred_at)) == []


def test_occurred_at_is_required_only_for_active_and_completed(validator: EventValidator) -> None:
    no_date = {"occurredAt": None}
    assert codes(validator, payload(**no_date, status=None)) == ["E1031"]  # ACTIVE by default
    assert codes(validator, payload(**no_date, status="ACTIVE")) == ["E1031"]
    assert codes(validator, payload(values={}, **no_date, status="SCHEDULE")) == []


def test_org_unit_outside_the_users_capture_scope_is_e1000(form: ProgramForm) -> None:
    scoped = EventValidator(form, capture_org_units=frozenset({"Kp4wTr2mHoS"}))
    [error] = scoped.errors(payload())
    assert (error.code, error.value) == ("E1000", ORG_UNIT_UID)
    assert scoped.errors(payload(orgUnit="Kp4wTr2mHoS")) == []
    assert codes(scoped, payload(orgUnit="ouNotInProg")) == ["E1029"]


def test_an_unknown_option_is_e1125_with_a_suggestion(validator: EventValidator) -> None:
    [error] = validator.errors(payload(with_values(**{GENDER: "Malee"})))
    assert (error.code, error.data_element, error.value) == ("E1125", GENDER, "Malee")
    assert error.message.startswith('"Malee" is not an option of Gender (morbidity/mortality)')
    assert 'did you mean "Male"' in error.message


def test_an_option_name_instead_of_its_code_is_refused(form: ProgramForm) -> None:
    element = synthetic_element("deWard00001", options=(("W1", "Ward one"),), name="Ward")
    program = synthetic_program(element)
    validator = EventValidator(ProgramForm.from_metadata(program))
    event = {
        "program": SYNTHETIC_PROGRAM,
        "programStage": SYNTHETIC_STAGE,
        "orgUnit": SYNTHETIC_ORG_UNITS[0],
        "occurredAt": "2025-03-14",
        "dataValues": [{"dataElement": "deWard00001", "value": "Ward one"}],
    }
    [error] = validator.errors(event)
    assert (error.code, error.message) == (
        "E1125",
        '"Ward one" is not an option of Ward; did you mean "Ward one"?',
    )
    event["dataValues"][0]["value"] = "W1"
    assert validator.errors(event) == []


@pytest.fixture(scope="module")
def typed_validator() -> EventValidator:
    elements = [synthetic_element(typed_uid(value_type), value_type) for value_type in TYPE_CASES]
    return EventValidator(ProgramForm.from_metadata(synthetic_program(*elements)))


def _typed_event(value_type: str, value: str) -> dict:
    return {
        "program": SYNTHETIC_PROGRAM,
        "programStage": SYNTHETIC_STAGE,
        "orgUnit": SYNTHETIC_ORG_UNITS[1],
        "occurredAt": "2025-03-14",
        "dataValues": [{"dataElement": typed_uid(value_type), "value": value}],
    }


@pytest.mark.parametrize(
    ("value_type", "value", "valid"),
    [
        (value_type, value, valid)
        for value_type, (good, bad) in TYPE_CASES.items()
        for values, valid in ((good, True), (bad, False))
        for value in values
    ],
    ids=lambda part: part[:20] if isinstance(part, str) else None,
)
def test_value_types_are_checked_like_dhis2_does(
    typed_validator: EventValidator, value_type: str, value: str, valid: bool
) -> None:
    found = codes(typed_validator, _typed_event(value_type, value))
    assert found == ([] if valid else ["E1302"])


def test_a_value_must_be_sent_as_text(validator: EventValidator) -> None:
    [error] = validator.errors(payload(with_values(**{AGE: 34})))
    assert (error.code, error.data_element, error.field) == ("E1302", AGE, "Age")


def test_compulsory_values_are_enforced_for_completed_events_only(
    validator: EventValidator,
) -> None:
    missing_gender = with_values(**{GENDER: None})
    [error] = validator.errors(payload(missing_gender))
    assert (error.code, error.data_element, error.field) == (
        "E1303",
        GENDER,
        "Gender (morbidity/mortality)",
    )
    assert validator.errors(payload(missing_gender, status="ACTIVE")) == []
    assert codes(validator, payload({})) == ["E1303"] * 14


def test_a_null_value_counts_as_missing(validator: EventValidator) -> None:
    assert codes(validator, payload(with_values(**{GENDER: None}) | {GENDER: None})) == ["E1303"]
    assert validator.errors(payload(with_values(**{COST: None}) | {COST: None})) == []


def test_on_update_and_insert_enforces_compulsory_for_every_status_but_schedule_and_skipped() -> (
    None
):
    program = bundled_program()
    program["programStages"][0]["validationStrategy"] = "ON_UPDATE_AND_INSERT"
    strict = EventValidator(ProgramForm.from_metadata(program))
    missing_gender = with_values(**{GENDER: None})
    assert codes(strict, payload(missing_gender, status="ACTIVE")) == ["E1303"]
    assert codes(strict, payload(missing_gender, status=None)) == ["E1303"]
    assert codes(strict, payload({}, status="SCHEDULE", occurredAt=None)) == []


@pytest.mark.parametrize("status", ["SCHEDULE", "SKIPPED", "OVERDUE"])
def test_statuses_without_data_values_refuse_values(validator: EventValidator, status: str) -> None:
    assert codes(validator, payload(status=status)) == ["E1315"]
    assert codes(validator, payload({}, status=status)) == []


def test_an_unknown_data_element_is_e1304(validator: EventValidator) -> None:
    values = with_values(deUnknown01="x")
    [error] = validator.errors(payload(values))
    assert (error.code, error.field, error.value) == ("E1304", "deUnknown01", "x")


def test_an_unknown_data_element_is_e1304_even_without_a_value(validator: EventValidator) -> None:
    # DHIS2 looks the data element up before it looks at the value (DataValuesValidator).
    [error] = validator.errors(payload(with_values() | {"deUnknown01": None}))
    assert (error.code, error.field, error.value) == ("E1304", "deUnknown01", None)


def test_a_data_element_listed_twice_is_a_duplicate(validator: EventValidator) -> None:
    event = payload()
    event["dataValues"].append({"dataElement": AGE, "value": "35"})
    [error] = validator.errors(event)
    assert (error.code, error.data_element) == ("DUPLICATE_VALUE", AGE)


@pytest.mark.parametrize(
    "event",
    [
        "an event",
        payload() | {"dataValues": {"Age": "20"}},
        payload() | {"dataValues": [*payload()["dataValues"], {"value": "1"}]},
        payload() | {"dataValues": [*payload()["dataValues"], 42]},
    ],
)
def test_malformed_events_are_errors_not_crashes(validator: EventValidator, event: object) -> None:
    assert "MALFORMED_RECORD" in codes(validator, event)


def test_errors_use_the_users_field_names_and_skip_what_the_caller_reported(
    validator: EventValidator,
) -> None:
    event = payload(with_values(**{GENDER: "Malee", AGE: "old"}), orgUnit="ouNotInProg")
    fields = {GENDER: "Sex", "orgUnit": "Facility"}
    errors = validator.errors(event, fields)
    assert sorted((error.code, error.field) for error in errors) == [
        ("E1029", "Facility"),
        ("E1125", "Sex"),
        ("E1302", "Age"),
    ]
    assert [error.code for error in validator.errors(event, fields, skip={GENDER, "orgUnit"})] == [
        "E1302"
    ]


def test_each_fault_is_reported_once(validator: EventValidator) -> None:
    # "2025-02-30" fails the calendar check; "x" fails both the pattern and the format.
    event = payload(with_values(HsMaBh3wKed="x", sIPe9r0NBbq="2025-02-30"))
    assert codes(validator, event) == ["E1302", "E1302"]


def test_a_large_option_set_is_checked_exactly() -> None:
    program = bundled_program()
    for entry in program["programStages"][0]["programStageDataElements"]:
        option_set = entry["dataElement"].get("optionSet")
        if option_set and option_set["id"] == "hAdQhH0A5jt":
            option_set["options"] = [
                {"code": f"X{i:04d} - Synthetic {i}", "name": f"X{i:04d} - Synthetic {i}"}
                for i in range(1_700)
            ]
    validator = EventValidator(ProgramForm.from_metadata(program))
    assert validator.errors(payload(with_values(**{DIAGNOSIS: "X1699 - Synthetic 1699"}))) == []
    assert codes(validator, payload(with_values(**{DIAGNOSIS: "X1700 - Synthetic 1700"}))) == [
        "E1125"
    ]


# Events mixing valid and invalid parts, for checking that the payload schema and the validator
# agree. Data elements are listed once each: the payload schema cannot say "no duplicates".
_value_choices = {
    uid: st.sampled_from([value] * 20 + ["", "zzz", "2025-02-30", "-1", "1.5", "true", None])
    for uid, value in VALID_VALUES.items()
}


def _mostly(valid: object, *invalid: object) -> st.SearchStrategy:
    return st.sampled_from([valid] * 4 * len(invalid) + list(invalid))


@st.composite
def _events(draw: st.DrawFn) -> dict:
    chosen = draw(st.lists(st.sampled_from(sorted(VALID_VALUES)), unique=True))
    values: dict[str, object] = {uid: draw(_value_choices[uid]) for uid in chosen}
    if draw(_mostly(False, True)):
        values["deUnknown01"] = "x"
    properties = {
        "event": draw(_mostly("evSynthet01", "bad", None)),
        "program": draw(_mostly(PROGRAM_UID, "prOther0001", None)),
        "programStage": draw(_mostly(STAGE_UID, None)),
        "orgUnit": draw(_mostly(ORG_UNIT_UID, "Zq8NvB3xLeA", "ouNotInProg", None)),
        "occurredAt": draw(_mostly("2025-03-14", "2025-03-14T10:00", "2025-02-30", "14-03", None)),
        "status": draw(st.sampled_from([*STATUSES, "completed", None])),
    }
    return payload(values, **properties)


@pytest.fixture(scope="module")
def payload_validator(form: ProgramForm) -> Draft202012Validator:
    return Draft202012Validator(event_schema(form), format_checker=format_checker())


@settings(max_examples=400, deadline=None)
@given(event=_events())
def test_the_payload_schema_and_the_validator_agree(
    payload_validator: Draft202012Validator, validator: EventValidator, event: dict
) -> None:
    assert payload_validator.is_valid(event) == (validator.errors(event) == [])
