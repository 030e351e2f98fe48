"""Source records -> DHIS2 event payloads: column matching, value coercion, errors a clerk reads."""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhims2.forms.mapping import Mapper, PreparedRecord, RecordDefaults, RecordError
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.program import ProgramForm
from dhims2.forms.records import SourceRecord
from dhims2.sheets.reading import read_json
from source_records import read_records
from test_program import (
    SYNTHETIC_ORG_UNITS,
    bundled_program,
    synthetic_element,
    synthetic_program,
)

ADMISSION = "HsMaBh3wKed"
GENDER = "fg8sMCaTOrK"
EDUCATION = "Hi8Cp84CnZQ"
DIAGNOSIS = "yPXPzceTIvq"
ADDITIONAL_DIAGNOSIS = "O15UNfCqavW"
AGE = "upqhIcii1iC"
COST = "fRkwcThGCTM"

# A complete, valid In-Patient record as a clerk's sheet holds it (synthetic values).
VALID_ROW: dict[str, object] = {
    "orgUnit": ORG_UNIT_UID,
    "Report date": "14-03-2025",
    "Patient number": "SYN-0001",
    "Address": "Synthetic Street 1",
    "Age": "34",
    "Patient age unit": "years",
    "Gender (morbidity/mortality)": "Male",
    "Occupation": "Farmer",
    "Education": "Primary",
    "Date of admission (morbidity/mortality)": "14-03-2025",
    "Date of discharge (morbidity/mortality)": "18-03-2025",
    "Speciality": "Medical",
    "Outcome": "Discharged",
    "Principal diagnosis": "B54 - Unspecified malaria",
    "Additional diagnosis": "",
    "Surgical procedure": "No",
    "Cost of treatment": "450",
    "Insured (NHIS)": "Yes",
}

# One data element per value type DHIS2 checks, for coercion tests.
TYPED_ELEMENTS = {
    value_type: synthetic_element(uid, value_type, name=value_type.title().replace("_", " "))
    for uid, value_type in [
        ("deText00001", "TEXT"),
        ("deNumber001", "NUMBER"),
        ("deInteger01", "INTEGER"),
        ("dePositive1", "INTEGER_POSITIVE"),
        ("deZeroOrPos", "INTEGER_ZERO_OR_POSITIVE"),
        ("deNegative1", "INTEGER_NEGATIVE"),
        ("dePercent01", "PERCENTAGE"),
        ("deBoolean01", "BOOLEAN"),
        ("deTrueOnly1", "TRUE_ONLY"),
        ("deDate00001", "DATE"),
        ("deDateTime1", "DATETIME"),
    ]
}


@pytest.fixture(scope="module")
def form() -> ProgramForm:
    return ProgramForm.from_metadata(bundled_program())


@pytest.fixture(scope="module")
def mapper(form: ProgramForm) -> Mapper:
    return Mapper(form)


@pytest.fixture(scope="module")
def typed_mapper() -> Mapper:
    program = synthetic_program(*TYPED_ELEMENTS.values())
    defaults = RecordDefaults(org_unit=SYNTHETIC_ORG_UNITS[0], status="ACTIVE")
    return Mapper(ProgramForm.from_metadata(program), defaults)


def prepare(mapper: Mapper, row: int = 2, **changes: object) -> PreparedRecord:
    """The valid row with `changes` (column -> value; None removes the column), prepared."""
    fields = {**VALID_ROW, **changes}
    return mapper.prepare(
        SourceRecord(row, {key: value for key, value in fields.items() if value is not None})
    )


def value_of(prepared: PreparedRecord, uid: str) -> str | None:
    values = [dv["value"] for dv in prepared.event["dataValues"] if dv["dataElement"] == uid]
    assert len(values) <= 1, "one dataValue per data element, ever"
    return values[0] if values else None


def codes(prepared: PreparedRecord) -> list[str]:
    return [error.code for error in prepared.errors]


def typed(mapper: Mapper, value_type: str, value: object) -> PreparedRecord:
    uid = TYPED_ELEMENTS[value_type]["dataElement"]["id"]
    return mapper.prepare(SourceRecord(2, {"Report date": "2025-03-14", uid: value}))


