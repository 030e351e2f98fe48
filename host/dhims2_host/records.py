"""Reading CSV and JSON input into source records, before any mapping to DHIS2.

A file that cannot be read at all raises InputError; a record that is only partly readable (a
ragged CSV row, a JSON entry of the wrong shape) still comes out, carrying its problems as
RecordErrors, so one bad row never hides the others.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dhims2_host.program import normalise

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
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_ENCODING_PROBE_BYTES = 1 << 16


class InputError(Exception):
    """The file cannot be read as records: the message names the file, line and fault."""

    code = "INVALID_RECORDS"  # the protocol error code a reply carries for it


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
    """One record as read. `row` is what the user sees: the spreadsheet row (the header is row
    1) or the 1-based position in a JSON list."""

    row: int
    fields: dict[str, object]
    errors: tuple[RecordError, ...] = ()


def read_records(path: Path) -> Iterator[SourceRecord]:
    """Records of a .csv or .json file (the extension decides, in any case).

    A CSV file is read as UTF-8 (with or without BOM) when it all decodes as UTF-8, else as
    Windows-1252. Raises InputError, naming the file, for a file that cannot be read as records.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind == ".csv":
        encoding = _csv_encoding(path)
        try:
            with path.open(encoding=encoding, newline="") as stream:
                yield from read_csv(stream, source_name=path.name)
        except OSError as error:
            raise InputError(f"{path.name}: cannot be read ({error.strerror})") from error
    elif kind == ".json":
        yield from read_json(_load_json(path), source_name=path.name)
    else:
        raise InputError(
            f"{path.name}: cannot read {kind or 'files without an extension'}; "
            "save the sheet as CSV or give a .json file"
        )


def read_csv(stream: TextIO, *, source_name: str) -> Iterator[SourceRecord]:
    """Records of a CSV text stream whose first row names the columns.

    The delimiter (comma, semicolon or tab) is whichever splits the header into most columns.
    Entirely blank rows are skipped; their row numbers still count. Raises InputError, naming
    the line, for a stream that is not CSV text.
    """
    lines = _text_lines(stream, source_name)
    first_line = next(lines, "").lstrip("\ufeff")
    if not first_line.strip():
        raise InputError(
            f"{source_name}, line 1: "
            + ("the file is empty" if not first_line else "the first row is empty")
            + "; the first row must name the columns"
        )
    delimiter = _sniff_delimiter(first_line)
    reader = csv.reader(itertools.chain([first_line], lines), delimiter=delimiter)
    header: list[str] | None = None
    for row_number in itertools.count(start=1):
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(
                f"{source_name}, line {reader.line_num}: cannot be read as CSV ({error})"
            ) from error
        if header is None:
            header = [
                cell.strip() or f"(column {_column_letter(i)})" for i, cell in enumerate(cells)
            ]
        elif any(cell.strip() for cell in cells):
            yield _csv_record(row_number, header, cells, _DELIMITERS[delimiter])


def read_json(data: object, *, source_name: str) -> Iterator[SourceRecord]:
    """Records of parsed JSON: a list of events or an object with an "events" list.

    Of each event, the event properties DHIS2 knows are kept (others are ignored, as DHIS2 does)
    and `dataValues` (a list of {dataElement, value} or an object {dataElement: value}) become
    fields named by their data element reference (UID, code or name).
    """
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        events = data["events"]
    elif isinstance(data, list):
        events = data
    else:
        found = "an object without an events list" if isinstance(data, dict) else _kind(data)
        raise InputError(
            f'{source_name}: expected a list of events or {{"events": [...]}}, found {found}'
        )
    for index, event in enumerate(events, start=1):
        yield _json_record(index, event)


def _csv_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when every byte decodes as UTF-8, else Windows-1252, which is
    what Excel on Windows writes for "CSV (Comma delimited)"."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_ENCODING_PROBE_BYTES):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    except OSError as error:
        raise InputError(f"{path.name}: cannot be read ({error.strerror})") from error
    return "utf-8-sig"


