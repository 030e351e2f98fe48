"""Mapping templates: how the columns of a clerk's sheet become the fields of a DHIS2 event.

A template is a versioned JSON file (docs/TEMPLATES.md): column -> data element or event
property, value maps ("M" -> "Male"), transforms (an age and its unit in one cell, yes/no, a
diagnosis written "Description(CODE)" or as a bare ICD code), constants, and the column whose date
is the report date (occurredAt). `load_template` reads one and checks it against TEMPLATE_SCHEMA;
`Template.bind` checks it against a program's form and gives a BoundTemplate, which prepares
records as a Mapper does: it rewrites each source record keyed by data element, and its Mapper
then coerces and validates that like any other record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from dhims2.dhis2.uids import UID_PATTERN
from dhims2.forms.mapping import (
    PLACEHOLDERS,
    Mapper,
    OptionIndex,
    PreparedRecord,
    RecordDefaults,
    read_yes_no,
)
from dhims2.forms.program import DataElement, ProgramForm, normalise
from dhims2.forms.records import RecordError, SourceRecord, add_field, is_blank
from dhims2.forms.schema import PROPERTY_LABELS, STATUSES, value_type_error
from dhims2.sheets.source import InputError
from dhims2.sheets.transforms import AGE_UNITS, read_age, read_diagnosis, unknown_diagnosis_error

FORMAT_VERSION = 1
TRANSFORMS = ("age", "yes_no", "diagnosis")
COLUMN_PROPERTIES = ("orgUnit", "status", "event")
MAX_TEMPLATE_BYTES = 1 << 20
_SHIPPED_FOLDER = "data/templates"
_NUMERIC_TYPES = ("NUMBER", "INTEGER", "INTEGER_POSITIVE", "INTEGER_ZERO_OR_POSITIVE")
_WORDS = re.compile(r"[\W_]+")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

TEMPLATE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "DHIMS2 Uploader mapping template",
    "type": "object",
    "required": ["formatVersion", "name", "columns"],
    "additionalProperties": False,
    "properties": {
        "formatVersion": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "pattern": _NAME_PATTERN},
        "description": {"type": "string", "maxLength": 2000},
        "program": {"type": "string", "pattern": UID_PATTERN.pattern},
        "occurredAt": {"type": "string", "minLength": 1, "maxLength": 200},
        "columns": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"minLength": 1, "maxLength": 200},
            "additionalProperties": {"$ref": "#/$defs/column"},
        },
        "constants": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 50000},
        },
    },
    "$defs": {
        "column": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dataElement": {"type": "string", "minLength": 1},
                "property": {"enum": list(COLUMN_PROPERTIES)},
                "ignore": {"const": True},
                "label": {"type": "string"},
                "optional": {"type": "boolean"},
                "transform": {"enum": list(TRANSFORMS)},
                "unitDataElement": {"type": "string", "minLength": 1},
                "defaultUnit": {"enum": list(AGE_UNITS)},
                "values": {
                    "type": "object",
                    "propertyNames": {"minLength": 1},
                    "additionalProperties": {"type": "string", "minLength": 1},
                },
            },
        }
    },
}


class TemplateError(InputError):
    """A template that cannot be used: the message names the template, the place and the fault."""

    code = "INVALID_TEMPLATE"


@dataclass(frozen=True)
class ColumnRule:
    """What one sheet column holds. Exactly one of `data_element` (a UID, code or name),
    `property` or `ignore`; `label` is the field's name for people reading the file."""

    column: str
    data_element: str | None = None
    property: str | None = None
    ignore: bool = False
    label: str | None = None
    optional: bool = False
    transform: str | None = None
    unit_data_element: str | None = None
    default_unit: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = {
            "dataElement": self.data_element,
            "property": self.property,
            "ignore": self.ignore or None,
            "label": self.label,
            "optional": self.optional or None,
            "transform": self.transform,
            "unitDataElement": self.unit_data_element,
            "defaultUnit": self.default_unit,
            "values": dict(self.values) or None,
        }
        return {key: value for key, value in keys.items() if value is not None}