def typed_value(mapper: Mapper, value_type: str, value: object) -> str | None:
    prepared = typed(mapper, value_type, value)
    assert prepared.ok, prepared.errors
    return value_of(prepared, TYPED_ELEMENTS[value_type]["dataElement"]["id"])


def test_a_valid_row_becomes_a_complete_dhis2_event(form: ProgramForm, mapper: Mapper) -> None:
    prepared = prepare(mapper)
    assert prepared.ok, prepared.errors
    event = prepared.event
    assert {key: event[key] for key in ("program", "programStage", "orgUnit", "status")} == {
        "program": PROGRAM_UID,
        "programStage": STAGE_UID,
        "orgUnit": ORG_UNIT_UID,
        "status": "COMPLETED",
    }
    assert event["occurredAt"] == "2025-03-14"
    assert "event" not in event
    values = {dv["dataElement"]: dv["value"] for dv in event["dataValues"]}
    assert len(values) == len(event["dataValues"]) == 15
    assert all(isinstance(value, str) for value in values.values())
    assert values[DIAGNOSIS] == "B54 - Unspecified malaria"
    assert values["ETSl9Q3SUOG"] == "true"
    assert ADDITIONAL_DIAGNOSIS not in values
    order = [element.uid for element in form.data_elements if element.uid in values]
    assert [dv["dataElement"] for dv in event["dataValues"]] == order


@pytest.mark.parametrize(
    "column", ["fg8sMCaTOrK", "GENDER_(MORBIDITY/MORTALITY)", "gender (morbidity/mortality)"]
)
def test_each_way_of_naming_a_column_reaches_the_same_data_element(
    mapper: Mapper, column: str
) -> None:
    prepared = prepare(mapper, **{"Gender (morbidity/mortality)": None, column: "female"})
    assert prepared.ok, prepared.errors
    assert value_of(prepared, GENDER) == "Female"


def test_a_bare_uid_column_is_shown_by_its_form_label(mapper: Mapper) -> None:
    prepared = prepare(mapper, **{"Gender (morbidity/mortality)": None, GENDER: "Malee"})
    assert prepared.fields[GENDER] == "Gender (morbidity/mortality)"
    assert prepared.errors[0].field == "Gender (morbidity/mortality)"


@pytest.mark.parametrize(
    ("column", "written", "prop", "sent"),
    [
        ("occurredAt", "15/03/2025", "occurredAt", "2025-03-15"),
        ("REPORT DATE", "15/03/2025", "occurredAt", "2025-03-15"),
        ("eventDate", "2025-03-15", "occurredAt", "2025-03-15"),
        ("OrgUnit", "Kp4wTr2mHoS", "orgUnit", "Kp4wTr2mHoS"),
        ("STATUS", "active", "status", "ACTIVE"),
        ("Event", "evSynthet01", "event", "evSynthet01"),
    ],
)
def test_event_property_columns_and_their_aliases(
    mapper: Mapper, column: str, written: str, prop: str, sent: str
) -> None:
    replaced = {"occurredAt": "Report date", "orgUnit": "orgUnit"}.get(prop, column)
    prepared = prepare(mapper, **{replaced: None, column: written})
    assert prepared.ok, prepared.errors
    assert prepared.event[prop] == sent
    assert prepared.fields[prop] == column


def test_check_columns_names_unknown_columns_with_suggestions(mapper: Mapper) -> None:
    errors = mapper.check_columns(
        ["Patient number", "Gendr", "Admission date", "S/N", "Reprot date"]
    )
    assert [(error.code, error.field) for error in errors] == [
        ("UNKNOWN_COLUMN", "Gendr"),
        ("UNKNOWN_COLUMN", "Admission date"),
        ("UNKNOWN_COLUMN", "S/N"),
        ("UNKNOWN_COLUMN", "Reprot date"),
    ]
    assert 'did you mean "Gender (morbidity/mortality)"?' in errors[0].message
    assert 'did you mean "Date of admission (morbidity/mortality)"?' in errors[1].message
    assert "its values cannot be sent" in errors[2].message
    assert '"Report date"' in errors[3].message


def test_check_columns_flags_two_columns_for_one_data_element(mapper: Mapper) -> None:
    [error] = mapper.check_columns(["Age", "Patient number", "upqhIcii1iC"])
    assert (error.code, error.data_element, error.field) == ("DUPLICATE_VALUE", AGE, "upqhIcii1iC")
    assert error.message.startswith('Columns "Age" and "upqhIcii1iC" both hold Age')


