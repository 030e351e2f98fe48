"""Reading input files into source records, before any mapping to DHIS2.

CSV (and other delimited text), Excel workbooks (xlsx.py) and JSON. A file that cannot be read at
all raises InputError; a record that is only partly readable (a ragged CSV row, a JSON entry of
the wrong shape) still comes out, carrying its problems as RecordErrors, so one bad row never
hides the others. Spreadsheets are streamed: `open_records` reads the header row at once and the
records only as they are consumed, so a sheet of any length is read in bounded memory.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dhims2.forms.program import normalise
from dhims2.forms.records import (
    EVENT_PROPERTY_NAMES,
    RecordError,
    SourceRecord,
    add_field,
)
from dhims2.sheets.source import (
    HEADER_SEARCH_ROWS,
    InputError,
    RecordSource,
    record_from_cells,
    take_header,
)

DELIMITED_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
_ENCODING_PROBE_BYTES = 1 << 16
# Excel's "Unicode Text" export is UTF-16 with a byte order mark.
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UNREADABLE_FORMATS = {
    ".xls": "an Excel 97-2003 workbook",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "a Numbers spreadsheet",
}


@contextmanager
def open_records(path: Path, *, sheet: str | None = None) -> Iterator[RecordSource]:
    """The records of a delimited text (.csv, .tsv, .txt), workbook (.xlsx, .xlsm) or .json
    file; the extension decides, in any case. `sheet` chooses a workbook's sheet by name (the
    first visible one by default).

    Raises InputError, naming the file, for a file that cannot be read as records: at once for
    the header, or while iterating for a fault further down.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind in WORKBOOK_SUFFIXES:
        # Imported here: openpyxl is slow to import and the native host greets without it.
        from dhims2.sheets.xlsx import open_workbook

        with open_workbook(path, sheet=sheet) as source:
            yield source
        return
    if sheet is not None:
        raise InputError(f'{path.name} is not a workbook, so it has no sheet "{sheet}"')
    if kind in DELIMITED_TEXT_SUFFIXES:
        encoding = _text_encoding(path)
        try:
            with path.open(encoding=encoding, newline="") as stream:
                columns, records = delimited_source(stream, path.name)
                yield RecordSource(path.name, columns, records)
        except OSError as error:
            raise InputError(f"{path.name}: cannot be read ({error.strerror})") from error
    elif kind == ".json":
        listed = list(read_json(_load_json(path), source_name=path.name))
        columns = list(dict.fromkeys(name for record in listed for name in record.fields))
        yield RecordSource(path.name, columns, iter(listed))
    else:
        what = _UNREADABLE_FORMATS.get(
            kind, f"a {kind} file" if kind else "a file without an extension"
        )
        raise InputError(
            f"{path.name}: cannot read {what}; save the sheet as an Excel workbook (.xlsx) or CSV, "
            "or give a .json file"
        )


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


def _text_encoding(path: Path) -> str:
    """UTF-16 when the file starts with its byte order mark; UTF-8 (with or without BOM) when
    every byte decodes as UTF-8; else Windows-1252, which is what Excel on Windows writes for
    "CSV (Comma delimited)"."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as stream:
            if stream.read(2) in _UTF16_BOMS:
                return "utf-16"
            stream.seek(0)
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


def delimited_source(
    stream: Iterable[str], source_name: str
) -> tuple[list[str], Iterator[SourceRecord]]:
    """The header and the records of delimited text, having read no further than the header."""
    lines = _text_lines(stream, source_name)
    # The lines read to find the delimiter go back in front of the others.
    looked_at: list[str] = []
    delimiter = ","
    for line in lines:
        looked_at.append(line.lstrip("\ufeff") if not looked_at else line)
        best = _sniff_delimiter(looked_at[-1])
        if _cell_count(looked_at[-1], best) >= 2 or len(looked_at) == HEADER_SEARCH_ROWS:
            delimiter = best
            break
    if not looked_at:
        raise InputError(
            f"{source_name}, line 1: the file is empty; the first row must name the columns"
        )
    reader = csv.reader(itertools.chain(looked_at, lines), delimiter=delimiter)
    header, rows = take_header(_numbered_rows(reader, source_name), source_name)
    delimiter_name = _DELIMITERS[delimiter]
    records = (
        _csv_record(number, header, cells, delimiter_name)
        for number, cells in rows
        if any(str(cell).strip() for cell in cells)
    )
    return header, records


def _numbered_rows(reader: Any, source_name: str) -> Iterator[tuple[int, list[object]]]:
    """CSV rows with their spreadsheet row numbers (a quoted cell over two lines is one row)."""
    for row_number in itertools.count(start=1):
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(
                f"{source_name}, line {reader.line_num}: cannot be read as CSV ({error})"
            ) from error
        yield row_number, cells


def _sniff_delimiter(line: str) -> str:
    # max() keeps the first of equals, so a one-column line reads as comma-separated.
    return max(_DELIMITERS, key=lambda delimiter: _cell_count(line, delimiter))


def _cell_count(line: str, delimiter: str) -> int:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return 0
    return sum(bool(cell.strip()) for cell in cells)


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
                "if it is an Excel workbook, give it its .xlsx name"
            )
        yield line


def _csv_record(
    row: int, header: list[str], cells: Sequence[object], delimiter_name: str
) -> SourceRecord:
    errors: list[RecordError] = []
    extra_cells = cells[len(header) :]
    if len(cells) < len(header) or any(str(cell).strip() for cell in extra_cells):
        errors.append(
            RecordError(
                "MALFORMED_RECORD",
                f"Row {row} has {len(cells)} cells but the header has {len(header)} columns; "
                f"look for a missing or extra {delimiter_name} in this row.",
            )
        )
    return record_from_cells(row, header, cells, errors)


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
        add_field(fields, errors, str(name), value)
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


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")