@dataclass(frozen=True)
class Template:
    """A mapping template as written, checked for shape but not yet against a form."""

    name: str
    columns: tuple[ColumnRule, ...]
    description: str = ""
    program: str | None = None
    occurred_at: str | None = None
    constants: Mapping[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, data: object, *, source_name: str) -> Template:
        """The template a parsed JSON document describes; raises TemplateError naming each
        fault's place in the document."""
        version = data.get("formatVersion") if isinstance(data, dict) else None
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise TemplateError(
                f"{source_name}: is a template of format {version}, newer than this program "
                f"reads ({FORMAT_VERSION}); update DHIMS2 Uploader"
            )
        _check_schema(data, source_name)
        assert isinstance(data, dict)
        columns = tuple(
            ColumnRule(
                column=column,
                data_element=rule.get("dataElement"),
                property=rule.get("property"),
                ignore=rule.get("ignore", False),
                label=rule.get("label"),
                optional=rule.get("optional", False),
                transform=rule.get("transform"),
                unit_data_element=rule.get("unitDataElement"),
                default_unit=rule.get("defaultUnit"),
                values=rule.get("values", {}),
            )
            for column, rule in data["columns"].items()
        )
        template = cls(
            name=data["name"],
            columns=columns,
            description=data.get("description", ""),
            program=data.get("program"),
            occurred_at=data.get("occurredAt"),
            constants=data.get("constants", {}),
            format_version=data["formatVersion"],
        )
        _check_rules(template, source_name)
        return template

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"formatVersion": self.format_version, "name": self.name}
        if self.description:
            document["description"] = self.description
        if self.program:
            document["program"] = self.program
        if self.occurred_at:
            document["occurredAt"] = self.occurred_at
        document["columns"] = {rule.column: rule.to_json() for rule in self.columns}
        if self.constants:
            document["constants"] = dict(self.constants)
        return document

    def bind(
        self,
        form: ProgramForm,
        defaults: RecordDefaults | None = None,
        capture_org_units: frozenset[str] | None = None,
    ) -> BoundTemplate:
        """The template made ready for one form; raises TemplateError for a data element, option
        or constant the form does not have. `defaults` and `capture_org_units` are the Mapper's."""
        return BoundTemplate(self, form, defaults, capture_org_units)


def header_key(column: str) -> str:
    """How a column is recognised: case, spacing and punctuation do not count, so "Patient No."
    in a template finds "PATIENT NO" in a sheet."""
    return " ".join(_WORDS.split(column.casefold())).strip()


def load_template(reference: str | Path) -> Template:
    """A template from a file path, or one shipped with the program by name (`shipped_templates`).

    Raises TemplateError for a template that cannot be read or does not fit TEMPLATE_SCHEMA.
    """
    path = Path(reference)
    if path.suffix.lower() == ".json" or path.is_file():
        return Template.from_json(_read_json(path), source_name=path.name)
    shipped = resources.files("dhims2").joinpath(f"{_SHIPPED_FOLDER}/{reference}.json")
    if not re.match(_NAME_PATTERN, str(reference)) or not shipped.is_file():
        names = ", ".join(shipped_templates()) or "none"
        raise TemplateError(
            f'no template "{reference}": give the path of a .json template or one of the '
            f"shipped templates ({names})"
        )
    data = _parse_json(shipped.read_bytes(), shipped.name)
    return Template.from_json(data, source_name=shipped.name)


def shipped_templates() -> list[str]:
    """The names of the templates that come with the program."""
    folder = resources.files("dhims2").joinpath(_SHIPPED_FOLDER)
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def save_template(template: Template, path: Path, *, overwrite: bool = False) -> None:
    """Writes the template as JSON; raises FileExistsError rather than replace a file unasked."""
    text = json.dumps(template.to_json(), indent=2, ensure_ascii=False) + "\n"
    with Path(path).open("w" if overwrite else "x", encoding="utf-8") as stream:
        stream.write(text)