def test_check_columns_accepts_the_demo_sheet_headers(mapper: Mapper) -> None:
    assert mapper.check_columns(VALID_ROW) == []


def test_an_unknown_column_with_a_value_is_an_error_in_the_record(mapper: Mapper) -> None:
    prepared = prepare(mapper, Gendr="Male", **{"Blank column": "  "})
    [error] = prepared.errors
    assert (error.code, error.field, error.value) == ("E1304", "Gendr", "Male")
    assert 'did you mean "Gender (morbidity/mortality)"?' in error.message


@pytest.mark.parametrize(
    ("typed_value_", "code"),
    [
        ("Male", "Male"),
        ("male", "Male"),
        ("  FEMALE ", "Female"),
    ],
)
def test_option_names_become_codes_in_any_case(
    mapper: Mapper, typed_value_: str, code: str
) -> None:
    assert (
        value_of(prepare(mapper, **{"Gender (morbidity/mortality)": typed_value_}), GENDER) == code
    )


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("B54", "B54 - Unspecified malaria"),
        ("unspecified   MALARIA", "B54 - Unspecified malaria"),
        (" b54  -  unspecified malaria ", "B54 - Unspecified malaria"),
        ("J18.9 - Pneumonia, unspecified", "J18.9 - Pneumonia, unspecified"),
    ],
)
def test_diagnoses_match_by_full_name_icd_code_or_description(
    mapper: Mapper, written: str, code: str
) -> None:
    prepared = prepare(mapper, **{"Principal diagnosis": written})
    assert prepared.ok, prepared.errors
    assert value_of(prepared, DIAGNOSIS) == code


def test_a_misspelt_option_is_e1125_with_the_closest_option_suggested(mapper: Mapper) -> None:
    prepared = prepare(mapper, **{"Gender (morbidity/mortality)": "Malee"})
    [error] = prepared.errors
    assert (error.code, error.data_element, error.value) == ("E1125", GENDER, "Malee")
    assert error.message.startswith(
        '"Malee" is not an option of Gender (morbidity/mortality); did you mean "Male"'
    )


def test_an_unrecognisable_option_lists_the_choices_when_they_are_few(mapper: Mapper) -> None:
    [error] = prepare(mapper, Outcome="zzz").errors
    assert error.message.endswith(
        "choose one of: Absconded, Discharged, Transferred, Unspecified, Died."
    )


def test_an_exact_code_wins_and_a_case_insensitive_tie_is_ambiguous() -> None:
    element = synthetic_element(
        "deWard00001",
        options=(("A", "B"), ("B", "Bed ward"), ("b2", "Annex"), ("b3", "ANNEX")),
        name="Ward",
    )
    mapper = Mapper(
        ProgramForm.from_metadata(synthetic_program(element)),
        RecordDefaults(org_unit=SYNTHETIC_ORG_UNITS[0]),
    )

    def ward(value: str) -> PreparedRecord:
        return mapper.prepare(SourceRecord(2, {"Report date": "2025-03-14", "Ward": value}))

    assert value_of(ward("B"), "deWard00001") == "B"
    assert value_of(ward("bed WARD"), "deWard00001") == "B"
    ambiguous = ward("annex")
    [error] = ambiguous.errors
    assert (error.code, error.field, error.value) == ("AMBIGUOUS_OPTION", "Ward", "annex")
    assert '("b2", "b3")' in error.message


@pytest.mark.parametrize(
    "placeholder",
    ["NA", "n/a", "-", "nil", "None", "  ", "null", "#N/A", "Not applicable", "\u2013"],
)
def test_placeholders_mean_no_value_and_are_never_sent(mapper: Mapper, placeholder: str) -> None:
    prepared = prepare(
        mapper, **{"Additional diagnosis": placeholder, "Cost of treatment": placeholder}
    )
    assert prepared.ok, prepared.errors
    assert value_of(prepared, ADDITIONAL_DIAGNOSIS) is None
    assert value_of(prepared, COST) is None


