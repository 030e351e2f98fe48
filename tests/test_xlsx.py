"""Excel workbooks in: sheets, title rows, real date cells, serial numbers, text dates, errors.

Every workbook is generated here with openpyxl, as Excel would save it; every value is made up.
"""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ADMISSION_DATE_UID, ORG_UNIT_UID
from dhims2.forms.synthetic import in_patient_form
from dhims2.sheets.reading import open_records
from dhims2.sheets.source import InputError
from source_records import read_records

DISCHARGE_UID = "sIPe9r0NBbq"
# Excel's own display formats for the cells a clerk types.
DATE_FORMAT = "DD/MM/YYYY"
DATETIME_FORMAT = "DD/MM/YYYY HH:MM"


def excel_cell(sheet: WriteOnlyWorksheet, value: object) -> object:
    """A value as Excel stores it: dates as date cells with a day-first display format."""
    if isinstance(value, (date, datetime)):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATETIME_FORMAT if isinstance(value, datetime) else DATE_FORMAT
        return cell
    return value


def write_workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A streamed (write-only) workbook with one sheet per entry, in order."""
    workbook = openpyxl.Workbook(write_only=True)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append([excel_cell(sheet, value) for value in row])
    workbook.save(path)
    return path


HEADER = ["Patient number", "Date of admission (morbidity/mortality)", "Age"]


def test_rows_keep_their_excel_types_and_their_sheet_row_numbers(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "ward.xlsx",
        {
            "Register": [
                ["VOLTA REGIONAL HOSPITAL: IN-PATIENT REGISTER"],
                [],
                HEADER,
                ["SYN-001", date(2025, 3, 14), 34],
                [None, None, None],
                ["SYN-002", 45834, 2.5],
                ["SYN-003", "14/03/2025", "20"],
            ]
        },
    )
    with open_records(path) as source:
        assert source.columns == HEADER
        assert (source.sheet, source.sheets) == ("Register", ("Register",))
        first, serial, text = source.records
    assert first.row == 4
    assert first.fields == {
        "Patient number": "SYN-001",
        HEADER[1]: datetime(2025, 3, 14),
        "Age": 34,
    }
    assert (serial.row, serial.fields[HEADER[1]], serial.fields["Age"]) == (6, 45834, 2.5)
    assert (text.row, text.fields[HEADER[1]]) == (7, "14/03/2025")
    assert first.errors == serial.errors == text.errors == ()


def test_a_title_merged_across_the_table_is_not_taken_for_the_header(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Register"
    sheet["A1"] = "IN-PATIENT MORBIDITY AND MORTALITY, MARCH 2025"
    sheet.merge_cells("A1:C2")
    for row, values in ((3, HEADER), (4, ["SYN-001", "14-03-2025", 34])):
        for column, value in enumerate(values, start=1):
            sheet.cell(row=row, column=column, value=value)
    workbook.save(tmp_path / "merged.xlsx")
    [record] = read_records(tmp_path / "merged.xlsx")
    assert record.row == 4
    assert list(record.fields) == HEADER


def test_the_first_visible_sheet_is_read_unless_one_is_named(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    hidden = workbook.active
    hidden.title = "Lists"
    hidden.sheet_state = "hidden"
    hidden.append(["Options", "Codes"])
    hidden.append(["Male", "M"])
    first = workbook.create_sheet("January")
    first.append(HEADER)
    first.append(["SYN-JAN", "02-01-2025", 30])
    second = workbook.create_sheet("February")
    second.append(HEADER)
    second.append(["SYN-FEB", "03-02-2025", 31])
    path = tmp_path / "months.xlsx"
    workbook.save(path)

    with open_records(path) as source:
        assert source.sheet == "January"
        assert source.sheets == ("Lists", "January", "February")
        assert [record.fields["Patient number"] for record in source.records] == ["SYN-JAN"]
    [february] = read_records(path, sheet="  february ")
    assert february.fields["Patient number"] == "SYN-FEB"
    with pytest.raises(InputError, match=r'months.xlsx: has no sheet "March"; its sheets are'):
        list(read_records(path, sheet="March"))


def test_excel_error_cells_are_record_errors_naming_the_cell(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "errors.xlsx", {"S": [HEADER, ["SYN-001", "#N/A", "#REF!"]]})
    [record] = read_records(path)
    assert [(error.code, error.field, error.value) for error in record.errors] == [
        ("CELL_ERROR", HEADER[1], "#N/A"),
        ("CELL_ERROR", "Age", "#REF!"),
    ]
    assert "Cell B2 holds the Excel error #N/A" in record.errors[0].message
    assert record.fields[HEADER[1]] is None


def test_a_value_in_a_column_without_a_header_is_an_error(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "extra.xlsx", {"S": [HEADER, ["SYN-001", "14-03-2025", 3, None, "note"]]}
    )
    [record] = read_records(path)
    assert [error.code for error in record.errors] == ["MALFORMED_RECORD"]
    assert "column E, which has no header" in record.errors[0].message


def test_an_empty_sheet_is_an_input_error_naming_file_and_sheet(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "empty.xlsx", {"Blank": [[], [None, None]]})
    with pytest.raises(InputError, match=r'empty.xlsx, sheet "Blank": holds no rows'):
        list(read_records(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "is an Excel 97-2003 workbook or has a"),
        (b"Patient number,Age\r\nSYN-1,2\r\n", "is not an Excel workbook"),
        (b"PK\x03\x04" + bytes(200), "is damaged or not an Excel workbook"),
        (b"", "is not an Excel workbook"),
    ],
)
def test_files_that_are_no_workbook_are_input_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"book.xlsx: {message}"):
        list(read_records(path))


def test_a_workbook_damaged_inside_is_an_input_error(tmp_path: Path) -> None:
    good = write_workbook(tmp_path / "good.xlsx", {"S": [HEADER, ["SYN-001", "14-03-2025", 3]]})
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename.endswith("sheet1.xml"):
                content = content[: len(content) // 2]
            target.writestr(item, content)
    with pytest.raises(InputError, match=r"damaged.xlsx"):
        list(read_records(damaged))


def test_a_missing_workbook_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"gone.xlsx: cannot be read"):
        list(read_records(tmp_path / "gone.xlsx"))


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))


@pytest.mark.parametrize(
    ("admitted", "sent"),
    [
        (date(2025, 3, 14), "2025-03-14"),
        (datetime(2025, 3, 14, 10, 45), "2025-03-14"),
        (45730, "2025-03-14"),
        (45730.75, "2025-03-14"),
        ("14/03/2025", "2025-03-14"),
        ("14-Mar-2025", "2025-03-14"),
        ("2025-03-14", "2025-03-14"),
    ],
)
def test_date_cells_serials_and_text_dates_all_become_the_same_iso_date(
    tmp_path: Path, mapper: Mapper, admitted: object, sent: str
) -> None:
    path = write_workbook(
        tmp_path / "dates.xlsx", {"S": [["Report date", HEADER[1]], [admitted, admitted]]}
    )
    [record] = read_records(path)
    prepared = mapper.prepare(record)
    values = {item["dataElement"]: item["value"] for item in prepared.event["dataValues"]}
    assert values[ADMISSION_DATE_UID] == sent
    assert prepared.event["occurredAt"].startswith(sent)


def test_a_report_date_cell_with_a_time_keeps_it(tmp_path: Path, mapper: Mapper) -> None:
    path = write_workbook(
        tmp_path / "time.xlsx", {"S": [["Report date"], [datetime(2025, 3, 14, 9, 30)]]}
    )
    [record] = read_records(path)
    assert mapper.prepare(record).event["occurredAt"] == "2025-03-14T09:30:00"


@pytest.mark.parametrize(
    ("written", "advice"),
    [
        (12, "is a number, not a date"),
        (time(9, 30), "write the date day first"),
        (True, "write the date day first"),
    ],
)
def test_cells_that_hold_no_date_are_errors_in_a_date_column(
    tmp_path: Path, mapper: Mapper, written: object, advice: str
) -> None:
    path = write_workbook(tmp_path / "bad.xlsx", {"S": [[HEADER[1], "x"], [written, "y"]]})
    [record] = read_records(path)
    [error] = [e for e in mapper.prepare(record).errors if e.data_element == ADMISSION_DATE_UID]
    assert error.code == "E1302"
    assert advice in error.message
    assert error.field == HEADER[1]