class BoundTemplate:
    """A template checked against one form. It prepares records as a Mapper does (`check_columns`,
    `prepare`): each record is first rewritten keyed by data element UID or event property,
    remembering each field's column so errors still name it."""

    def __init__(
        self,
        template: Template,
        form: ProgramForm,
        defaults: RecordDefaults | None = None,
        capture_org_units: frozenset[str] | None = None,
    ):
        self.template = template
        self._form = form
        self._where = f"template {template.name}"
        if template.program and template.program != form.program_uid:
            raise TemplateError(
                f"{self._where}: is for program {template.program}, not for "
                f"{form.program_name} ({form.program_uid})"
            )
        self._rules = {header_key(rule.column): rule for rule in template.columns}
        self._occurred_at_key = header_key(template.occurred_at or "") or None
        defaults = defaults or RecordDefaults()
        occurred_at_rule = self._rules.get(self._occurred_at_key or "")
        if occurred_at_rule is not None and occurred_at_rule.data_element is not None:
            # The Mapper dates the record by that data element, so a bad date is reported once.
            element = self._element(occurred_at_rule.data_element, occurred_at_rule.column)
            defaults = replace(defaults, report_date_from=element.uid)
        self.mapper = Mapper(form, defaults, capture_org_units)
        self._elements: dict[str, DataElement] = {}
        self._units: dict[str, dict[str, str]] = {}
        self._options: dict[str, OptionIndex] = {}
        filled: dict[str, str] = {}
        if template.occurred_at:
            filled["occurredAt"] = template.occurred_at
        for rule in template.columns:
            for target in self._bind_rule(rule):
                if target in filled:
                    raise TemplateError(
                        f'{self._where}: columns "{filled[target]}" and "{rule.column}" both '
                        f"fill {self._label(target)}; keep one"
                    )
                filled[target] = rule.column
        self._constants = self._bind_constants(template.constants, filled)
        # Target -> the column (or constant) the template fills it from.
        self._filled = {**filled, **{target: "a constant" for target in self._constants}}

    @property
    def form(self) -> ProgramForm:
        return self._form

    def check_columns(self, columns: Iterable[str]) -> list[RecordError]:
        """Faults of a header row: the template's columns it lacks (those marked optional may be
        missing), and the faults the Mapper finds in the columns the template does not name."""
        columns = list(columns)
        present = {header_key(column) for column in columns}
        errors = []
        for rule in self.template.columns:
            if rule.ignore or rule.optional or header_key(rule.column) in present:
                continue
            what = self._label(self._primary_target(rule))
            message = (
                f'The sheet has no column "{rule.column}", which the {self._where} reads '
                f'{what} from; add the column, or mark it "optional" in the template.'
            )
            errors.append(RecordError("MISSING_COLUMN", message, field=rule.column))
        occurred_at = self.template.occurred_at
        if occurred_at and header_key(occurred_at) not in present:
            message = (
                f'The sheet has no column "{occurred_at}", which the {self._where} takes the '
                "report date from; add the column or change the template's occurredAt."
            )
            errors.append(RecordError("MISSING_COLUMN", message, field=occurred_at))
        others = [column for column in columns if not self._covers(column)]
        for error in self.mapper.check_columns(others):
            if error.code == "UNKNOWN_COLUMN":
                hint = f' Or add it to the {self._where}, as "ignore" to leave it out.'
                error = replace(error, message=error.message + hint)
            errors.append(error)
        for column in others:
            target = self.mapper.target(column)
            if target is not None and target in self._filled:
                message = (
                    f'Column "{column}" holds {self._label(target)}, which the {self._where} '
                    f"takes from {_source_of(self._filled[target])}; remove one of them."
                )
                uid = target if self._form.data_element(target) else None
                errors.append(RecordError("DUPLICATE_VALUE", message, uid, column))
        return errors

    def prepare(self, source: SourceRecord) -> PreparedRecord:
        """The DHIS2 event for one record, with every fault found; never raises on bad values."""
        record = self.apply(source)
        # A value a transform could not read is reported once, not again as a missing value.
        unread = {
            target
            for error in record.errors[len(source.errors) :]
            for target in self._fills_of(error.data_element)
        }
        return self.mapper.prepare(record, reported=unread)

    def apply(self, record: SourceRecord) -> SourceRecord:
        """The record keyed by data element UID or event property. Columns the template does
        not name pass through unchanged for the Mapper to match by the form's names; errors of
        the transforms are added to the record's own."""
        fields: dict[str, object] = {}
        columns: dict[str, str] = {}
        errors = list(record.errors)
        for column, raw in record.fields.items():
            key = header_key(column)
            rule = self._rules.get(key)
            if key == self._occurred_at_key and (rule is None or rule.data_element is None):
                add_field(fields, errors, "occurredAt", raw)
                columns["occurredAt"] = column
            elif rule is None:
                add_field(fields, errors, column, raw)
            if rule is not None:
                for target, value in self._convert(rule, raw, column, errors):
                    add_field(fields, errors, target, value)
                    columns[target] = column
        for target, value in self._constants.items():
            fields[target] = value
            columns[target] = f"{self._label(target)} (set by the {self._where})"
        return SourceRecord(record.row, fields, tuple(errors), columns)

    # -- binding -----------------------------------------------------------------------------

    def _bind_rule(self, rule: ColumnRule) -> list[str]:
        """The targets a column fills, after checking that its transform and values fit them."""
        if rule.ignore:
            return []
        if rule.property:
            self._check_values(rule, rule.property)
            return [rule.property]
        element = self._element(rule.data_element or "", rule.column)
        self._elements[rule.column] = element
        targets = [element.uid]
        if rule.transform == "age":
            if element.value_type not in _NUMERIC_TYPES:
                self._refuse(rule, f"the age transform needs a number field, not {element.label}")
            unit = self._element(rule.unit_data_element or "", rule.column)
            self._units[rule.column] = self._unit_codes(rule, unit)
            self._elements[f"{rule.column}\0unit"] = unit
            targets.append(unit.uid)
        elif rule.transform == "yes_no" and element.value_type not in ("BOOLEAN", "TRUE_ONLY"):
            self._refuse(rule, f"the yes_no transform needs a yes/no field, not {element.label}")
        elif rule.transform == "diagnosis":
            if not element.options:
                self._refuse(
                    rule, f"the diagnosis transform needs an option set; {element.label} has none"
                )
            self._options[element.uid] = OptionIndex(element)
        self._check_values(rule, element.uid)
        return targets

    def _element(self, reference: str, column: str) -> DataElement:
        element = self._form.data_element(reference) or self._form.match_column(reference)
        if element is None:
            suggestions = self._form.suggest_labels(reference)
            hint = (
                "; did you mean " + " or ".join(f'"{label}"' for label in suggestions) + "?"
                if suggestions
                else ""
            )
            raise TemplateError(
                f'{self._where}, column "{column}": "{reference}" is no data element of '
                f"{self._form.program_name}{hint}"
            )
        return element

    def _unit_codes(self, rule: ColumnRule, unit: DataElement) -> dict[str, str]:
        """Age unit -> the unit field's value for it: its option code, or the word itself."""
        if not unit.options:
            return {word: word for word in AGE_UNITS}
        index = OptionIndex(unit)
        codes = {}
        for word in AGE_UNITS:
            matches = index.match(word)
            if not matches or len(matches) > 1:
                self._refuse(rule, f'{unit.label} has no option "{word}"')
            codes[word] = next(iter(matches))
        return codes

    def _check_values(self, rule: ColumnRule, target: str) -> None:
        """Every value the map writes must be one the field takes."""
        for written, meant in rule.values.items():
            errors: list[RecordError] = []
            results = self._convert(replace(rule, values={}), meant, rule.column, errors)
            if errors or not all(self.mapper.accepts(uid, value) for uid, value in results):
                self._refuse(
                    rule,
                    f'values maps "{written}" to "{meant}", which is not a valid '
                    f"{self._label(target)}",
                )

    def _bind_constants(self, constants: Mapping[str, str], filled: Mapping[str, str]) -> dict:
        bound: dict[str, str] = {}
        for reference, value in constants.items():
            if reference in ("orgUnit", "status"):
                target = reference
            else:
                target = self._element(reference, f"constants {reference}").uid
            if target in filled:
                raise TemplateError(
                    f"{self._where}: {self._label(target)} is both a constant and read from "
                    f'column "{filled[target]}"; keep one'
                )
            if target == "orgUnit":
                fits = value in self._form.org_unit_ids
            elif target == "status":
                fits = value.upper() in STATUSES
            else:
                fits = self.mapper.accepts(target, value)
            if not fits:
                raise TemplateError(
                    f'{self._where}: constant {reference} is "{value}", which is not a valid '
                    f"{self._label(target)}"
                )
            bound[target] = value
        return bound

    def _fills_of(self, target: str | None) -> list[str]:
        """The targets filled from the same column as `target` (an age fills its unit too)."""
        column = self._filled.get(target or "")
        return [each for each, source in self._filled.items() if source == column] if column else []

    def _covers(self, column: str) -> bool:
        key = header_key(column)
        return key in self._rules or key == self._occurred_at_key

    def _refuse(self, rule: ColumnRule, reason: str) -> NoReturn:
        raise TemplateError(f'{self._where}, column "{rule.column}": {reason}')

    def _primary_target(self, rule: ColumnRule) -> str:
        return rule.property or self._elements[rule.column].uid

    def _label(self, target: str) -> str:
        element = self._form.data_element(target)
        return element.label if element else PROPERTY_LABELS.get(target, target)

    # -- converting --------------------------------------------------------------------------

    def _convert(
        self, rule: ColumnRule, raw: object, column: str, errors: list[RecordError]
    ) -> list[tuple[str, object]]:
        """The (target, value) pairs one cell gives; faults go to `errors`."""
        value = _mapped(rule.values, raw)
        if rule.ignore:
            return []
        if rule.property:
            return [(rule.property, value)]
        element = self._elements[rule.column]
        if rule.transform is None or _means_nothing(value):
            return [(element.uid, value)]
        text = value.strip() if isinstance(value, str) else str(value)
        if rule.transform == "age":
            return self._age(rule, element, text, column, errors)
        if rule.transform == "yes_no":
            answer = value if isinstance(value, bool) else read_yes_no(text)
            if answer is None:
                errors.append(value_type_error(element, text, column))
                return []
            return [(element.uid, "true" if answer else "false")]
        code = self._diagnosis(element, text, column, errors)
        return [(element.uid, code)] if code else []

    def _age(
        self,
        rule: ColumnRule,
        element: DataElement,
        text: str,
        column: str,
        errors: list[RecordError],
    ) -> list[tuple[str, object]]:
        age = read_age(text, rule.default_unit)
        if age is None:
            message = (
                f'"{text}" is not an age with its unit; write it like 20 Year(s), 6 Month(s) '
                "or 12 Day(s)."
            )
            errors.append(RecordError("E1302", message, element.uid, column, text))
            return []
        number, unit_word = age
        unit = self._elements[f"{rule.column}\0unit"]
        return [(element.uid, number), (unit.uid, self._units[rule.column][unit_word])]

    def _diagnosis(
        self, element: DataElement, text: str, column: str, errors: list[RecordError]
    ) -> str | None:
        reading = read_diagnosis(self._options[element.uid], text)
        if reading.conflict:
            by_code, by_description = reading.conflict
            message = (
                f'"{text}": the code {reading.written_code} is "{by_code}" but the description '
                f'is "{by_description}"; correct whichever is wrong.'
            )
            errors.append(RecordError("AMBIGUOUS_OPTION", message, element.uid, column, text))
        elif reading.code is None:
            errors.append(unknown_diagnosis_error(element, text, column, reading))
        return reading.code