def test_none_is_a_real_education_option_but_an_empty_gender(mapper: Mapper) -> None:
    prepared = prepare(mapper, Education="None", **{"Gender (morbidity/mortality)": "none"})
    assert value_of(prepared, EDUCATION) == "None"
    assert value_of(prepared, GENDER) is None
    [error] = prepared.errors
    assert (error.code, error.data_element) == ("E1303", GENDER)
    assert error.message == (
        "Gender (morbidity/mortality) is compulsory but has no value; fill it in."
    )


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("true", "true"),
        ("Yes", "true"),
        ("Y", "true"),
        ("1", "true"),
        (True, "true"),
        ("FALSE", "false"),
        ("no", "false"),
        ("n", "false"),
        ("0", "false"),
        (False, "false"),
    ],
)
def test_booleans(typed_mapper: Mapper, written: object, sent: str) -> None:
    assert typed_value(typed_mapper, "BOOLEAN", written) == sent


@pytest.mark.parametrize(("written", "sent"), [("yes", "true"), ("TRUE", "true"), ("no", None)])
def test_true_only_is_a_tick_box(typed_mapper: Mapper, written: str, sent: str | None) -> None:
    assert typed_value(typed_mapper, "TRUE_ONLY", written) == sent


@pytest.mark.parametrize(
    ("value_type", "written", "sent"),
    [
        ("NUMBER", "1,200", "1200"),
        ("NUMBER", " 1 200 ", "1200"),
        ("NUMBER", "1,234,567.50", "1234567.5"),
        ("NUMBER", "007", "7"),
        ("NUMBER", "-0", "0"),
        ("NUMBER", "+12.5", "12.5"),
        ("NUMBER", 12.5, "12.5"),
        ("NUMBER", 1e20, "100000000000000000000"),
        ("INTEGER", "20.0", "20"),
        ("INTEGER", "-4", "-4"),
        ("INTEGER", 20, "20"),
        ("INTEGER", 20.0, "20"),
        ("INTEGER_POSITIVE", "3", "3"),
        ("INTEGER_ZERO_OR_POSITIVE", "0", "0"),
        ("INTEGER_NEGATIVE", "-1", "-1"),
        ("PERCENTAGE", "100", "100"),
        ("PERCENTAGE", "0", "0"),
    ],
)
def test_numbers_lose_separators_and_become_dhis2_numbers(
    typed_mapper: Mapper, value_type: str, written: object, sent: str
) -> None:
    assert typed_value(typed_mapper, value_type, written) == sent


@pytest.mark.parametrize(
    ("value_type", "written", "expected"),
    [
        ("NUMBER", "abc", "a number"),
        ("NUMBER", "1,5", "a number"),
        ("NUMBER", "NaN", "a number"),
        ("INTEGER", "20.5", "a whole number"),
        ("INTEGER_POSITIVE", "0", "a whole number above 0"),
        ("INTEGER_ZERO_OR_POSITIVE", "-3", "a whole number, 0 or more"),
        ("INTEGER_NEGATIVE", "0", "a whole number below 0"),
        ("PERCENTAGE", "101", "a whole number from 0 to 100"),
        ("BOOLEAN", "maybe", "Yes or No"),
        ("TRUE_ONLY", "perhaps", "Yes, or leave it empty"),
        ("DATE", "March 14", "day first, like 14-03-2025"),
        ("DATE", "2025-13-01", "there is no month 13"),
        ("DATE", "31-02-2025", "February 2025 has no day 31"),
        ("DATE", "29-02-2025", "February 2025 has no day 29"),
        ("DATETIME", "14-03-2025 25:00", "a time that does not exist"),
    ],
)
def test_values_that_do_not_fit_their_type_are_e1302_saying_what_to_write(
    typed_mapper: Mapper, value_type: str, written: object, expected: str
) -> None:
    prepared = typed(typed_mapper, value_type, written)
    [error] = prepared.errors
    assert error.code == "E1302"
    assert error.data_element == TYPED_ELEMENTS[value_type]["dataElement"]["id"]
    assert error.value == str(written)
    assert expected in error.message


