"""The program form: derived from DHIS2 program metadata, matched by what clerks type."""

from __future__ import annotations

import copy
import json

import pytest

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID, bundled_metadata
from dhims2.forms.program import ProgramForm

SYNTHETIC_PROGRAM = "prSynthet01"
SYNTHETIC_STAGE = "stSynthet01"
SYNTHETIC_ORG_UNITS = ("ouSynthet01", "ouSynthet02")


def synthetic_element(
    uid: str,
    value_type: str = "TEXT",
    *,
    compulsory: bool = False,
    options: tuple[tuple[str, str], ...] = (),
    name: str | None = None,
    code: str | None = None,
    form_name: str | None = None,
) -> dict:
    """A programStageDataElement entry as DHIS2's metadata API returns it."""
    element: dict = {"id": uid, "name": name or f"Field {uid}", "valueType": value_type}
    if code:
        element["code"] = code
    if form_name:
        element["formName"] = form_name
    if options:
        element["optionSet"] = {
            "id": f"os{uid[2:]}",
            "options": [{"code": code, "name": name} for code, name in options],
        }
    return {"compulsory": compulsory, "dataElement": element}


def synthetic_program(*elements: dict, validation_strategy: str | None = None) -> dict:
    """Program metadata with one stage holding `elements`."""
    stage: dict = {
        "id": SYNTHETIC_STAGE,
        "name": "Visit",
        "programStageDataElements": list(elements),
    }
    if validation_strategy:
        stage["validationStrategy"] = validation_strategy
    return {
        "id": SYNTHETIC_PROGRAM,
        "name": "Synthetic program",
        "programType": "WITHOUT_REGISTRATION",
        "organisationUnits": [{"id": uid} for uid in SYNTHETIC_ORG_UNITS],
        "programStages": [stage],
    }


def bundled_program() -> dict:
    return copy.deepcopy(bundled_metadata()["programs"][0])


@pytest.fixture(scope="module")
def form() -> ProgramForm:
    return ProgramForm.from_metadata(bundled_program())


def test_the_bundled_in_patient_program_becomes_its_form(form: ProgramForm) -> None:
    assert (form.program_uid, form.stage_uid) == (PROGRAM_UID, STAGE_UID)
    assert form.program_name == "In-Patient Morbidity and Mortality"
    assert ORG_UNIT_UID in form.org_unit_ids
    assert len(form.data_elements) == 16
    assert form.validation_strategy == "ON_COMPLETE"
    education = form.data_element("Hi8Cp84CnZQ")
    assert education is not None
    assert education.option_set == "qINXizfcpoY"
    assert ("None", "None") in [(option.code, option.name) for option in education.options]
    cost = form.data_element("fRkwcThGCTM")
    assert cost is not None
    assert (cost.value_type, cost.compulsory, cost.options) == ("NUMBER", False, ())
    assert form.data_element("h0Ef6ykTpNB").compulsory
    assert form.data_element("notAnElemnt") is None


def test_the_label_is_the_form_name_and_falls_back_to_the_name() -> None:
    form = ProgramForm.from_metadata(
        synthetic_program(
            synthetic_element("deNamedOnly", name="Ward"),
            synthetic_element("deFormNamed", name="Ward name (long)", form_name="Ward name"),
        )
    )
    assert [element.label for element in form.data_elements] == ["Ward", "Ward name"]


@pytest.mark.parametrize(
    "header",
    [
        "fg8sMCaTOrK",
        "GENDER_(MORBIDITY/MORTALITY)",
        "Gender (morbidity/mortality)",
        "  gender   (MORBIDITY/mortality) ",
        "fg8smcatork",
    ],
)
def test_a_column_is_matched_by_uid_code_name_or_form_name_in_any_case(
    form: ProgramForm, header: str
) -> None:
    assert form.match_column(header).uid == "fg8sMCaTOrK"


def test_a_form_name_that_differs_from_the_name_matches_too() -> None:
    form = ProgramForm.from_metadata(
        synthetic_program(synthetic_element("deFormNamed", name="Ward of stay", form_name="Ward"))
    )
    assert form.match_column("ward").uid == "deFormNamed"
    assert form.match_column("Ward of stay").uid == "deFormNamed"


def test_a_uid_wins_over_another_elements_name() -> None:
    form = ProgramForm.from_metadata(
        synthetic_program(
            synthetic_element("deFirst0001", name="deSecond001"),
            synthetic_element("deSecond001", name="Second"),
        )
    )
    assert form.match_column("deSecond001").uid == "deSecond001"


