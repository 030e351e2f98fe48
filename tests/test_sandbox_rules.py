"""The sandbox's building blocks that need no server: value types and the `fields` parameter."""

from __future__ import annotations

import pytest

from dhims2.sandbox.fields import parse_fields, select_fields
from dhims2.sandbox.validation import value_type_problem
from dhims2.sandbox.version import ServerVersion
from dhims2.sandbox.webmessage import BadRequest

VALUE_TYPES = [
    ("TEXT", ["anything", "", "x" * 50_000], []),
    ("LONG_TEXT", ["line one\nline two"], ["x" * 50_001]),
    ("NUMBER", ["0", "-1", "12.50", "1000000"], ["12,5", "1e3", "abc", "+1", "1."]),
    ("INTEGER", ["0", "-7", "2147483647"], ["1.0", "2147483648", "07", "-0"]),
    ("INTEGER_POSITIVE", ["1", "42"], ["0", "-1", "1.5"]),
    ("INTEGER_ZERO_OR_POSITIVE", ["0", "42"], ["-1", "4.2", "four"]),
    ("INTEGER_NEGATIVE", ["-1"], ["0", "1"]),
    ("PERCENTAGE", ["0", "55.5", "100"], ["101", "-1", "half"]),
    ("BOOLEAN", ["true", "false", "TRUE"], ["yes", "1", "Yes"]),
    ("TRUE_ONLY", ["true", "True"], ["false", "yes"]),
    ("DATE", ["2025-03-01", "2024-02-29"], ["2025-02-29", "01-03-2025", "2025-3-1", "45834"]),
    (
        "DATETIME",
        ["2025-03-01T10:15", "2025-03-01T10:15:30.123Z"],
        ["2025-03-01", "2025-03-01T25:00"],
    ),
    ("AGE", ["1990-06-15"], ["34", "34 years"]),
    ("PHONE_NUMBER", ["+233 24 123 4567", "(024)1234567"], ["call me", "12"]),
    ("EMAIL", ["clerk@example.org"], ["clerk", "clerk@localhost", "a b@c.d"]),
]


@pytest.mark.parametrize(("value_type", "valid", "invalid"), VALUE_TYPES)
def test_every_listed_value_type_is_enforced(value_type, valid, invalid):
    assert [value for value in valid if value_type_problem(value_type, value)] == []
    assert [value for value in invalid if value_type_problem(value_type, value) is None] == []


def test_value_type_problems_use_dhis2_keys():
    assert (
        value_type_problem("INTEGER_ZERO_OR_POSITIVE", "-1") == "value_not_zero_or_positive_integer"
    )
    assert value_type_problem("DATE", "2025-13-01") == "value_not_valid_date"
    assert value_type_problem("TEXT", "x" * 50_001) == "value_length_greater_than_max_length"
    assert value_type_problem("NUMBER", "   ") is None  # blank fits every type, as in DHIS2


PROGRAM = {
    "id": "P1",
    "name": "Programme",
    "organisationUnits": [{"id": "O1", "name": "Unit"}],
    "programStages": [
        {
            "id": "S1",
            "programStageDataElements": [{"compulsory": True, "dataElement": {"id": "D1"}}],
        }
    ],
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("id", {"id": "P1"}),
        ("id,organisationUnits[id]", {"id": "P1", "organisationUnits": [{"id": "O1"}]}),
        ("organisationUnits(name)", {"organisationUnits": [{"name": "Unit"}]}),
        (
            "programStages[programStageDataElements[dataElement[id]]]",
            {"programStages": [{"programStageDataElements": [{"dataElement": {"id": "D1"}}]}]},
        ),
        ("*,!programStages,!organisationUnits", {"id": "P1", "name": "Programme"}),
        (
            ":all,!programStages",
            {key: value for key, value in PROGRAM.items() if key != "programStages"},
        ),
        ("id,unknown", {"id": "P1"}),
        ("name~rename(label)", {"name": "Programme"}),
    ],
)
def test_fields_keep_what_was_asked_for(fields, expected):
    assert select_fields(PROGRAM, parse_fields(fields)) == expected


@pytest.mark.parametrize("fields", ["id,stages[id", "id]", "a[b[c]", "a[" * 40 + "]" * 40])
def test_unbalanced_fields_are_refused(fields):
    with pytest.raises(BadRequest, match="fields"):
        parse_fields(fields)


@pytest.mark.parametrize(
    ("text", "expected"), [("2.41.3", "2.41.3"), ("2.40", "2.40.0"), (" 2.42.1 ", "2.42.1")]
)
def test_versions_parse_with_or_without_patch(text, expected):
    assert str(ServerVersion.parse(text)) == expected


@pytest.mark.parametrize("text", ["41", "3.41.0", "2.x", "2.41.3.1", ""])
def test_other_versions_are_refused(text):
    with pytest.raises(ValueError, match="version"):
        ServerVersion.parse(text)