@pytest.mark.parametrize(
    ("written", "iso"),
    [
        ("2025-03-14", "2025-03-14"),
        ("14-03-2025", "2025-03-14"),
        ("14/03/2025", "2025-03-14"),
        ("14.03.2025", "2025-03-14"),
        ("4/3/2025", "2025-03-04"),
        ("03/04/2025", "2025-04-03"),
        ("29-02-2024", "2024-02-29"),
        ("2025-03-14T00:00:00.000", "2025-03-14"),
        ("2025/03/14", "2025-03-14"),
        ("14 March 2025", "2025-03-14"),
        ("14-Mar-2025", "2025-03-14"),
        ("14th Sept. 2025", "2025-09-14"),
        ("March 14, 2025", "2025-03-14"),
        ("14/03/2025 10:45", "2025-03-14"),
    ],
)
def test_dates_iso_or_day_first_become_iso(typed_mapper: Mapper, written: str, iso: str) -> None:
    assert typed_value(typed_mapper, "DATE", written) == iso


@pytest.mark.parametrize(
    ("written", "advice"),
    [
        ("12/31/2025", "looks month first (MM/DD/YYYY); write it day first, like 31-12-2025"),
        ("14/03/25", "has a two-digit year"),
        ("45730", "looks like a spreadsheet date number (it would be 14-03-2025)"),
        ("14-Mar-25", "has a two-digit year"),
    ],
)
def test_dates_that_would_need_a_guess_are_ambiguous(
    typed_mapper: Mapper, written: str, advice: str
) -> None:
    [error] = typed(typed_mapper, "DATE", written).errors
    assert (error.code, error.value) == ("AMBIGUOUS_DATE", written)
    assert advice in error.message


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("14-03-2025 09:30", "2025-03-14T09:30:00"),
        ("2025-03-14T09:30:15.250Z", "2025-03-14T09:30:15.250Z"),
        ("14/03/2025", "2025-03-14T00:00:00"),
    ],
)
def test_date_times(typed_mapper: Mapper, written: str, sent: str) -> None:
    assert typed_value(typed_mapper, "DATETIME", written) == sent


def test_json_values_of_the_wrong_kind_are_refused(typed_mapper: Mapper) -> None:
    [error] = typed(typed_mapper, "TEXT", ["a", "b"]).errors
    assert (error.code, error.value) == ("E1302", "['a', 'b']")
    assert error.message == "Text holds \"['a', 'b']\", which is not a single value."
    [error] = typed(typed_mapper, "NUMBER", True).errors
    assert (error.code, error.value) == ("E1302", "true")


def test_the_report_date_is_coerced_like_any_date(mapper: Mapper) -> None:
    assert prepare(mapper, **{"Report date": "14.03.2025"}).event["occurredAt"] == "2025-03-14"
    with_time = prepare(mapper, **{"Report date": "14-03-2025 08:05"})
    assert with_time.event["occurredAt"] == "2025-03-14T08:05:00"


@pytest.mark.parametrize(
    ("written", "code"), [("31-04-2025", "E1031"), ("04/31/2025", "AMBIGUOUS_DATE")]
)
def test_a_bad_report_date_is_reported_once(mapper: Mapper, written: str, code: str) -> None:
    [error] = prepare(mapper, **{"Report date": written}).errors
    assert (error.code, error.field, error.value) == (code, "Report date", written)


def test_a_missing_report_date_is_e1031_never_today(mapper: Mapper) -> None:
    prepared = prepare(mapper, **{"Report date": None})
    assert "occurredAt" not in prepared.event
    [error] = prepared.errors
    assert error.code == "E1031"


def test_the_report_date_can_default_to_the_admission_date(form: ProgramForm) -> None:
    mapper = Mapper(form, RecordDefaults(report_date_from=ADMISSION))
    prepared = prepare(mapper, **{"Report date": None})
    assert prepared.ok, prepared.errors
    assert prepared.event["occurredAt"] == "2025-03-14"
    assert prepare(mapper, **{"Report date": "15-03-2025"}).event["occurredAt"] == "2025-03-15"
    bad_admission = prepare(
        mapper, **{"Report date": None, "Date of admission (morbidity/mortality)": "32-03-2025"}
    )
    assert codes(bad_admission) == ["E1302"]


