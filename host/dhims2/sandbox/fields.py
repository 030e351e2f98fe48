"""DHIS2's `fields` parameter, e.g. `id,name,organisationUnits[id,path]`: keep what was asked for.

Supports nesting with [] or (), `*` and the `:all`/`:owner`-style presets (everything), and
`!name` exclusions. Unknown fields are simply absent, as in DHIS2.
"""

from __future__ import annotations

from typing import Any

from dhims2.sandbox.webmessage import BadRequest

FieldSpec = dict[str, "FieldSpec | None"]  # name -> nested selection (None: the whole value)
_OPEN = "[("
_CLOSE = "])"
_MAX_DEPTH = 16


def parse_fields(text: str) -> FieldSpec:
    compact = "".join(text.split())
    spec, position = _parse_level(compact, 0, 0)
    if position != len(compact):
        raise _invalid(text, "unbalanced brackets")
    return spec


def _invalid(text: str, reason: str) -> BadRequest:
    return BadRequest(f"Value `{text}` is not valid for parameter `fields`: {reason}")


def _parse_level(text: str, position: int, depth: int) -> tuple[FieldSpec, int]:
    if depth > _MAX_DEPTH:
        raise _invalid(text, f"nested deeper than {_MAX_DEPTH} levels")
    spec: FieldSpec = {}
    name = ""
    while position < len(text) and text[position] not in _CLOSE:
        character = text[position]
        if character == ",":
            _add(spec, name, None)
            name = ""
            position += 1
        elif character in _OPEN:
            nested, position = _parse_level(text, position + 1, depth + 1)
            if position >= len(text):
                raise _invalid(text, "unbalanced brackets")
            _add(spec, name, nested)
            name = ""
            position += 1
        else:
            name += character
            position += 1
    _add(spec, name, None)
    return spec, position


def _add(spec: FieldSpec, name: str, nested: FieldSpec | None) -> None:
    name = name.split("~", 1)[0]  # transformers such as ~rename(...) are not supported: ignored
    if name.startswith(":"):
        name = "*"
    if name:
        spec[name] = nested if nested is not None else spec.get(name)


def select_fields(value: Any, spec: FieldSpec | None) -> Any:
    if spec is None:
        return value
    if isinstance(value, list):
        return [select_fields(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    wanted = list(value) if "*" in spec else [name for name in spec if not name.startswith("!")]
    return {
        name: select_fields(value[name], spec.get(name))
        for name in wanted
        if name in value and f"!{name}" not in spec
    }
