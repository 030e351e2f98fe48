"""The `filter` parameter of GET /api/tracker/events: events whose data values match.

DHIS2 2.41 (webapi/controller/tracker/export/event/EventRequestParams.java, `filter`: "comma
separated list of data element filters") parses it with
webapi/controller/tracker/export/FilterParser.java: filters are split on commas not preceded by
`/`, each into `{dataElement}:{operator}:{value}` on colons not preceded by `/`, and `/,` and
`/:` in a value stand for `,` and `:`. The `in` operator's values are separated by `;`
(QueryFilter.OPTION_SEP in dhis-api). DHIS2 knows more operators (like, gt, ...); the sandbox
models only `eq` and `in`, which are what the uploader sends, and refuses the rest with a 400
rather than answering them wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dhims2.dhis2.uids import is_uid
from dhims2.sandbox.webmessage import BadRequest

_UNESCAPED_COMMA = re.compile(r"(?<!/),")
_UNESCAPED_COLON = re.compile(r"(?<!/):")

Predicate = Callable[[dict[str, Any]], bool]


def data_value_filter(raw: str | None) -> Predicate:
    """A test an event must pass for every filter in `raw` (no filter: every event passes)."""
    terms = filter_terms(raw)
    tests = [_test(data_element, wanted) for data_element, wanted in terms]
    return lambda event: all(test(event) for test in tests)


def filter_terms(raw: str | None) -> list[tuple[str, set[str]]]:
    """Each filter of `raw` as (data element, the values it accepts)."""
    return [_one_filter(item) for item in _UNESCAPED_COMMA.split(raw or "") if item]


def _one_filter(item: str) -> tuple[str, set[str]]:
    parts = _UNESCAPED_COLON.split(item)
    if len(parts) != 3 or not is_uid(parts[0]):
        raise BadRequest(f"Query item or filter is invalid: {item}")
    data_element, operator, raw_value = parts
    value = raw_value.replace("/,", ",").replace("/:", ":")
    if operator.lower() == "eq":
        wanted = {value}
    elif operator.lower() == "in":
        wanted = set(value.split(";"))
    else:
        raise BadRequest(f"'{operator}' is not an operator this sandbox models: {item}")
    return data_element, wanted


def _test(data_element: str, wanted: set[str]) -> Predicate:
    def test(event: dict[str, Any]) -> bool:
        values = {v.get("dataElement"): v.get("value") for v in event.get("dataValues", [])}
        return values.get(data_element) in wanted

    return test
