"""A first mapping template for a sheet nobody has mapped yet, from its headers and its values.

Each column goes to the data element whose names share most words with its header ("No." reads
as "number"; "Educational" finds "Education"), weighted by how many of the column's first values
that field would take. The values choose the transforms too: "20 Year(s)" asks for the age
transform, "Other tetanus(A35)" for the diagnosis one, and a value that begins exactly one
option's name ("M", "Paediatric") gets a value map entry. A column that matches nothing is
ignored, and says so: the person saving the template reviews every choice and its reason.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dhims2.forms.mapping import Mapper, OptionIndex
from dhims2.forms.metadata import REPORT_DATE_DATA_ELEMENT
from dhims2.forms.program import DataElement, ProgramForm, normalise
from dhims2.forms.records import EVENT_PROPERTY_NAMES, is_blank
from dhims2.sheets.preparation import EXPORT_COLUMNS
from dhims2.sheets.source import RecordSource
from dhims2.sheets.templates import COLUMN_PROPERTIES, ColumnRule, Template
from dhims2.sheets.transforms import AGE_UNITS, read_age, read_diagnosis

SAMPLE_ROWS = 200
# Distinct values looked at per column: enough to judge a column, few enough to stay quick.
_SAMPLE_VALUES = 50
# Below this a column is better ignored than mapped to a field it probably does not hold.
_MIN_SCORE = 0.25
_WORD_SPLIT = re.compile(r"[\W_]+")
_PARENTHESISED = re.compile(r"\s*\([^)]*\)")
_STOP_WORDS = frozenset({"a", "an", "and", "at", "for", "in", "of", "the", "to"})
_SYNONYMS = {"no": "number", "num": "number", "nr": "number", "sex": "gender", "dx": "diagnosis"}
_SHORTEST_STEM = 4
_NUMBER_TYPES = ("NUMBER", "INTEGER", "INTEGER_POSITIVE", "INTEGER_ZERO_OR_POSITIVE")
_ICD_CODE = re.compile(r"^[A-Z]\d{2}\b")


@dataclass(frozen=True)
class ColumnChoice:
    """What the suggestion does with one column, and why."""

    rule: ColumnRule
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"column": self.rule.column, **self.rule.to_json(), "reason": self.reason}


@dataclass(frozen=True)
class Suggestion:
    """A template to review before saving; `unfilled` lists the compulsory fields no column
    fills, which every row would then be rejected for."""

    template: Template
    choices: tuple[ColumnChoice, ...]
    unfilled: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "template": self.template.to_json(),
            "columns": [choice.to_json() for choice in self.choices],
            "unfilled": list(self.unfilled),
        }


@dataclass(frozen=True)
class _Plan:
    """How a column would fill one data element: the share of its values that fit, and the
    transform and value map that make them fit."""

    fit: float
    transform: str | None = None
    values: dict[str, str] = field(default_factory=dict)


_Candidate = tuple[float, bool, str, DataElement, _Plan]


def suggest_template(
    source: RecordSource, form: ProgramForm, *, name: str, sample_rows: int = SAMPLE_ROWS
) -> Suggestion:
    """A template mapping the columns of `source` to `form`, judged from the header and the
    first `sample_rows` records. `name` is sanitised to a valid template name."""
    columns = [column for column in source.columns if column not in EXPORT_COLUMNS]
    samples = _samples(source.records, columns, sample_rows)
    unit = _age_unit_element(form)
    properties = {
        column: EVENT_PROPERTY_NAMES[normalise(column)]
        for column in columns
        if normalise(column) in EVENT_PROPERTY_NAMES
    }
    others = [column for column in columns if column not in properties]
    chosen, filled = _choose(_candidates(form, unit, others, samples), unit)
    choices = [_choice_for(column, chosen, properties) for column in columns]
    template = Template(
        name=_template_name(name),
        columns=tuple(choice.rule for choice in choices if choice.rule.property != "occurredAt"),
        description=f"Suggested from the columns of {source.name}; check each column before use.",
        program=form.program_uid,
        occurred_at=_occurred_at_column(form, properties, chosen),
    )
    unfilled = tuple(
        element.label
        for element in form.data_elements
        if element.compulsory and element.uid not in filled
    )
    return Suggestion(template, tuple(choices), unfilled)


def _candidates(
    form: ProgramForm,
    unit: DataElement | None,
    columns: list[str],
    samples: dict[str, list[object]],
) -> list[_Candidate]:
    """Every (column, data element) pair whose names are alike enough, best first."""
    mapper = Mapper(form)
    options = {element.uid: OptionIndex(element) for element in form.data_elements}
    candidates = []
    for column in columns:
        for element in form.data_elements:
            exact = mapper.target(column) == element.uid
            name_score = 1.0 if exact else _name_score(column, element)
            if name_score < _MIN_SCORE:
                continue
            plan = _plan(mapper, element, unit, options[element.uid], samples[column])
            score = name_score * (0.5 + 0.5 * plan.fit)
            candidates.append((score, exact, column, element, plan))
    candidates.sort(key=lambda candidate: candidate[0], reverse=True)
    return candidates


def _choose(
    candidates: list[_Candidate], unit: DataElement | None
) -> tuple[dict[str, ColumnChoice], set[str]]:
    """Each column's best remaining pair, so no two columns fill the same data element;
    returns the choices by column and the data elements they fill."""
    chosen: dict[str, ColumnChoice] = {}
    filled: set[str] = set()
    for score, exact, column, element, plan in candidates:
        unit_uid = unit.uid if plan.transform == "age" and unit else None
        fills = {element.uid} | ({unit_uid} if unit_uid else set())
        if score < _MIN_SCORE or column in chosen or fills & filled:
            continue
        filled |= fills
        rule = ColumnRule(
            column=column,
            data_element=element.uid,
            label=element.label,
            transform=plan.transform,
            unit_data_element=unit_uid,
            values=plan.values,
        )
        chosen[column] = ColumnChoice(rule, _reason(exact, element, plan))
    return chosen, filled


def _samples(
    records: Iterable[Any], columns: list[str], sample_rows: int
) -> dict[str, list[object]]:
    samples: dict[str, dict[str, object]] = {column: {} for column in columns}
    for record in itertools.islice(records, sample_rows):
        for column in columns:
            value = record.fields.get(column)
            seen = samples[column]
            if not is_blank(value) and len(seen) < _SAMPLE_VALUES:
                seen.setdefault(repr(value), value)
    return {column: list(values.values()) for column, values in samples.items()}


def _age_unit_element(form: ProgramForm) -> DataElement | None:
    """The field holding an age's unit: the one whose options are years, months and days."""
    for element in form.data_elements:
        index = OptionIndex(element)
        if element.options and all(index.match(unit) for unit in AGE_UNITS):
            return element
    return None


