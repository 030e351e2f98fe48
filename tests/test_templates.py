"""Mapping templates: the shipped DHIMS2 layout, every transform, the file format's checks,
binding to the form, and suggestions for a sheet nobody has mapped yet. Synthetic values only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from dhims2.forms.mapping import PreparedRecord, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form
from dhims2.sheets.reading import open_records
from dhims2.sheets.source import RecordSource
from dhims2.sheets.suggestion import suggest_template
from dhims2.sheets.templates import (
    BoundTemplate,
    Template,
    TemplateError,
    load_template,
    save_template,
    shipped_templates,
)
from test_xlsx import write_workbook

PATIENT_NUMBER = "h0Ef6ykTpNB"
AGE = "upqhIcii1iC"
AGE_UNIT = "WZ5rS7QuECT"
GENDER = "fg8sMCaTOrK"
EDUCATION = "Hi8Cp84CnZQ"
ADMISSION = "HsMaBh3wKed"
DIAGNOSIS = "yPXPzceTIvq"
ADDITIONAL_DIAGNOSIS = "O15UNfCqavW"
SURGERY = "dsVClbnOnm6"
INSURED = "ETSl9Q3SUOG"
OUTCOME = "OMN7CVW4IaY"

# The DHIMS2 In-Patient sheet's own columns, in its order.
DHIMS2_HEADER = [
    *("Patient No.", "Address/Locality", "Age", "Gender", "Occupation", "Educational Status"),
    *("Date of Admission", "Date of Discharge", "Speciality", "Outcome of Discharge"),
    *("Principal Diagnosis", "Additional Diagnosis", "Surgical Procedure", "Cost of Treatment"),
    "NHIS Status",
]


def dhims2_row(index: int, **changes: object) -> dict[str, object]:
    """A made-up patient as the DHIMS2 sheet holds one; `changes` replace columns (None drops)."""
    admitted = date(2025, 1, 1) + timedelta(days=index % 300)
    row: dict[str, object] = {
        "Patient No.": f"VRH/SYN/{index:05d}",
        "Address/Locality": "Ho",
        "Age": f"{18 + index % 60} Year(s)",
        "Gender": "M" if index % 2 else "F",
        "Occupation": "Trader",
        "Educational Status": "JHS",
        "Date of Admission": admitted,
        "Date of Discharge": admitted + timedelta(days=3),
        "Speciality": "Medical",
        "Outcome of Discharge": "Discharged",
        "Principal Diagnosis": "Other tetanus(A35.00)" if index % 2 else "B54",
        "Additional Diagnosis": "NA",
        "Surgical Procedure": "N",
        "Cost of Treatment": 450,
        "NHIS Status": "Insured",
        **changes,
    }
    return {column: value for column, value in row.items() if value is not None}


def dhims2_sheet(count: int) -> Iterator[list[object]]:
    """The header and `count` rows of a DHIMS2 sheet."""
    yield DHIMS2_HEADER
    for index in range(count):
        row = dhims2_row(index)
        yield [row.get(column) for column in DHIMS2_HEADER]


@pytest.fixture(scope="module")
def inpatient() -> BoundTemplate:
    form = in_patient_form()
    return load_template("dhims2-inpatient").bind(form, RecordDefaults(org_unit=ORG_UNIT_UID))


def prepare(bound: BoundTemplate, row: int = 2, **changes: object) -> PreparedRecord:
    return bound.prepare(SourceRecord(row, dhims2_row(1, **changes)))


def value_of(prepared: PreparedRecord, uid: str) -> str | None:
    values = [dv["value"] for dv in prepared.event["dataValues"] if dv["dataElement"] == uid]
    assert len(values) <= 1, "one dataValue per data element, ever"
    return values[0] if values else None


def only_error(prepared: PreparedRecord) -> Any:
    [error] = prepared.errors
    return error


def test_the_shipped_dhims2_sheet_template_reads_a_dhims2_row(inpatient: BoundTemplate) -> None:
    assert "dhims2-inpatient" in shipped_templates()
    assert inpatient.check_columns(DHIMS2_HEADER) == []
    prepared = prepare(inpatient)
    assert prepared.ok, prepared.errors
    assert prepared.event["occurredAt"] == "2025-01-02"
    expected = {
        PATIENT_NUMBER: "VRH/SYN/00001",
        AGE: "19",
        AGE_UNIT: "years",
        GENDER: "Male",
        EDUCATION: "JHS/Middle School",
        ADMISSION: "2025-01-02",
        DIAGNOSIS: "A35 - Other tetanus",
        ADDITIONAL_DIAGNOSIS: None,
        SURGERY: "false",
        INSURED: "true",
        "fRkwcThGCTM": "450",
    }
    assert {uid: value_of(prepared, uid) for uid in expected} == expected


@pytest.mark.parametrize(
    ("written", "age", "unit"),
    [
        ("20 Year(s)", "20", "years"),
        ("6 Month(s)", "6", "months"),
        ("12 Day(s)", "12", "days"),
        ("2 weeks", "14", "days"),
        ("3yrs", "3", "years"),
        ("9 mths", "9", "months"),
        ("  45 YEARS ", "45", "years"),
    ],
)
def test_the_age_transform_splits_number_and_unit(
    inpatient: BoundTemplate, written: str, age: str, unit: str
) -> None:
    prepared = prepare(inpatient, Age=written)
    assert prepared.ok, prepared.errors
    assert (value_of(prepared, AGE), value_of(prepared, AGE_UNIT)) == (age, unit)


@pytest.mark.parametrize(
    ("written", "code", "says"),
    [
        ("twenty", "E1302", "is not an age with its unit; write it like 20 Year(s)"),
        ("34", "E1302", "is not an age with its unit"),
        ("1.5 Year(s)", "E1302", "write a whole number, 0 or more"),
    ],
)
def test_an_unreadable_age_is_one_error_naming_the_column(
    inpatient: BoundTemplate, written: str, code: str, says: str
) -> None:
    error = only_error(prepare(inpatient, Age=written))
    assert (error.code, error.field, error.data_element) == (code, "Age", AGE)
    assert says in error.message


def test_a_default_unit_reads_a_bare_number() -> None:
    document = {
        "formatVersion": 1,
        "name": "bare-ages",
        "columns": {"Age": {"dataElement": AGE, "transform": "age", "unitDataElement": AGE_UNIT}},
    }
    document["columns"]["Age"]["defaultUnit"] = "years"
    bound = Template.from_json(document, source_name="t.json").bind(in_patient_form())
    record = bound.apply(SourceRecord(2, {"Age": 34}))
    assert record.fields == {AGE: "34", AGE_UNIT: "years"}
    assert record.columns == {AGE: "Age", AGE_UNIT: "Age"}


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("Y", "true"),
        ("n", "false"),
        ("Yes", "true"),
        ("NO", "false"),
        ("1", "true"),
        (True, "true"),
    ],
)
def test_the_yes_no_transform(inpatient: BoundTemplate, written: object, sent: str) -> None:
    assert value_of(prepare(inpatient, **{"Surgical Procedure": written}), SURGERY) == sent


def test_an_unreadable_yes_no_is_one_error(inpatient: BoundTemplate) -> None:
    error = only_error(prepare(inpatient, **{"Surgical Procedure": "maybe"}))
    assert (error.code, error.field, error.value) == ("E1302", "Surgical Procedure", "maybe")
    assert "write Yes or No" in error.message


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("Other tetanus(A35.00)", "A35 - Other tetanus"),
        ("Other tetanus (A35)", "A35 - Other tetanus"),
        ("Typhoid fever(A01.00)", "A01.0 - Typhoid fever"),
        ("Essential (primary) hypertension(I10)", "I10 - Essential (primary) hypertension"),
        ("b54", "B54 - Unspecified malaria"),
        ("A35.", "A35 - Other tetanus"),
        ("Unspecified malaria", "B54 - Unspecified malaria"),
        ("B54 - Unspecified malaria", "B54 - Unspecified malaria"),
        ("Unspecified malaria[B54]", "B54 - Unspecified malaria"),
    ],
)
def test_the_diagnosis_transform_finds_the_option_code(
    inpatient: BoundTemplate, written: str, code: str
) -> None:
    prepared = prepare(inpatient, **{"Principal Diagnosis": written})
    assert prepared.ok, prepared.errors
    assert value_of(prepared, DIAGNOSIS) == code


def test_a_diagnosis_code_not_in_the_option_set_suggests_its_category(
    inpatient: BoundTemplate,
) -> None:
    error = only_error(prepare(inpatient, **{"Principal Diagnosis": "Tetanus, other(A35.9)"}))
    assert (error.code, error.field) == ("E1125", "Principal Diagnosis")
    assert "no option has the code A35.9" in error.message
    assert 'did you mean "A35 - Other tetanus"' in error.message


def test_a_diagnosis_whose_code_and_description_disagree_is_refused(
    inpatient: BoundTemplate,
) -> None:
    error = only_error(prepare(inpatient, **{"Principal Diagnosis": "Cholera(B54)"}))
    assert error.code == "AMBIGUOUS_OPTION"
    assert '"B54 - Unspecified malaria" but the description is "A00 - Cholera"' in error.message


def test_placeholders_stay_empty_through_every_transform(inpatient: BoundTemplate) -> None:
    prepared = prepare(
        inpatient, **{"Additional Diagnosis": "N/A", "Cost of Treatment": "-", "Age": "NA"}
    )
    assert value_of(prepared, ADDITIONAL_DIAGNOSIS) is None
    assert [(e.code, e.data_element) for e in prepared.errors] == [
        ("E1303", AGE),
        ("E1303", AGE_UNIT),
    ]


def test_value_maps_apply_in_any_case_before_the_field_reads_the_value(
    inpatient: BoundTemplate,
) -> None:
    prepared = prepare(
        inpatient,
        Gender="f",
        **{
            "Educational Status": "shs",
            "NHIS Status": "NOT INSURED",
            "Outcome of Discharge": "Dead",
        },
    )
    assert prepared.ok, prepared.errors
    assert value_of(prepared, GENDER) == "Female"
    assert value_of(prepared, EDUCATION) == "SHS/Secondary"
    assert value_of(prepared, INSURED) == "false"
    assert value_of(prepared, OUTCOME) == "Died"


def test_a_bad_admission_date_is_reported_once_though_it_dates_the_event(
    inpatient: BoundTemplate,
) -> None:
    error = only_error(prepare(inpatient, **{"Date of Admission": "31-02-2025"}))
    assert (error.code, error.field) == ("E1302", "Date of Admission")
    assert "February 2025 has no day 31" in error.message


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "formatVersion": 1,
        "name": "t",
        "columns": {"Folder": {"dataElement": PATIENT_NUMBER}},
        **extra,
    }


def bind(document: dict[str, Any]) -> BoundTemplate:
    return Template.from_json(document, source_name="t.json").bind(in_patient_form())


def test_constants_and_a_separate_report_date_column() -> None:
    bound = bind(
        minimal(
            occurredAt="Seen on",
            constants={"orgUnit": ORG_UNIT_UID, "Patient age unit": "years", "status": "ACTIVE"},
        )
    )
    prepared = bound.prepare(SourceRecord(2, {"Folder": "SYN-1", "Seen on": "14/03/2025"}))
    assert prepared.event["occurredAt"] == "2025-03-14"
    assert (prepared.event["orgUnit"], prepared.event["status"]) == (ORG_UNIT_UID, "ACTIVE")
    assert value_of(prepared, AGE_UNIT) == "years"


def test_a_bad_report_date_names_its_column() -> None:
    bound = bind(minimal(occurredAt="Seen on"))
    prepared = bound.prepare(SourceRecord(2, {"Folder": "SYN-1", "Seen on": "someday"}))
    [error] = [error for error in prepared.errors if error.code == "E1031"]
    assert error.field == "Seen on"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "t", "columns": {}}, "'formatVersion' is a required property"),
        (minimal(columns={}), 'at "columns": {} should be non-empty'),
        (minimal(name="bad name!"), 'at "name": '),
        (
            minimal(columns={"Age": {"dataElement": AGE, "transform": "split"}}),
            'at "columns" > "Age" > "transform": \'split\' is not one of',
        ),
        (minimal(columns={"Age": {"dataElement": 3}}), "3 is not of type 'string'"),
        (minimal(colour="red"), "Additional properties are not allowed ('colour' was unexpected)"),
        (
            minimal(columns={"Age": {"dataElement": AGE, "ignore": True}}),
            'column "Age": give exactly one of dataElement, property or ignore',
        ),
        (minimal(columns={"Age": {"label": "Age"}}), "give exactly one of"),
        (
            minimal(columns={"Age": {"dataElement": AGE, "transform": "age"}}),
            "the age transform needs unitDataElement",
        ),
        (
            minimal(columns={"Age": {"dataElement": AGE, "defaultUnit": "years"}}),
            "unitDataElement and defaultUnit belong to the age transform",
        ),
        (
            minimal(columns={"S/N": {"property": "status", "transform": "yes_no"}}),
            "needs a dataElement",
        ),
        (
            minimal(columns={"Patient No.": {"ignore": True}, "patient no": {"ignore": True}}),
            'is the same column as "Patient No."',
        ),
        (
            minimal(columns={"Sex": {"dataElement": GENDER, "values": {"M": "Male", "m": "Male"}}}),
            "values lists the same written value twice",
        ),
        (minimal(formatVersion=2), "is a template of format 2, newer than this program reads"),
        ([], "[] is not of type 'object'"),
    ],
)
def test_template_files_that_break_the_format_are_refused_saying_where(
    document: object, message: str
) -> None:
    with pytest.raises(TemplateError, match=r"t\.json") as raised:
        Template.from_json(document, source_name="t.json")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (minimal(program="Zz9999999zz"), "is for program Zz9999999zz, not for"),
        (
            minimal(columns={"Sex": {"dataElement": "Gendr"}}),
            '"Gendr" is no data element of',
        ),
        (
            minimal(
                columns={
                    "Age": {
                        "dataElement": "Gender (morbidity/mortality)",
                        "transform": "age",
                        "unitDataElement": AGE_UNIT,
                    }
                }
            ),
            "the age transform needs a number field",
        ),
        (
            minimal(columns={"Sex": {"dataElement": GENDER, "transform": "yes_no"}}),
            "the yes_no transform needs a yes/no field",
        ),
        (
            minimal(columns={"Age": {"dataElement": AGE, "transform": "diagnosis"}}),
            "the diagnosis transform needs an option set",
        ),
        (
            minimal(columns={"Sex": {"dataElement": GENDER, "values": {"M": "Mle"}}}),
            'values maps "M" to "Mle", which is not a valid Gender (morbidity/mortality)',
        ),
        (
            minimal(
                columns={
                    "A": {"dataElement": GENDER},
                    "B": {"dataElement": "Gender (morbidity/mortality)"},
                }
            ),
            'columns "A" and "B" both fill Gender (morbidity/mortality)',
        ),
        (minimal(constants={"orgUnit": "Xx000000000"}), 'constant orgUnit is "Xx000000000"'),
        (minimal(constants={"status": "DONE"}), 'constant status is "DONE"'),
        (minimal(constants={"Age": "old"}), 'constant Age is "old", which is not a valid Age'),
        (minimal(constants={PATIENT_NUMBER: "x"}), "is both a constant and read from column"),
    ],
)
def test_templates_that_do_not_fit_the_form_are_refused_when_bound(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(TemplateError, match="template t") as raised:
        bind(document)
    assert message in str(raised.value)


def test_check_columns_names_missing_and_unknown_columns(inpatient: BoundTemplate) -> None:
    headers = [c for c in DHIMS2_HEADER if c not in ("Gender", "Cost of Treatment")] + ["Ward"]
    errors = inpatient.check_columns([*headers, "Ward"][:-1])
    assert [(error.code, error.field) for error in errors] == [
        ("MISSING_COLUMN", "Gender"),
        ("UNKNOWN_COLUMN", "Ward"),
    ]
    assert 'reads Gender (morbidity/mortality) from; add the column, or mark it "optional"' in (
        errors[0].message
    )
    assert 'Or add it to the template dhims2-inpatient, as "ignore"' in errors[1].message


def test_a_column_holding_what_the_template_reads_elsewhere_is_refused(
    inpatient: BoundTemplate,
) -> None:
    errors = inpatient.check_columns([*DHIMS2_HEADER, "Patient number", "Report date"])
    assert [(error.code, error.field) for error in errors] == [
        ("DUPLICATE_VALUE", "Patient number"),
        ("DUPLICATE_VALUE", "Report date"),
    ]
    assert 'takes from column "Patient No."' in errors[0].message


def test_columns_the_template_does_not_name_pass_through(inpatient: BoundTemplate) -> None:
    record = inpatient.apply(SourceRecord(3, {"PATIENT NO": "SYN-9", "Patient age unit": "years"}))
    assert record.fields == {PATIENT_NUMBER: "SYN-9", "Patient age unit": "years"}
    assert record.columns == {PATIENT_NUMBER: "PATIENT NO"}


def test_load_save_and_load_again(tmp_path: Path) -> None:
    shipped = load_template("dhims2-inpatient")
    path = tmp_path / "copy.json"
    save_template(shipped, path)
    assert load_template(path) == shipped
    assert load_template(str(path)).to_json() == json.loads(path.read_text(encoding="utf-8"))
    with pytest.raises(FileExistsError):
        save_template(shipped, path)
    save_template(shipped, path, overwrite=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "t.json, line 1, column 2: not valid JSON"),
        (b"\xff\xfe{}", "t.json: is not UTF-8 text"),
        (b" " * (1 << 20) + b"{}", "t.json: is larger than a template can be"),
    ],
)
def test_unreadable_template_files_are_template_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(content)
    with pytest.raises(TemplateError, match=message):
        load_template(path)


def test_an_unknown_template_name_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r'no template "ward".*\(dhims2-inpatient\)'):
        load_template("ward")
    with pytest.raises(TemplateError, match="cannot be read"):
        load_template(tmp_path / "missing.json")


def suggest(path: Path) -> Any:
    with open_records(path) as source:
        return suggest_template(source, in_patient_form(), name="Ward A (2025)")


def test_a_suggestion_for_the_dhims2_sheet_maps_every_column(tmp_path: Path) -> None:
    rows = list(dhims2_sheet(30))
    rows[0] = [*rows[0], "Remarks"]
    path = write_workbook(tmp_path / "ward.xlsx", {"Register": rows})
    suggestion = suggest(path)
    template = suggestion.template
    assert template.name == "Ward-A-2025"
    assert template.occurred_at == "Date of Admission"
    rules = {rule.column: rule for rule in template.columns}
    assert rules["Remarks"].ignore
    assert rules["Age"].transform == "age" and rules["Age"].unit_data_element == AGE_UNIT
    assert rules["Principal Diagnosis"].transform == "diagnosis"
    assert rules["Surgical Procedure"].transform == "yes_no"
    assert dict(rules["Gender"].values) == {"M": "Male", "F": "Female"}
    assert {rule.column: rule.data_element for rule in template.columns if rule.data_element} == {
        rule.column: rule.data_element
        for rule in load_template("dhims2-inpatient").columns
        if rule.column != "NHIS Status"
    } | {"NHIS Status": INSURED}
    assert suggestion.unfilled == ()

    reread = Template.from_json(json.loads(json.dumps(template.to_json())), source_name="s")
    bound = reread.bind(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    with open_records(path) as source:
        assert bound.check_columns(source.columns) == []
        # NHIS Status says "Insured": a value the suggestion cannot guess, left for the reviewer.
        faults = {e.field for record in source.records for e in bound.prepare(record).errors}
    assert faults == {"NHIS Status"}


def test_a_suggestion_lists_compulsory_fields_no_column_fills(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("Folder No.,Sex,Remarks\nSYN-1,M,ok\n", encoding="utf-8")
    suggestion = suggest(path)
    chosen = {rule.column: rule.data_element for rule in suggestion.template.columns}
    assert chosen == {"Folder No.": PATIENT_NUMBER, "Sex": GENDER, "Remarks": None}
    assert "Outcome" in suggestion.unfilled and "Patient number" not in suggestion.unfilled
    assert suggestion.template.occurred_at is None
    as_json = suggestion.to_json()
    assert [column["column"] for column in as_json["columns"]] == ["Folder No.", "Sex", "Remarks"]
    assert all(column["reason"] for column in as_json["columns"])


def test_a_suggestion_reads_only_the_first_rows(tmp_path: Path) -> None:
    def records() -> Iterator[SourceRecord]:
        yield SourceRecord(2, {"Patient No.": "SYN-1"})
        raise AssertionError("read past the sample")

    source = RecordSource("endless.csv", ["Patient No."], records())
    suggestion = suggest_template(source, in_patient_form(), name="x", sample_rows=1)
    assert suggestion.template.columns[0].data_element == PATIENT_NUMBER
