"""The events both event validators are held to: the published JSON Schema (jsonschema) and the
checks compiled from it (EventValidator). Every value type, option sets, compulsory values, every
event property, both validation strategies and every status, each valid and broken in turn.

Data elements appear at most once per event: the payload schema cannot express "no duplicates".
"""

from __future__ import annotations

from collections.abc import Iterator

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.program import ProgramForm
from dhims2.forms.schema import STATUSES
from test_program import (
    SYNTHETIC_ORG_UNITS,
    SYNTHETIC_PROGRAM,
    SYNTHETIC_STAGE,
    bundled_program,
    synthetic_element,
    synthetic_program,
)

# A valid, complete In-Patient event payload (synthetic values).
VALID_VALUES = {
    "h0Ef6ykTpNB": "SYN-0001",
    "nk15h7fzCLz": "Synthetic Street 1",
    "upqhIcii1iC": "34",
    "WZ5rS7QuECT": "years",
    "fg8sMCaTOrK": "Male",
    "qAWldjTeMIs": "Farmer",
    "Hi8Cp84CnZQ": "None",
    "HsMaBh3wKed": "2025-03-14",
    "sIPe9r0NBbq": "2025-03-18",
    "xpzJAQC4DGe": "Medical",
    "OMN7CVW4IaY": "Discharged",
    "yPXPzceTIvq": "B54 - Unspecified malaria",
    "dsVClbnOnm6": "false",
    "fRkwcThGCTM": "450",
    "ETSl9Q3SUOG": "true",
}

# As dhis2-core 2.41 checks them: MathUtils (NUMERIC_REGEXP without exponent, Java int range,
# isPercentage 0-100 with decimals) and DateUtils' date-time parsers (`T`, or a space only
# before HH:mm:ss and a zone). docs/dhis2-tracker-api.md, "Value types".
TYPE_CASES = {
    "TEXT": (["anything"], ["x" * 50_001]),
    "LONG_TEXT": (["x" * 60_000], []),
    "NUMBER": (
        ["0", "-0", "12.5", "-3"],
        ["1,200", "007", "1.", "abc", "+1", "", "1E5", "1E-5"],
    ),
    "INTEGER": (
        ["0", "-4", "20", "2147483647", "-2147483648"],
        ["20.0", "01", "-0", "x", "2147483648", "-2147483649"],
    ),
    "INTEGER_POSITIVE": (["1", "99", "2147483647"], ["0", "-1", "1.5", "3000000000"]),
    "INTEGER_ZERO_OR_POSITIVE": (["0", "34"], ["-1", "00"]),
    "INTEGER_NEGATIVE": (["-1"], ["0", "1"]),
    "PERCENTAGE": (["0", "55", "100", "50.5", "0.25"], ["101", "-1", "100.5", "1E1"]),
    "BOOLEAN": (["true", "false"], ["yes", "1", "True"]),
    "TRUE_ONLY": (["true"], ["false", "yes"]),
    "DATE": (["2024-02-29"], ["2025-02-29", "14-03-2025", "2025-3-4", "2025-03-14T00:00"]),
    "AGE": (["1990-01-31"], ["1990-02-31"]),
    "DATETIME": (
        [
            "2025-03-14T09:30",
            "2025-03-14T09",
            "2025-03-14 09:30:15+00:00",
            "2025-03-14T09:30:15.123Z",
        ],
        ["2025-03-14", "2025-03-14T09:60", "2025-03-14 09:30", "2025-03-14T09:30:15.5"],
    ),
    "EMAIL": (["clerk@example.org"], ["clerk", "a@b"]),
    "PHONE_NUMBER": (["+233 20 000 0000"], ["12345", "call me"]),
}


def typed_uid(value_type: str) -> str:
    """A UID per value type: "INTEGER_POSITIVE" -> "deIntegerPx"."""
    return f"de{value_type[:9].title().replace('_', '')}".ljust(11, "x")


# Value types without a rule of their own are any string; option sets come in every shape.
OPTION_CASES: dict[str, tuple[str, tuple[tuple[str, str], ...], list[str], list[str]]] = {
    "deOptText01": ("TEXT", (("W1", "Ward one"), ("W2", "Ward two")), ["W1"], ["Ward one", "w1"]),
    "deOptNum001": ("NUMBER", (("1", "One"), ("abc", "Letters")), ["1"], ["abc", "2", "One"]),
    "deOptBool01": ("BOOLEAN", (("true", "Yes"), ("false", "No")), ["false"], ["yes", "1"]),
    "deOptTick01": ("TRUE_ONLY", (("true", "Yes"), ("x", "Ex")), ["true"], ["x", "false"]),
    "deOptDate01": ("DATE", (("2025-03-14", "Ides"),), ["2025-03-14"], ["2025-03-15"]),
    "deMultiTxt1": (
        "MULTI_TEXT",
        (("FEVER", "Fever"), ("COUGH", "Cough")),
        ["FEVER", "FEVER,COUGH"],
        ["FEVER,", "fever", "FEVER,RASH", ","],
    ),
}
PLAIN_CASES: dict[str, tuple[list[str], list[str]]] = {
    **TYPE_CASES,
    "LONG_TEXT": (["a long story", "x" * 60_000, ""], []),
    "MULTI_TEXT": (["a,b"], []),
    "ORGANISATION_UNIT": (["ouSynthet01"], []),
    "NUMBER": (TYPE_CASES["NUMBER"][0], [*TYPE_CASES["NUMBER"][1], "12\n3", "١٢"]),
}
# Values of the wrong JSON type; null is "no value".
WRONG_TYPES: list[object] = [34, 1.5, True, ["a"], {"a": 1}]
UNKNOWN_UID = "deUnknown01"