def test_two_columns_for_one_data_element_are_a_duplicate_unless_one_is_empty(
    mapper: Mapper,
) -> None:
    duplicate = prepare(mapper, **{AGE: "35"})
    [error] = duplicate.errors
    assert (error.code, error.data_element) == ("DUPLICATE_VALUE", AGE)
    assert 'columns "Age" and "upqhIcii1iC"' in error.message
    one_empty = prepare(mapper, Age="NA", **{AGE: "35"})
    assert one_empty.ok, one_empty.errors
    assert value_of(one_empty, AGE) == "35"
    assert one_empty.fields[AGE] == "Age"  # the filled column, a bare UID, shown by its label
    assert codes(prepare(mapper, AGE="35")) == ["DUPLICATE_VALUE"]  # the code names Age too


def test_two_report_date_columns_are_a_duplicate(mapper: Mapper) -> None:
    assert codes(prepare(mapper, occurredAt="15-03-2025")) == ["DUPLICATE_VALUE"]


def test_a_given_event_uid_is_kept_and_a_malformed_one_is_e1048(mapper: Mapper) -> None:
    assert prepare(mapper, event="evSynthet01").event["event"] == "evSynthet01"
    [error] = prepare(mapper, event="12345").errors
    assert (error.code, error.value) == ("E1048", "12345")


def test_org_units_default_must_be_in_the_program_and_in_the_users_scope(form: ProgramForm) -> None:
    scoped = Mapper(form, RecordDefaults(org_unit=ORG_UNIT_UID), frozenset({ORG_UNIT_UID}))
    assert prepare(scoped, orgUnit=None).event["orgUnit"] == ORG_UNIT_UID
    assert codes(prepare(scoped, orgUnit="Zq8NvB3xLeA")) == ["E1000"]
    assert codes(prepare(scoped, orgUnit="ouNotInProg")) == ["E1029"]
    unscoped = Mapper(form)
    assert prepare(unscoped, orgUnit="Zq8NvB3xLeA").ok
    assert codes(prepare(unscoped, orgUnit=None)) == ["E1123"]


def test_status_defaults_to_completed_and_decides_whether_compulsory_counts(
    mapper: Mapper,
) -> None:
    assert codes(prepare(mapper, **{"Patient number": ""})) == ["E1303"]
    active = prepare(mapper, status="Active", **{"Patient number": ""})
    assert active.ok, active.errors
    assert active.event["status"] == "ACTIVE"
    [error] = prepare(mapper, status="Done").errors
    assert (error.code, error.value) == ("INVALID_STATUS", "Done")


def test_json_records_map_the_same_way(mapper: Mapper) -> None:
    data = [
        {
            "program": PROGRAM_UID,
            "orgUnit": ORG_UNIT_UID,
            "occurredAt": "2025-03-14",
            "status": "ACTIVE",
            "dataValues": [
                {"dataElement": AGE, "value": 20},
                {"dataElement": "GENDER_(MORBIDITY/MORTALITY)", "value": "female"},
                {"dataElement": "Insured (NHIS)", "value": True},
            ],
        },
        {"program": "prOther0001", "orgUnit": ORG_UNIT_UID, "occurredAt": "2025-03-14"},
    ]
    first, second = (mapper.prepare(record) for record in read_json(data, source_name="upload"))
    assert first.ok, first.errors
    assert {dv["dataElement"]: dv["value"] for dv in first.event["dataValues"]} == {
        AGE: "20",
        GENDER: "Female",
        "ETSl9Q3SUOG": "true",
    }
    assert codes(second)[0] == "E1010"


def test_errors_found_while_reading_stay_with_the_record(mapper: Mapper) -> None:
    reading_error = RecordError("MALFORMED_RECORD", "Row 9 has 2 cells but the header has 3.")
    prepared = mapper.prepare(SourceRecord(9, dict(VALID_ROW), (reading_error,)))
    assert prepared.errors == [reading_error]
    assert not prepared.ok
    assert prepared.row == 9


def test_the_bundled_demo_sheet_has_exactly_its_three_invalid_records(mapper: Mapper) -> None:
    resource = resources.files("dhims2").joinpath("data/demo-records.csv")
    with resources.as_file(resource) as path:
        prepared = [mapper.prepare(record) for record in read_records(Path(path))]
    assert 10 <= len(prepared) <= 14
    invalid = {record.row: codes(record) for record in prepared if not record.ok}
    assert invalid == {5: ["E1125"], 7: ["E1302"], 9: ["E1303"]}
    valid = [record for record in prepared if record.ok]
    assert len({record.event["occurredAt"] for record in valid}) > 1
    assert all(record.event["orgUnit"] == ORG_UNIT_UID for record in valid)