def test_unknown_columns_match_nothing_and_get_suggestions(form: ProgramForm) -> None:
    assert form.match_column("Gendr") is None
    assert form.match_column("") is None
    assert form.suggest_labels("Gendr") == ["Gender (morbidity/mortality)"]
    assert form.suggest_labels("Admission date") == ["Date of admission (morbidity/mortality)"]
    assert form.suggest_labels("S/N") == []


def test_option_suggestions_find_misspellings_and_parts_of_names(form: ProgramForm) -> None:
    gender = form.data_element("fg8sMCaTOrK")
    assert gender.suggest_options("Malee")[0] == "Male"
    diagnosis = form.data_element("yPXPzceTIvq")
    assert "B54 - Unspecified malaria" in diagnosis.suggest_options("malaria")
    assert diagnosis.suggest_options("zzzzzz") == []


def test_a_stage_is_chosen_by_uid_when_the_program_has_several() -> None:
    program = synthetic_program(synthetic_element("deFirst0001"))
    second = {"id": "stSecond001", "name": "Follow-up", "programStageDataElements": []}
    program["programStages"].append(second)
    with pytest.raises(ValueError, match=r"has 2 stages \(stSynthet01, stSecond001\)"):
        ProgramForm.from_metadata(program)
    form = ProgramForm.from_metadata(program, "stSecond001")
    assert (form.stage_uid, form.stage_name, form.data_elements) == ("stSecond001", "Follow-up", ())
    with pytest.raises(ValueError, match="has no stage stMissing01"):
        ProgramForm.from_metadata(program, "stMissing01")


def test_the_validation_strategy_is_read_from_the_stage() -> None:
    program = synthetic_program(validation_strategy="ON_UPDATE_AND_INSERT")
    assert ProgramForm.from_metadata(program).validation_strategy == "ON_UPDATE_AND_INSERT"


def _without(path: tuple, program: dict) -> dict:
    """`program` with the key at `path` removed."""
    container = program
    for key in path[:-1]:
        container = container[key]
    del container[path[-1]]
    return program


_STAGE_ELEMENTS = ("programStages", 0, "programStageDataElements")
_ELEMENT = (*_STAGE_ELEMENTS, 0)
_AGE_UNIT_OPTIONS = (*_STAGE_ELEMENTS, 3, "dataElement", "optionSet", "options")


@pytest.mark.parametrize(
    ("break_metadata", "named_in_error"),
    [
        (lambda program: [program], "must be a JSON object, not list"),
        (lambda program: _without(("id",), program), "has no 'id'"),
        (lambda program: _without(("programStages",), program), "has no 'programStages' list"),
        (lambda program: _without(("organisationUnits",), program), "'organisationUnits'"),
        (lambda program: {**program, "programType": "WITH_REGISTRATION"}, "tracker program"),
        (lambda program: _without((*_ELEMENT, "dataElement"), program), "dataElement of"),
        (
            lambda program: _without((*_ELEMENT, "dataElement", "valueType"), program),
            "data element h0Ef6ykTpNB has no 'valueType'",
        ),
        (
            lambda program: _without(("programStages", 0, "id"), program),
            f"a stage of program {PROGRAM_UID} has no 'id'",
        ),
        (
            lambda program: _without((*_AGE_UNIT_OPTIONS, 0, "code"), program),
            "option 0 of data element WZ5rS7QuECT has no 'code'",
        ),
        (
            lambda program: {
                **program,
                "programStages": [
                    {**program["programStages"][0], "validationStrategy": "SOMETIMES"}
                ],
            },
            "unknown validationStrategy 'SOMETIMES'",
        ),
        (lambda program: {**program, "organisationUnits": ["duCDqCRlWG1"]}, "organisationUnits[0]"),
        (lambda program: {**program, "programStages": []}, "has 0 stages (none)"),
    ],
)
def test_broken_metadata_is_refused_naming_what_is_wrong(
    break_metadata, named_in_error: str
) -> None:
    with pytest.raises(ValueError) as raised:
        ProgramForm.from_metadata(break_metadata(bundled_program()))
    assert named_in_error in str(raised.value)


def test_to_json_describes_the_form_compactly_for_the_popup(form: ProgramForm) -> None:
    description = form.to_json()
    assert description["program"] == PROGRAM_UID
    assert description["programStage"] == STAGE_UID
    gender = next(e for e in description["dataElements"] if e["uid"] == "fg8sMCaTOrK")
    assert gender == {
        "uid": "fg8sMCaTOrK",
        "label": "Gender (morbidity/mortality)",
        "valueType": "TEXT",
        "compulsory": True,
        "options": [{"code": "Male", "name": "Male"}, {"code": "Female", "name": "Female"}],
    }
    assert json.loads(json.dumps(description)) == description
