"""Text that cannot be sent: values holding a lone UTF-16 surrogate (U+D800 to U+DFFF).

JSON files (`"\\ud800"`), Firefox and the Capture page can all hand over such a half of a
character. Python keeps it in a str, but it has no UTF-8 form, so the record could never be
serialised for DHIS2. It is refused here, at validation, with the field it is in, and never
queued.
"""

from __future__ import annotations

import re
from typing import Any

from dhims2.forms.records import RecordError

INVALID_TEXT = "INVALID_TEXT"
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_invalid_text(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def printable(value: str) -> str:
    """`value` with each lone surrogate shown as U+FFFD, so a message quoting it can be sent."""
    return _SURROGATE.sub("\ufffd", value)


def invalid_text_errors(event: dict[str, Any], fields: dict[str, str]) -> list[RecordError]:
    """One error per value of `event` (a DHIS2 event payload) that holds a lone surrogate."""
    errors = []
    for item in event.get("dataValues", []):
        value = item.get("value")
        if isinstance(value, str) and has_invalid_text(value):
            element = item.get("dataElement")
            errors.append(_error(value, element, fields.get(element, element)))
    for name, value in event.items():
        if isinstance(value, str) and has_invalid_text(value):
            errors.append(_error(value, None, fields.get(name, name)))
    return errors


def _error(value: str, data_element: str | None, field: str | None) -> RecordError:
    return RecordError(
        INVALID_TEXT,
        "the value holds a broken character (half of a UTF-16 pair) that cannot be sent;"
        " type the value again",
        data_element=data_element,
        field=printable(field) if field else field,
        value=printable(value),
    )
