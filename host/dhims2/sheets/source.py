"""What every file reader shares: the open source, its header, and the file-level error.

A reader (reading.py for text and JSON, xlsx.py for workbooks) yields a RecordSource whose
columns are known before any record is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from dhims2.errors import Dhims2Error
from dhims2.forms.records import RecordError, SourceRecord, add_field, is_blank

# How far below the top a header row is looked for, past titles above the table.
HEADER_SEARCH_ROWS = 10


class InputError(Dhims2Error):
    """The file cannot be read as records: the message names the file, line and fault."""

    code = "INVALID_RECORDS"  # the protocol error code a reply carries for it


@dataclass
class RecordSource:
    """An open input: its columns, known before any record is read, and its records, read as
    they are consumed (once). `sheet` is the workbook sheet being read, `sheets` all of them."""

    name: str
    columns: list[str]
    records: Iterator[SourceRecord]
    sheet: str | None = None
    sheets: tuple[str, ...] = ()


def take_header(
    rows: Iterable[tuple[int, list[object]]], source_name: str
) -> tuple[list[str], Iterator[tuple[int, list[object]]]]:
    """The column names of a table and the numbered rows below them.

    The header is the first row naming at least two columns, so a title above the table (in
    one cell, often merged across it) is skipped; a one-column table, which has no such row in
    its first HEADER_SEARCH_ROWS rows, starts at its first non-blank row. A header cell without
    a name is named by its column letter. Raises InputError for a table without any row.
    """
    rows = iter(rows)
    seen: list[tuple[int, list[object]]] = []
    for number, cells in rows:
        filled = sum(not is_blank(cell) for cell in cells)
        if filled >= 2:
            return column_names(cells), rows
        if filled:
            seen.append((number, cells))
            if len(seen) == HEADER_SEARCH_ROWS:
                break
    if not seen:
        raise InputError(f"{source_name}: holds no rows; the first row must name the columns")
    (_number, header), *after = seen
    return column_names(header), itertools.chain(after, rows)


def record_from_cells(
    row: int, header: list[str], cells: Sequence[object], errors: Iterable[RecordError] = ()
) -> SourceRecord:
    """A record of one table row: each header names the cell below it; a second non-blank cell
    under a repeated header is an error, not an overwrite."""
    found = list(errors)
    fields: dict[str, object] = {}
    for name, cell in zip(header, cells, strict=False):
        add_field(fields, found, name, cell)
    return SourceRecord(row=row, fields=fields, errors=tuple(found))


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_names(cells: list[object]) -> list[str]:
    """Header cells as column names; blank cells after the last name are no columns."""
    while cells and is_blank(cells[-1]):
        cells = cells[:-1]
    return [
        f"(column {column_letter(index)})" if is_blank(cell) else str(cell).strip()
        for index, cell in enumerate(cells)
    ]