def synthetic_form(validation_strategy: str | None) -> ProgramForm:
    """One element per value type and per option-set shape; every third one compulsory."""
    elements = [
        synthetic_element(typed_uid(value_type), value_type, compulsory=index % 3 == 0)
        for index, value_type in enumerate(PLAIN_CASES)
    ]
    elements += [
        synthetic_element(uid, value_type, options=options, compulsory=uid.endswith("1"))
        for uid, (value_type, options, _good, _bad) in OPTION_CASES.items()
    ]
    program = synthetic_program(*elements, validation_strategy=validation_strategy)
    return ProgramForm.from_metadata(program)


def bundled_form(validation_strategy: str | None = None) -> ProgramForm:
    program = bundled_program()
    if validation_strategy:
        program["programStages"][0]["validationStrategy"] = validation_strategy
    return ProgramForm.from_metadata(program)


def forms() -> dict[str, ProgramForm]:
    return {
        f"{name} {strategy or 'ON_COMPLETE'}": make(strategy)
        for name, make in (("bundled", bundled_form), ("synthetic", synthetic_form))
        for strategy in (None, "ON_UPDATE_AND_INSERT")
    }


def valid_values(form: ProgramForm) -> dict[str, object]:
    if form.program_uid == PROGRAM_UID:
        return dict(VALID_VALUES)
    values: dict[str, object] = {typed_uid(t): good[0] for t, (good, _) in PLAIN_CASES.items()}
    values |= {uid: case[2][0] for uid, case in OPTION_CASES.items()}
    return values


def value_variations(form: ProgramForm) -> Iterator[tuple[str, object]]:
    """(data element uid, value) pairs: good and bad values of every element, wrong types."""
    if form.program_uid == PROGRAM_UID:
        for uid, value in VALID_VALUES.items():
            for other in (value, "", "zzz", "2025-02-30", "-1", "1.5", "true", "Malee"):
                yield uid, other
    else:
        for value_type, (good, bad) in PLAIN_CASES.items():
            for value in (*good, *bad):
                yield typed_uid(value_type), value
        for uid, (_type, _options, good, bad) in OPTION_CASES.items():
            for value in (*good, *bad):
                yield uid, value
    for element in form.data_elements:
        for wrong in WRONG_TYPES:
            yield element.uid, wrong


def base_event(form: ProgramForm, values: dict[str, object] | None = None, **properties) -> dict:
    """A valid COMPLETED event of `form` with `properties` changed (None removes one)."""
    bundled = form.program_uid == PROGRAM_UID
    event: dict = {
        "event": "evSynthet01",
        "program": form.program_uid,
        "programStage": form.stage_uid,
        "orgUnit": ORG_UNIT_UID if bundled else SYNTHETIC_ORG_UNITS[0],
        "occurredAt": "2025-03-14",
        "status": "COMPLETED",
    }
    event.update(properties)
    event = {key: value for key, value in event.items() if value is not None}
    chosen = valid_values(form) if values is None else values
    event["dataValues"] = [{"dataElement": uid, "value": value} for uid, value in chosen.items()]
    return event


PROPERTY_VARIATIONS: dict[str, list[object]] = {
    "event": ["evSynthet02", "not-a-uid", "1abcdefghij", 12, None],
    "program": ["prOther0001", SYNTHETIC_PROGRAM, 5, None],
    "programStage": ["stOther0001", SYNTHETIC_STAGE, STAGE_UID, None],
    "orgUnit": ["ouNotInProg", SYNTHETIC_ORG_UNITS[1], ORG_UNIT_UID, 7, None],
    "occurredAt": [
        *("2025-03-14T09:30:00", "2025-03-14T09:30:00.000Z", "2025-03-14 09:30:15+00:00"),
        *("2025-02-30", "14-03-2025", "2025-03-14T24:00:00", "2025-03-14 09:30", ""),
        *(20250314, None),
    ],
    "status": [*STATUSES, "completed", 1, None],
}


def events(form: ProgramForm) -> Iterator[dict]:
    """Every case for one form."""
    valid = valid_values(form)
    yield base_event(form)
    yield base_event(form, {})
    for uid, value in value_variations(form):
        yield base_event(form, valid | {uid: value})
    for element in form.data_elements:  # each value missing, and sent as null
        yield base_event(form, {k: v for k, v in valid.items() if k != element.uid})
        yield base_event(form, valid | {element.uid: None})
    yield base_event(form, valid | {UNKNOWN_UID: "x"})
    yield base_event(form, valid | {UNKNOWN_UID: None})
    for name, choices in PROPERTY_VARIATIONS.items():
        for choice in choices:
            yield base_event(form, **{name: choice})
            for status in (*STATUSES, None):  # every status, with and without values
                if name != "status":
                    yield base_event(form, {}, **{name: choice, "status": status})
    for status in (*STATUSES, None):
        yield base_event(form, valid | {UNKNOWN_UID: "x"}, status=status)
        yield base_event(form, {next(iter(valid)): "zzz"}, status=status, occurredAt=None)
    # Several faults at once.
    broken = {uid: "zzz" for uid in valid} | {UNKNOWN_UID: "x"}
    yield base_event(form, broken, orgUnit="ouNotInProg", occurredAt="2025-02-30", event="bad")
    yield base_event(form, broken, program=None, programStage=None, orgUnit=None, status=None)


def malformed_events(form: ProgramForm) -> Iterator[object]:
    """Events that are not the shape of an event at all."""
    event = base_event(form)
    yield "an event"
    yield event | {"dataValues": {"Age": "20"}}
    yield event | {"dataValues": [*event["dataValues"], {"value": "1"}]}
    yield event | {"dataValues": [*event["dataValues"], 42]}
    yield event | {"dataValues": [*event["dataValues"], {"dataElement": 3, "value": "1"}]}
