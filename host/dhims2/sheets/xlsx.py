"""Reading Excel workbooks (.xlsx, .xlsm) into source records, one row at a time.

openpyxl's read-only mode parses a sheet's XML as its rows are asked for, so a register of any
length is read in bounded memory. Cells keep their Excel types: a date cell arrives as a date and
a number as a number (mapping.py decides what a number means in a date column), so nothing is
guessed from how a cell happens to be displayed. Formulas give the value Excel last computed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhims2.forms.program import normalise
from dhims2.forms.records import RecordError, SourceRecord, is_blank
from dhims2.sheets.source import (
    InputError,
    RecordSource,
    column_letter,
    record_from_cells,
    take_header,
)

# Excel 97-2003 workbooks, and .xlsx files protected by a password, are OLE compound files.
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_SIGNATURE = b"PK\x03\x04"


@dataclass(frozen=True)
class _CellError:
    """A cell holding an Excel error such as #N/A or #REF!: a failed formula, not a value."""

    code: str


@contextmanager
def open_workbook(path: Path, *, sheet: str | None = None) -> Iterator[RecordSource]:
    """The records of one sheet: `sheet` by name (exact, else ignoring case and spacing), or
    the first visible sheet. Raises InputError naming the file and, once it is open, the sheet."""
    workbook = _load(path)
    try:
        worksheet = _choose_sheet(workbook, sheet, path.name)
        # Some programs write a wrong sheet size into the file: read every row there is.
        worksheet.reset_dimensions()
        where = f'{path.name}, sheet "{worksheet.title}"'
        header, rows = take_header(_numbered_rows(worksheet, where), where)
        records = (
            _record(number, header, cells)
            for number, cells in rows
            if not all(is_blank(cell) for cell in cells)
        )
        yield RecordSource(
            name=path.name,
            columns=header,
            records=records,
            sheet=worksheet.title,
            sheets=tuple(each.title for each in workbook.worksheets),
        )
    finally:
        workbook.close()


def _load(path: Path) -> Any:
    try:
        with path.open("rb") as stream:
            signature = stream.read(len(_OLE_SIGNATURE))
    except OSError as error:
        raise InputError(f"{path.name}: cannot be read ({error.strerror})") from error
    if signature == _OLE_SIGNATURE:
        raise InputError(
            f"{path.name}: is an Excel 97-2003 workbook or has a password; save it in Excel as "
            '"Excel Workbook (.xlsx)" without a password'
        )
    if not signature.startswith(_ZIP_SIGNATURE):
        raise InputError(
            f"{path.name}: is not an Excel workbook (.xlsx); if it is a CSV file, name it .csv"
        )
    import openpyxl

    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it skips (data validation, extensions): they do
            # not change a cell's value.
            warnings.simplefilter("ignore", UserWarning)
            return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:
        # A damaged file can fail anywhere inside openpyxl, zipfile or the XML parser.
        raise InputError(f"{path.name}: is damaged or not an Excel workbook ({error})") from error


def _choose_sheet(workbook: Any, name: str | None, file_name: str) -> Any:
    sheets = list(workbook.worksheets)
    if name is None:
        visible = [each for each in sheets if each.sheet_state == "visible"]
        if not visible:
            raise InputError(f"{file_name}: has no visible worksheet")
        return visible[0]
    exact = [each for each in sheets if each.title == name]
    loose = [each for each in sheets if normalise(each.title) == normalise(name)]
    if exact or loose:
        return (exact or loose)[0]
    names = ", ".join(f'"{each.title}"' for each in sheets)
    raise InputError(f'{file_name}: has no sheet "{name}"; its sheets are {names}')


def _numbered_rows(worksheet: Any, where: str) -> Iterator[tuple[int, list[object]]]:
    """Each row's number and cell values; openpyxl yields skipped rows as empty ones, so the
    count is the sheet's own row number."""
    rows = worksheet.iter_rows()
    number = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as error:
            # As in _load: damage further into the file shows only when it is reached.
            raise InputError(
                f"{where}: is damaged after row {number} and cannot be read on ({error})"
            ) from error
        number += 1
        yield (
            number,
            [_CellError(cell.value) if cell.data_type == "e" else cell.value for cell in cells],
        )


def _record(number: int, header: list[str], cells: list[object]) -> SourceRecord:
    errors: list[RecordError] = []
    values: list[object] = []
    for index, cell in enumerate(cells):
        if isinstance(cell, _CellError):
            column = header[index] if index < len(header) else None
            message = (
                f"Cell {column_letter(index)}{number} holds the Excel error {cell.code}; "
                "correct its formula or clear it."
            )
            errors.append(RecordError("CELL_ERROR", message, field=column, value=cell.code))
            values.append(None)
        else:
            values.append(cell)
    unnamed = [index for index in range(len(header), len(values)) if not is_blank(values[index])]
    if unnamed:
        message = (
            f"Row {number} has a value in column {column_letter(unnamed[0])}, which has no "
            "header; name the column in the header row or clear the cell."
        )
        errors.append(RecordError("MALFORMED_RECORD", message))
    return record_from_cells(number, header, values, errors)
