"""Query parameters the DHIS2 way: enums case-insensitive, a bad value is a 400 naming it."""

from __future__ import annotations

from collections.abc import Sequence

from dhims2.sandbox.webmessage import BadRequest

Query = dict[str, list[str]]


def first(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def enum_param(query: Query, name: str, allowed: Sequence[str], default: str) -> str:
    raw = first(query, name)
    if raw is None or raw == "":
        return default
    value = raw.strip().upper()
    if value not in allowed:
        raise BadRequest(
            f"Value `{raw}` is not valid for parameter `{name}`. "
            f"Valid values are: [{', '.join(allowed)}]"
        )
    return value


def bool_param(query: Query, name: str, default: bool) -> bool:
    raw = first(query, name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise BadRequest(f"Value `{raw}` is not valid for parameter `{name}`: use true or false")
    return value == "true"


def positive_int_param(query: Query, name: str, default: int) -> int:
    raw = first(query, name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise BadRequest(
            f"Value `{raw}` is not valid for parameter `{name}`: use a whole number >= 1"
        )
    return int(text)
