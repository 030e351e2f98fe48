"""A file of records on its way in: its columns checked, every row prepared, repeated admissions
flagged; and the rows that cannot go, written back out as CSV with their reasons.

`dhims2 upload` and the native host's spreadsheet upload both come through here, so a clerk gets
the same verdict on a row wherever the file is given. Rows stream through one at a time: only the
keys of the admissions already seen are kept, so a sheet of any length fits in bounded memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Protocol

from dhims2.forms.duplicates import duplicate_error
from dhims2.forms.mapping import PreparedRecord
from dhims2.forms.metadata import IDENTITY_DATA_ELEMENTS
from dhims2.forms.program import ProgramForm
from dhims2.forms.records import RecordError, SourceRecord
from dhims2.sheets.reading import open_records
from dhims2.sheets.source import InputError, RecordSource

# The columns an export of invalid rows adds; a corrected export can be uploaded as it is, so
# they are left out of every file read.
ROW_COLUMN = "Source row"
REASON_COLUMN = "Reason not uploaded"
EXPORT_COLUMNS = (ROW_COLUMN, REASON_COLUMN)


class RecordPreparer(Protocol):
    """What turns source records into DHIS2 events: a Mapper, or a BoundTemplate around one."""

    @property
    def form(self) -> ProgramForm: ...

    def check_columns(self, headers: Iterable[str]) -> list[RecordError]: ...

    def prepare(self, source: SourceRecord) -> PreparedRecord: ...


class ColumnError(InputError):
    """The header row cannot be used; `errors` names each column at fault and why."""

    def __init__(self, source_name: str, errors: list[RecordError]):
        super().__init__(
            f"{source_name}: " + "; ".join(f"{error.field}: {error.message}" for error in errors)
        )
        self.errors = errors


def prepared_records(
    source: RecordSource, preparer: RecordPreparer, *, flag_duplicates: bool = True
) -> Iterator[PreparedRecord]:
    """Each record of `source` prepared, in order, as it is read.

    The header is checked first: raises ColumnError, before any record is read, for columns
    that are no field of the form (or of the template) or that fill one field twice. A record
    repeating an earlier valid record's admission (the program's identity data elements, e.g.
    patient number and date of admission, at the same org unit) carries DUPLICATE_RECORD, told
    from the keys of every admission seen. Without `flag_duplicates` none are kept: the caller
    finds repeats another way (`UploadService.queue_and_send`, through the store's index).
    """
    columns = [column for column in source.columns if column not in EXPORT_COLUMNS]
    errors = preparer.check_columns(columns)
    if errors:
        raise ColumnError(source.name, errors)
    prepared = (preparer.prepare(_without_export_columns(record)) for record in source.records)
    if not flag_duplicates:
        return prepared
    return _flag_duplicates(prepared, IDENTITY_DATA_ELEMENTS.get(preparer.form.program_uid, ()))


def write_invalid_rows(
    path: Path, reasons: Mapping[int, str], out_path: Path, *, sheet: str | None = None
) -> int:
    """Writes the rows of the file at `path` that `reasons` names (row -> why it was not
    uploaded) to a CSV file: the source row, the file's own columns as read, and the reason.
    Returns how many rows were written.

    The file is read again rather than kept from the first reading, so memory stays bounded.
    The CSV is UTF-8 with a byte order mark, without which Excel misreads every accent.
    """
    written = 0
    with (
        open_records(path, sheet=sheet) as source,
        Path(out_path).open("w", encoding="utf-8-sig", newline="") as stream,
    ):
        columns = [column for column in source.columns if column not in EXPORT_COLUMNS]
        writer = csv.writer(stream)
        writer.writerow([ROW_COLUMN, *columns, REASON_COLUMN])
        for record in source.records:
            reason = reasons.get(record.row)
            if reason is not None:
                cells = [_cell_text(record.fields.get(column)) for column in columns]
                writer.writerow([record.row, *cells, reason])
                written += 1
    return written


def reason_text(errors: Iterable[RecordError | Mapping[str, Any]]) -> str:
    """One line saying why a record was not uploaded, from its local or DHIS2 errors."""
    messages = [
        error.message if isinstance(error, RecordError) else str(error.get("message", ""))
        for error in errors
    ]
    return " ".join(message for message in messages if message)


def _without_export_columns(record: SourceRecord) -> SourceRecord:
    if not any(column in record.fields for column in EXPORT_COLUMNS):
        return record
    fields = {key: value for key, value in record.fields.items() if key not in EXPORT_COLUMNS}
    return replace(record, fields=fields)


def _flag_duplicates(
    records: Iterable[PreparedRecord], identity_elements: tuple[str, ...]
) -> Iterator[PreparedRecord]:
    first_row_of: dict[tuple[object, ...], int] = {}
    for record in records:
        key = _admission_key(record.event, identity_elements) if record.ok else None
        if key is not None:
            first_row = first_row_of.setdefault(key, record.row)
            if first_row != record.row:
                record.errors.append(
                    duplicate_error(record.event, record.fields, first_row, identity_elements)
                )
        yield record


def _admission_key(event: dict[str, Any], identity_elements: tuple[str, ...]) -> tuple | None:
    """What makes two records the same event: its UID when given, else the identity values at
    the same org unit; None when the program has no identity or a value is missing."""
    if event.get("event"):
        return ("event", event["event"])
    if not identity_elements:
        return None
    values = {item["dataElement"]: item["value"] for item in event.get("dataValues", [])}
    if any(not values.get(uid) for uid in identity_elements):
        return None
    return (event.get("orgUnit"), *(values[uid] for uid in identity_elements))


def _cell_text(value: object) -> str:
    """A cell as a clerk would type it back: dates day first, yes/no as Yes/No."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return f"{value:%d-%m-%Y}" if value.time() == time() else f"{value:%d-%m-%Y %H:%M}"
    if isinstance(value, date):
        return f"{value:%d-%m-%Y}"
    return str(value)