_cell_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["NA", "None", "Male", "1,200", "31-02-2025", "12/31/2025", "yes", "B54"]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_columns = st.one_of(st.sampled_from(sorted(VALID_ROW)), st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(_columns, _cell_values, max_size=20))
def test_prepare_never_raises_and_sends_only_strings(
    mapper: Mapper, fields: dict[str, object]
) -> None:
    prepared = mapper.prepare(SourceRecord(2, fields))
    for data_value in prepared.event["dataValues"]:
        assert isinstance(data_value["value"], str)
    assert all(isinstance(error, RecordError) and error.message for error in prepared.errors)
    assert prepared.ok == (not prepared.errors)


@pytest.mark.parametrize(
    ("value_type", "written", "sent"),
    [
        ("DATE", date(2025, 3, 14), "2025-03-14"),
        ("DATE", datetime(2025, 3, 14, 23, 59), "2025-03-14"),
        ("DATE", 45730, "2025-03-14"),
        ("DATE", 45730.99, "2025-03-14"),
        ("DATETIME", datetime(2025, 3, 14, 9, 30), "2025-03-14T09:30:00"),
        ("DATETIME", 45730.5, "2025-03-14T12:00:00"),
        ("DATETIME", date(2025, 3, 14), "2025-03-14T00:00:00"),
        ("TEXT", date(2025, 3, 14), "2025-03-14"),
        ("TEXT", datetime(2025, 3, 14, 9, 30), "2025-03-14 09:30:00"),
        ("NUMBER", 1200.0, "1200"),
    ],
)
def test_spreadsheet_cells_keep_their_meaning(
    typed_mapper: Mapper, value_type: str, written: object, sent: str
) -> None:
    assert typed_value(typed_mapper, value_type, written) == sent


@pytest.mark.parametrize("serial", [60, 0, -3, 2958466, 10.5])
def test_numbers_that_are_no_excel_date_are_refused_in_a_date_field(
    typed_mapper: Mapper, serial: float
) -> None:
    [error] = typed(typed_mapper, "DATE", serial).errors
    assert (error.code, error.value) == ("E1302", str(serial))
    assert "is a number, not a date" in error.message


def test_a_month_name_that_is_no_month_says_so(typed_mapper: Mapper) -> None:
    [error] = typed(typed_mapper, "DATE", "14 Smarch 2025").errors
    assert '"Smarch" is no month' in error.message


def test_accepts_says_whether_a_value_fits_a_field(mapper: Mapper) -> None:
    assert mapper.accepts(GENDER, "male")
    assert not mapper.accepts(GENDER, "Malee")
    assert not mapper.accepts(GENDER, "NA")
    assert mapper.accepts(ADMISSION, 45730)
    assert mapper.accepts("occurredAt", "14-03-2025")
    assert not mapper.accepts("status", "FINISHED")


def test_errors_name_the_column_a_field_came_from(mapper: Mapper) -> None:
    source = SourceRecord(
        7,
        {
            **{
                key: value
                for key, value in VALID_ROW.items()
                if key != "Gender (morbidity/mortality)"
            },
            GENDER: "Malee",
        },
        columns={GENDER: "Sex"},
    )
    [error] = mapper.prepare(source).errors
    assert (error.code, error.field, error.value) == ("E1125", "Sex", "Malee")
    assert error.message.startswith('"Malee" is not an option of Sex; did you mean "Male"')


def test_values_reported_while_reading_are_not_reported_again_as_missing(mapper: Mapper) -> None:
    fields = {k: v for k, v in VALID_ROW.items() if k not in ("Age", "Patient age unit")}
    unread = RecordError("E1302", "Age: not an age.", AGE, "Age", "twenty")
    source = SourceRecord(2, fields, errors=(unread,))
    assert [error.code for error in mapper.prepare(source).errors] == ["E1302", "E1303", "E1303"]
    reported = mapper.prepare(source, reported={AGE, "WZ5rS7QuECT"})
    assert reported.errors == [unread]
