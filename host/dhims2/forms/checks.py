"""A JSON Schema compiled into plain Python checks, once per program stage.

jsonschema walks the schema for every event it validates, and that walk was most of the time spent
mapping a sheet (18 of 28 s at 30,000 rows). Compiling the schema once turns each keyword into a
closure, so an event costs a few dict lookups and regex matches; the schema stays the one place
the rules are written.

Only the keywords the event schemas use are compiled, with jsonschema's meaning for each (a rule
about strings passes any other type, `properties` looks only at keys that are there); any other
keyword raises at compile time, so a rule added to a schema can never be skipped silently.
Violations come out in jsonschema's order, the schema's own key order, each with the instance
path, the keyword and the keyword's value, as jsonschema's errors carry them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]


@dataclass(frozen=True)
class Violation:
    """One failed rule: where in the instance, which keyword, and that keyword's value."""

    path: Path
    keyword: str
    expected: Any


Check = Callable[[object, Path, list[Violation]], None]
Format = Callable[[object], bool]

_TYPES: dict[str, type] = {"string": str, "object": dict}
# Annotations, and `then`, which is compiled along with its `if`.
_NOT_RULES = frozenset({"$schema", "title", "description", "then"})


def compile_schema(schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    """A check that appends the instance's violations of `schema` to a list.

    `formats` maps each `format` name to a function that says whether a value has it; it may
    also raise ValueError for no.
    """
    checks = [
        _compile_keyword(keyword, value, schema, formats)
        for keyword, value in schema.items()
        if keyword not in _NOT_RULES
    ]

    if len(checks) == 1:
        return checks[0]

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        for keyword_check in checks:
            keyword_check(instance, path, found)

    return check


def _passes(check: Check, instance: object) -> bool:
    found: list[Violation] = []
    check(instance, (), found)
    return not found


def _compile_keyword(
    keyword: str, value: Any, schema: Mapping[str, Any], formats: Mapping[str, Format]
) -> Check:
    compiler = _COMPILERS.get(keyword)
    if compiler is None:
        raise ValueError(f"the compiled checks do not know the keyword {keyword!r}")
    return compiler(value, schema, formats)


def _type(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    if not isinstance(value, str) or value not in _TYPES:
        raise ValueError(f"the compiled checks know the types {sorted(_TYPES)} only")
    expected = _TYPES[value]

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if not isinstance(instance, expected):
            found.append(Violation(path, "type", value))

    return check


def _enum(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    # A set lookup: a diagnosis option set has about 1,700 codes. Strings only, so that no
    # member can compare equal to a value of another type (jsonschema tells 1 from True).
    members = frozenset(_strings(value, "enum"))

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if not isinstance(instance, str) or instance not in members:
            found.append(Violation(path, "enum", value))

    return check


def _const(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    [expected] = _strings([value], "const")

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if instance != expected or not isinstance(instance, str):
            found.append(Violation(path, "const", value))

    return check


def _pattern(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    search = re.compile(value).search  # `search`, as JSON Schema reads a pattern

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, str) and search(instance) is None:
            found.append(Violation(path, "pattern", value))

    return check


def _format(value: Any, _schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    if value not in formats:
        raise ValueError(f"the compiled checks have no check for the format {value!r}")
    has_format = formats[value]

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        try:
            valid = has_format(instance)
        except ValueError:
            valid = False
        if not valid:
            found.append(Violation(path, "format", value))

    return check


def _max_length(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, str) and len(instance) > value:
            found.append(Violation(path, "maxLength", value))

    return check


def _max_properties(
    value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]
) -> Check:
    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, dict) and len(instance) > value:
            found.append(Violation(path, "maxProperties", value))

    return check


def _required(value: Any, _schema: Mapping[str, Any], _formats: Mapping[str, Format]) -> Check:
    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, dict):
            # One violation per missing name, as jsonschema reports them.
            found.extend(
                Violation(path, "required", value) for name in value if name not in instance
            )

    return check


def _properties(value: Any, _schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    checks = [(name, compile_schema(subschema, formats)) for name, subschema in value.items()]

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, dict):
            for name, property_check in checks:
                if name in instance:
                    property_check(instance[name], (*path, name), found)

    return check


def _additional_properties(
    value: Any, schema: Mapping[str, Any], _formats: Mapping[str, Format]
) -> Check:
    if value is not False or "patternProperties" in schema:
        raise ValueError("the compiled checks know only `additionalProperties: false`")
    known = frozenset(schema.get("properties", ()))

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if isinstance(instance, dict) and not known.issuperset(instance):
            found.append(Violation(path, "additionalProperties", value))

    return check


def _all_of(value: Any, _schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    checks = [compile_schema(subschema, formats) for subschema in value]

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        for subcheck in checks:
            subcheck(instance, path, found)

    return check


def _if(value: Any, schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    if "else" in schema:
        raise ValueError("the compiled checks do not know `else`")
    condition = compile_schema(value, formats)
    then = compile_schema(schema["then"], formats) if "then" in schema else None

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if then is not None and _passes(condition, instance):
            then(instance, path, found)

    return check


def _not(value: Any, _schema: Mapping[str, Any], formats: Mapping[str, Format]) -> Check:
    negated = compile_schema(value, formats)

    def check(instance: object, path: Path, found: list[Violation]) -> None:
        if _passes(negated, instance):
            found.append(Violation(path, "not", value))

    return check


def _strings(values: list[Any], keyword: str) -> list[str]:
    if not all(isinstance(value, str) for value in values):
        raise ValueError(f"the compiled checks know `{keyword}` of strings only")
    return values


_COMPILERS: dict[str, Callable[[Any, Mapping[str, Any], Mapping[str, Format]], Check]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "format": _format,
    "maxLength": _max_length,
    "maxProperties": _max_properties,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "allOf": _all_of,
    "if": _if,
    "not": _not,
}
