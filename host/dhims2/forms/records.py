"""The record model: one record as read from a form or a sheet, and its faults.

Everything that turns input into DHIS2 events speaks in these terms; the readers (sheets/) make
them and the mapping (forms/mapping.py) consumes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Names a source may use for the event's own properties (normalised), and the property meant.
# "Report date" is what the Capture form calls occurredAt; eventDate is the legacy API's name.
EVENT_PROPERTY_NAMES: dict[str, str] = {
    "event": "event",
    "program": "program",
    "programstage": "programStage",
    "orgunit": "orgUnit",
    "occurredat": "occurredAt",
    "report date": "occurredAt",
    "eventdate": "occurredAt",
    "status": "status",
}


@dataclass(frozen=True)
class RecordError:
    """One fault in one record, worded for the clerk who has to fix it.

    `code` is DHIS2's error code for the same fault where DHIS2 has one; `field` is the column
    or label as the user sees it; `value` is the offending value as the user wrote it.
    """

    code: str
    message: str
    data_element: str | None = None
    field: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class SourceRecord:
    """One record as read. `row` is what the user sees: the spreadsheet's own row number (the
    header is row 1 unless titles stand above it) or the 1-based position in a JSON list.

    `columns` names, for a field whose key is not what the user wrote (a mapping template keys
    fields by data element), the column it came from, so errors speak the user's words.
    """

    row: int
    fields: dict[str, object]
    errors: tuple[RecordError, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)

    def column(self, key: str) -> str:
        """The column the user knows the field `key` by."""
        return self.columns.get(key, key)


def add_field(fields: dict[str, object], errors: list[RecordError], name: str, value: object):
    """Add a value; a second non-blank value under the same name is an error, not an overwrite."""
    if is_blank(fields.get(name)):
        fields[name] = value
    elif not is_blank(value):
        errors.append(
            RecordError(
                "DUPLICATE_VALUE",
                f'"{name}" is given twice in this record; keep only one of them.',
                field=name,
                value=str(value),
            )
        )


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