def _source_of(filled_from: str) -> str:
    return filled_from if filled_from == "a constant" else f'column "{filled_from}"'


def _check_schema(data: object, source_name: str) -> None:
    from jsonschema import Draft202012Validator

    problems = sorted(
        Draft202012Validator(TEMPLATE_SCHEMA).iter_errors(data), key=lambda e: list(e.path)
    )
    if problems:
        described = "; ".join(
            f"{_place(problem.absolute_path)}{problem.message}" for problem in problems[:5]
        )
        raise TemplateError(f"{source_name}: not a valid template: {described}")


def _place(path: Iterable[object]) -> str:
    parts = [f'"{part}"' if isinstance(part, str) else str(part) for part in path]
    return "at " + " > ".join(parts) + ": " if parts else ""


def _check_rules(template: Template, source_name: str) -> None:
    """What the schema cannot say: one meaning per column, transform settings that belong
    together, and no column or written value twice."""
    seen: dict[str, str] = {}
    for rule in template.columns:
        where = f'{source_name}, column "{rule.column}"'
        meanings = [name for name in ("dataElement", "property", "ignore") if _has(rule, name)]
        if len(meanings) != 1:
            raise TemplateError(
                f"{where}: give exactly one of dataElement, property or ignore"
                + (f" (it has {' and '.join(meanings)})" if meanings else "")
            )
        if (
            rule.transform or rule.unit_data_element or rule.default_unit
        ) and not rule.data_element:
            raise TemplateError(f"{where}: a transform needs a dataElement")
        if rule.transform == "age" and not rule.unit_data_element:
            raise TemplateError(f"{where}: the age transform needs unitDataElement")
        if rule.transform != "age" and (rule.unit_data_element or rule.default_unit):
            raise TemplateError(
                f"{where}: unitDataElement and defaultUnit belong to the age transform"
            )
        key = header_key(rule.column)
        if key in seen:
            raise TemplateError(f'{where}: is the same column as "{seen[key]}"')
        seen[key] = rule.column
        mapped = [normalise(written) for written in rule.values]
        if len(set(mapped)) != len(mapped):
            raise TemplateError(f"{where}: values lists the same written value twice")


def _has(rule: ColumnRule, name: str) -> bool:
    return {"dataElement": rule.data_element, "property": rule.property, "ignore": rule.ignore}[
        name
    ] not in (None, False)


def _read_json(path: Path) -> object:
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as error:
        raise TemplateError(f"{path.name}: cannot be read ({error.strerror})") from error
    if len(content) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"{path.name}: is larger than a template can be (1 MiB)")
    return _parse_json(content, path.name)


def _parse_json(content: bytes, name: str) -> object:
    try:
        return json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise TemplateError(f"{name}: is not UTF-8 text, so not a JSON template") from error
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"{name}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"
        ) from error


def _mapped(values: Mapping[str, str], raw: object) -> object:
    """The value a value map writes for a cell; the cell itself when the map does not name it."""
    if not values or isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return raw
    wanted = normalise(str(raw))
    return next((meant for written, meant in values.items() if normalise(written) == wanted), raw)


def _means_nothing(value: object) -> bool:
    return is_blank(value) or (isinstance(value, str) and normalise(value) in PLACEHOLDERS)
