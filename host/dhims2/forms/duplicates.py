"""A row repeating an earlier row's admission in one file: the reason it is not uploaded."""

from __future__ import annotations

from typing import Any

from dhims2.forms.records import RecordError

DUPLICATE_RECORD = "DUPLICATE_RECORD"


def duplicate_error(
    event: dict[str, Any], fields: dict[str, str], first_row: int, identity: tuple[str, ...]
) -> RecordError:
    """The error of a record that repeats row `first_row`; `identity` are the data elements
    that make two records the same admission (none: the same values throughout)."""
    if event.get("event"):
        same = "event ID"
    elif identity:
        same = " and ".join(fields.get(uid, uid) for uid in identity)
    else:
        same = "values"
    message = f"Same {same} as row {first_row}: only row {first_row} is uploaded."
    return RecordError(DUPLICATE_RECORD, message)