def _words(text: str) -> set[str]:
    words = (word for word in _WORD_SPLIT.split(text.casefold()) if word)
    return {_SYNONYMS.get(word, word) for word in words if word not in _STOP_WORDS}


def _same_word(one: str, other: str) -> bool:
    shorter, longer = sorted((one, other), key=len)
    return shorter == longer or (len(shorter) >= _SHORTEST_STEM and longer.startswith(shorter))


def _name_score(header: str, element: DataElement) -> float:
    """How alike a header and the element's names are: shared words over all words (Dice)."""
    header_words = _words(header)
    names = (element.label, _PARENTHESISED.sub("", element.label), element.name, element.code)
    best = 0.0
    for label_words in (_words(name) for name in names if name):
        if not header_words or not label_words:
            continue
        shared = sum(any(_same_word(word, other) for other in label_words) for word in header_words)
        best = max(best, 2 * min(shared, len(label_words)) / (len(header_words) + len(label_words)))
    return best


def _plan(
    mapper: Mapper,
    element: DataElement,
    unit: DataElement | None,
    options: OptionIndex,
    values: list[object],
) -> _Plan:
    # Transforms that read everything the plain field takes, and more, are always worth having.
    if element.value_type in ("BOOLEAN", "TRUE_ONLY"):
        implied: str | None = "yes_no"
    elif element.options and all(_ICD_CODE.match(option.code) for option in element.options):
        implied = "diagnosis"
    else:
        implied = None
    if not values:
        return _Plan(1.0, implied)
    count = len(values)
    plain = [value for value in values if mapper.accepts(element.uid, value)]
    texts = [value.strip() if isinstance(value, str) else str(value) for value in values]
    if element.value_type in _NUMBER_TYPES and unit is not None:
        ages = sum(read_age(text) is not None for text in texts)
        if ages > len(plain):
            return _Plan(ages / count, "age")
    if element.options:
        diagnoses = sum(read_diagnosis(options, text).code is not None for text in texts)
        if diagnoses > len(plain) or implied == "diagnosis":
            return _Plan(diagnoses / count, "diagnosis")
        value_map = _prefix_values(element, [v for v in values if v not in plain])
        return _Plan((len(plain) + len(value_map)) / count, None, value_map)
    return _Plan(len(plain) / count, implied)


def _prefix_values(element: DataElement, values: list[object]) -> dict[str, str]:
    """Written value -> option name, for values that begin exactly one option's name."""
    value_map = {}
    for value in values:
        if not isinstance(value, str):
            continue
        written = normalise(value)
        names = [
            option.name for option in element.options if normalise(option.name).startswith(written)
        ]
        if written and len(names) == 1:
            value_map[value.strip()] = names[0]
    return value_map


def _reason(exact: bool, element: DataElement, plan: _Plan) -> str:
    how = "the field's own name" if exact else f'a name like "{element.label}"'
    reason = f"{how}; {round(plan.fit * 100)}% of the values looked at fit"
    if plan.transform == "age":
        reason += "; the age transform splits the number from its unit"
    elif plan.transform == "yes_no":
        reason += "; the yes_no transform reads Yes, No, Y and N"
    elif plan.transform == "diagnosis":
        reason += "; the diagnosis transform reads codes like A35 and Description(A35)"
    if plan.values:
        reason += "; the value map reads " + ", ".join(
            f'"{written}" as "{meant}"' for written, meant in plan.values.items()
        )
    return reason


def _choice_for(
    column: str, chosen: dict[str, ColumnChoice], properties: dict[str, str]
) -> ColumnChoice:
    if column in chosen:
        return chosen[column]
    prop = properties.get(column)
    if prop == "occurredAt":
        return ColumnChoice(ColumnRule(column, property=prop), "the report date (occurredAt)")
    if prop in COLUMN_PROPERTIES:
        return ColumnChoice(ColumnRule(column, property=prop), f"the event's {prop}")
    reason = "no field of the form matches: ignored, so its values are not uploaded"
    return ColumnChoice(ColumnRule(column, ignore=True), reason)


def _occurred_at_column(
    form: ProgramForm, properties: dict[str, str], chosen: dict[str, ColumnChoice]
) -> str | None:
    """The report date's column: one named as such, else the one holding the field DHIMS2 dates
    the program's events by (the date of admission)."""
    named = [column for column, prop in properties.items() if prop == "occurredAt"]
    if named:
        return named[0]
    dated_by = REPORT_DATE_DATA_ELEMENT.get(form.program_uid)
    return next(
        (column for column, choice in chosen.items() if choice.rule.data_element == dated_by),
        None,
    )


def _template_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    return cleaned[:64] or "sheet"
