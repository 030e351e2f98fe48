"""What template transforms read in a cell: an age with its unit, and a diagnosis written as
"Description(CODE)" or a bare ICD code, as DHIMS2 exports and clerks write them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from dhims2.forms.mapping import OptionIndex
from dhims2.forms.program import DataElement
from dhims2.forms.records import RecordError

AGE_UNITS = ("years", "months", "days")
# "20 Year(s)", "6 months", "3d", "2 wks": a number and a unit word, as DHIMS2 exports write it.
_AGE = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>y|yrs?|years?|m|mths?|mos?|months?|w|wks?|weeks?"
    r"|d|dys?|days?)(?:\s*\(s\))?\.?$",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_DAYS_IN_A_WEEK = 7
# An ICD-10 code: a letter, two digits, and an optional subdivision after a dot.
_ICD_CODE = r"[A-Za-z]\d{2}(?:\.[0-9A-Za-z]{0,4})?"
_BARE_ICD_CODE = re.compile(rf"^{_ICD_CODE}$")
_DESCRIBED_ICD_CODE = re.compile(rf"^(?P<description>.*?)\s*[(\[]\s*(?P<code>{_ICD_CODE})\s*[)\]]$")


@dataclass(frozen=True)
class DiagnosisReading:
    """What a diagnosis cell says: the option `code` it means (None when none, or when its code
    and its description disagree: `conflict` then holds both options)."""

    code: str | None
    written_code: str | None = None
    description: str | None = None
    conflict: tuple[str, str] | None = None


def read_diagnosis(options: OptionIndex, text: str) -> DiagnosisReading:
    """A diagnosis written as an option's code or name, "Description(CODE)", or a bare ICD code;
    a code padded with zeros (A35.00) finds A35."""
    direct = _single(options.match(text))
    if direct:
        return DiagnosisReading(direct)
    described = _DESCRIBED_ICD_CODE.match(text)
    written_code = described["code"] if described else text if _BARE_ICD_CODE.match(text) else None
    description = described["description"] if described else None
    by_code = _code_option(options, written_code) if written_code else None
    by_description = _single(options.match(description)) if description else None
    if by_code and by_description and by_code != by_description:
        return DiagnosisReading(None, written_code, description, (by_code, by_description))
    return DiagnosisReading(by_code or by_description, written_code, description)


def read_age(text: str, default_unit: str | None = None) -> tuple[str, str] | None:
    """(number, unit) of an age written with its unit, like "20 Year(s)", "6 months" or "3d";
    the unit is one of AGE_UNITS (weeks become days). A bare number takes `default_unit`."""
    text = text.strip()
    match = _AGE.match(text)
    if match is None:
        return (text, default_unit) if default_unit and _BARE_NUMBER.match(text) else None
    number, word = match["number"], match["unit"].casefold()
    if word.startswith("w"):
        days = Decimal(number) * _DAYS_IN_A_WEEK
        return (str(int(days)) if days == days.to_integral_value() else str(days)), "days"
    return number, next(unit for unit in AGE_UNITS if unit[0] == word[0])


def unknown_diagnosis_error(
    element: DataElement, text: str, column: str, reading: DiagnosisReading
) -> RecordError:
    """E1125 for a diagnosis that is no option, naming the options closest to its code (same
    ICD category first) or its description."""
    code, description = reading.written_code, reading.description
    suggestions: list[str] = []
    category = code.upper().split(".")[0] if code else None
    for option in element.options:
        if category and option.code.upper().startswith(category) and option.name not in suggestions:
            suggestions.append(option.name)
    for part in (code, description, text):
        for name in element.suggest_options(part) if part else []:
            if name not in suggestions:
                suggestions.append(name)
    reason = f"no option has the code {code}" if code else "it is no option"
    hint = (
        "did you mean " + " or ".join(f'"{name}"' for name in suggestions[:3]) + "?"
        if suggestions
        else "write the option's code or name as the form lists it."
    )
    message = f'"{text}" is not an option of {column}: {reason}; {hint}'
    return RecordError("E1125", message, element.uid, column, text)


def _single(codes: set[str] | None) -> str | None:
    return next(iter(codes)) if codes and len(codes) == 1 else None


def _code_option(index: OptionIndex, code: str) -> str | None:
    """The option of an ICD code, trying it with its padding zeros dropped one by one."""
    for candidate in _zero_stripped(code.upper()):
        found = _single(index.match(candidate))
        if found:
            return found
    return None


def _zero_stripped(code: str) -> Iterator[str]:
    yield code
    while "." in code and code[-1] in "0.":
        code = code[:-1]
        if code[-1] != ".":
            yield code