def _load_json(path: Path) -> object:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path.name}: cannot be read ({error.strerror})") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path.name}, line {line}: not UTF-8 text, so not JSON") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path.name}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"
        ) from error
    except (ValueError, RecursionError) as error:
        raise InputError(f"{path.name}: not usable JSON ({error})") from error


def _sniff_delimiter(header_line: str) -> str:
    def column_count(delimiter: str) -> int:
        return len(next(csv.reader([header_line], delimiter=delimiter), []))

    # max() keeps the first of equals, so a one-column header reads as comma-separated.
    return max(_DELIMITERS, key=column_count)


def _text_lines(stream: Iterable[str], source_name: str) -> Iterator[str]:
    """The stream's lines, refusing what is not text with the line where it shows."""
    lines = iter(stream)
    for line_number in itertools.count(start=1):
        try:
            line = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            raise InputError(
                f"{source_name}, near line {line_number}: bytes that are neither UTF-8 nor "
                'Windows-1252 text; save the sheet as "CSV UTF-8"'
            ) from error
        if "\x00" in line:
            raise InputError(
                f"{source_name}, line {line_number}: holds binary data, not text; "
                "if it is an Excel workbook, save it as CSV first"
            )
        yield line


def _csv_record(row: int, header: list[str], cells: list[str], delimiter_name: str) -> SourceRecord:
    errors: list[RecordError] = []
    extra_cells = cells[len(header) :]
    if len(cells) < len(header) or any(cell.strip() for cell in extra_cells):
        errors.append(
            RecordError(
                "MALFORMED_RECORD",
                f"Row {row} has {len(cells)} cells but the header has {len(header)} columns; "
                f"look for a missing or extra {delimiter_name} in this row.",
            )
        )
    fields: dict[str, object] = {}
    for name, cell in zip(header, cells, strict=False):  # ragged rows are reported above
        _add_field(fields, errors, name, cell)
    return SourceRecord(row=row, fields=fields, errors=tuple(errors))


def _json_record(row: int, event: object) -> SourceRecord:
    if not isinstance(event, dict):
        error = RecordError(
            "MALFORMED_RECORD", f"Record {row} is {_kind(event)}, not an event object."
        )
        return SourceRecord(row=row, fields={}, errors=(error,))
    fields: dict[str, object] = {
        key: value for key, value in event.items() if normalise(key) in EVENT_PROPERTY_NAMES
    }
    errors: list[RecordError] = []
    data_values = event.get("dataValues")
    if isinstance(data_values, dict):
        entries: Iterable[tuple[object, object]] = data_values.items()
    elif isinstance(data_values, list):
        entries = _listed_data_values(row, data_values, errors)
    elif data_values is None:
        entries = ()
    else:
        entries = ()
        errors.append(
            RecordError(
                "MALFORMED_RECORD",
                f"Record {row}: dataValues is {_kind(data_values)}; "
                "it must be a list of {dataElement, value} or an object.",
            )
        )
    for name, value in entries:
        _add_field(fields, errors, str(name), value)
    return SourceRecord(row=row, fields=fields, errors=tuple(errors))


def _listed_data_values(
    row: int, data_values: list, errors: list[RecordError]
) -> Iterator[tuple[object, object]]:
    for position, entry in enumerate(data_values, start=1):
        element = entry.get("dataElement") if isinstance(entry, dict) else None
        if isinstance(element, str) and element.strip():
            yield element, entry.get("value")
        else:
            errors.append(
                RecordError(
                    "MALFORMED_RECORD",
                    f"Record {row}: data value {position} does not name its dataElement.",
                )
            )


def _add_field(fields: dict[str, object], errors: list[RecordError], name: str, value: object):
    """Add a cell; a second non-blank cell under the same name is an error, not an overwrite."""
    if _is_blank(fields.get(name)):
        fields[name] = value
    elif not _is_blank(value):
        errors.append(
            RecordError(
                "DUPLICATE_VALUE",
                f'"{name}" is given twice in this record; keep only one of them.',
                field=name,
                value=str(value),
            )
        )


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters
