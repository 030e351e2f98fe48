"""Reading CSV and JSON files into source records: every shape a clerk's file can take."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhims2.forms.records import SourceRecord
from dhims2.sheets.reading import delimited_source, open_records, read_json
from dhims2.sheets.source import InputError
from source_records import read_records

HEADER = ["Patient number", "Age", "Gender (morbidity/mortality)"]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    return "".join(delimiter.join(row) + "\r\n" for row in rows)


def codes(record: SourceRecord) -> list[str]:
    return [error.code for error in record.errors]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_sniffed_from_the_header(tmp_path: Path, delimiter: str) -> None:
    text = csv_text([HEADER, ["SYN-001", "20", "Male"], ["SYN-002", "1,5", "Female"]], delimiter)
    if delimiter == ",":
        text = text.replace("1,5", '"1,5"')
    records = list(read_records(write(tmp_path, "sheet.csv", text)))
    assert [record.row for record in records] == [2, 3]
    assert records[0].fields == {"Patient number": "SYN-001", "Age": "20", HEADER[2]: "Male"}
    assert records[1].fields["Age"] == "1,5"
    assert records[0].errors == ()


def test_csv_with_a_utf8_bom_loses_the_bom_from_the_first_header(tmp_path: Path) -> None:
    content = "\ufeff".encode() + csv_text([HEADER, ["SYN-001", "20", "Male"]]).encode()
    [record] = read_records(write(tmp_path, "bom.csv", content))
    assert list(record.fields) == HEADER


def test_csv_in_windows_1252_is_decoded(tmp_path: Path) -> None:
    content = csv_text([["Patient number", "Address"], ["SYN-001", "Rue Synthétique № 5"]])
    path = write(tmp_path, "excel.csv", content.replace(" № 5", "").encode("cp1252"))
    [record] = read_records(path)
    assert record.fields["Address"] == "Rue Synthétique"


def test_csv_in_utf8_keeps_every_character(tmp_path: Path) -> None:
    content = csv_text([["Patient number", "Address"], ["SYN-001", "Rue Synthétique № 5"]])
    [record] = read_records(write(tmp_path, "utf8.csv", content))
    assert record.fields["Address"] == "Rue Synthétique № 5"


def test_a_short_row_is_a_record_error_not_a_crash(tmp_path: Path) -> None:
    text = csv_text([HEADER, ["SYN-001", "20"], ["SYN-002", "30", "Female"]])
    short, whole = read_records(write(tmp_path, "ragged.csv", text))
    assert codes(short) == ["MALFORMED_RECORD"]
    assert "Row 2 has 2 cells but the header has 3 columns" in short.errors[0].message
    assert "comma" in short.errors[0].message
    assert short.fields == {"Patient number": "SYN-001", "Age": "20"}
    assert whole.errors == ()


def test_a_long_row_is_an_error_unless_the_extra_cells_are_blank(tmp_path: Path) -> None:
    text = csv_text([HEADER, ["SYN-001", "20", "Male", "", " "], ["SYN-002", "30", "Male", "x"]])
    trailing_blanks, extra_value = read_records(write(tmp_path, "long.csv", text))
    assert trailing_blanks.errors == ()
    assert codes(extra_value) == ["MALFORMED_RECORD"]


def test_blank_rows_are_skipped_but_still_counted(tmp_path: Path) -> None:
    text = csv_text([HEADER, ["SYN-001", "20", "Male"], ["", "", ""], ["SYN-003", "5", "Female"]])
    assert [record.row for record in read_records(write(tmp_path, "gaps.csv", text))] == [2, 4]


def test_a_quoted_cell_over_two_lines_is_one_row(tmp_path: Path) -> None:
    text = 'Patient number,Address\r\nSYN-001,"Line one\r\nLine two"\r\nSYN-002,Ho\r\n'
    first, second = read_records(write(tmp_path, "multiline.csv", text))
    assert first.fields["Address"] == "Line one\r\nLine two"
    assert second.row == 3


def test_a_header_row_alone_gives_no_records(tmp_path: Path) -> None:
    assert list(read_records(write(tmp_path, "header.csv", csv_text([HEADER])))) == []


def test_a_repeated_column_with_two_values_is_a_duplicate(tmp_path: Path) -> None:
    header = ["Patient number", "Age", "Age"]
    text = csv_text([header, ["SYN-001", "20", "21"], ["SYN-002", "", "30"]])
    both, one = read_records(write(tmp_path, "twice.csv", text))
    assert codes(both) == ["DUPLICATE_VALUE"]
    assert both.errors[0].field == "Age"
    assert both.fields["Age"] == "20"
    assert one.errors == ()
    assert one.fields["Age"] == "30"


def test_a_column_without_a_name_is_named_by_its_spreadsheet_letter(tmp_path: Path) -> None:
    text = csv_text([["Patient number", "", "Age"], ["SYN-001", "note", "20"]])
    [record] = read_records(write(tmp_path, "unnamed.csv", text))
    assert record.fields == {"Patient number": "SYN-001", "(column B)": "note", "Age": "20"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty.csv, line 1: the file is empty"),
        (b"\r\n ,  \r\n\r\n", "empty.csv: holds no rows; the first row must name the columns"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "holds binary data"),
        (b"Patient number,Age\r\nSYN\x00-1,20\r\n", "empty.csv, line 2: holds binary data"),
    ],
)
def test_unreadable_csv_raises_input_error_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        list(read_records(write(tmp_path, "empty.csv", content)))


def test_random_binary_garbage_is_an_input_error(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 4
    with pytest.raises(InputError, match=r"garbage\.csv"):
        list(read_records(write(tmp_path, "garbage.csv", garbage)))


def test_a_cell_beyond_the_csv_field_limit_is_an_input_error(tmp_path: Path) -> None:
    text = "Patient number,Address\r\nSYN-001," + "x" * 200_000 + "\r\n"
    with pytest.raises(InputError, match=r"huge.csv, line \d+: cannot be read as CSV"):
        list(read_records(write(tmp_path, "huge.csv", text)))


def test_delimited_text_is_read_no_further_than_the_record_asked_for() -> None:
    def lines() -> Iterator[str]:
        yield "Patient number,Age\r\n"
        yield "SYN-001,20\r\n"
        raise AssertionError("read past the first record")

    columns, records = delimited_source(lines(), source_name="stream")
    assert columns == ["Patient number", "Age"]
    assert next(records).fields == {"Patient number": "SYN-001", "Age": "20"}


def test_delimited_text_is_read_from_a_text_stream_directly() -> None:
    _columns, records = delimited_source(io.StringIO("Age;Address\nX;Y\n"), source_name="s")
    assert [r.fields for r in records] == [{"Age": "X", "Address": "Y"}]


def test_the_file_extension_decides_the_reader_in_any_case(tmp_path: Path) -> None:
    [record] = read_records(write(tmp_path, "SHEET.CSV", csv_text([HEADER, ["SYN-1", "2", "M"]])))
    assert record.fields["Patient number"] == "SYN-1"
    with pytest.raises(InputError, match=r"sheet.xls: cannot read an Excel 97-2003 workbook; save"):
        list(read_records(write(tmp_path, "sheet.xls", b"\xd0\xcf\x11\xe0")))
    with pytest.raises(InputError, match=r"sheet.ods: cannot read an OpenDocument spreadsheet"):
        list(read_records(write(tmp_path, "sheet.ods", b"PK")))
    with pytest.raises(InputError, match=r"missing\.csv: cannot be read"):
        list(read_records(tmp_path / "missing.csv"))


EVENT = {
    "event": "evSynthet01",
    "orgUnit": "duCDqCRlWG1",
    "occurredAt": "2025-03-14",
    "status": "COMPLETED",
    "createdAt": "2025-03-14T10:00:00",
    "storedBy": "someone",
}


def test_json_events_with_data_values_as_a_list(tmp_path: Path) -> None:
    event = {
        **EVENT,
        "dataValues": [
            {"dataElement": "upqhIcii1iC", "value": "20"},
            {"dataElement": "Gender", "value": "Male"},
        ],
    }
    path = write(tmp_path, "events.json", json.dumps([event]))
    [record] = read_records(path)
    assert record.row == 1
    assert record.fields == {
        "event": "evSynthet01",
        "orgUnit": "duCDqCRlWG1",
        "occurredAt": "2025-03-14",
        "status": "COMPLETED",
        "upqhIcii1iC": "20",
        "Gender": "Male",
    }


def test_json_events_wrapped_in_an_object_with_data_values_as_an_object() -> None:
    data = {"events": [{**EVENT, "dataValues": {"Age": 20, "Insured (NHIS)": True}}, {"x": 1}]}
    first, second = read_json(data, source_name="payload")
    assert (first.fields["Age"], first.fields["Insured (NHIS)"]) == (20, True)
    assert (second.row, second.fields, second.errors) == (2, {}, ())


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (42, "found a number"),
        ("events", "found text"),
        ({"rows": []}, "found an object without an events list"),
        ({"events": {"a": 1}}, "found an object without an events list"),
        (None, "found null"),
    ],
)
def test_json_that_is_not_a_list_of_events_is_an_input_error(data: object, found: str) -> None:
    with pytest.raises(InputError, match=f"upload.json: expected a list of events.*{found}"):
        list(read_json(data, source_name="upload.json"))


def test_malformed_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", '[\n  {"orgUnit": "duCDqCRlWG1",}\n]')
    with pytest.raises(InputError, match=r"broken.json, line 2, column \d+: not valid JSON"):
        list(read_records(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty.json, line 1, column 1: not valid JSON"),
        (b'[{"a": "\xff"}]', r"empty.json, line 1: not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, r"empty.json: not usable JSON"),
    ],
)
def test_unusable_json_files_are_input_errors(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        list(read_records(write(tmp_path, "empty.json", content)))


def test_json_entries_of_the_wrong_shape_are_record_errors_not_crashes() -> None:
    data = [
        "not an event",
        {"dataValues": "Age=20"},
        {"dataValues": [{"value": "20"}, 7, {"dataElement": "Age", "value": "20"}]},
    ]
    text, wrong_values, partly = read_json(data, source_name="upload")
    assert codes(text) == ["MALFORMED_RECORD"]
    assert "Record 1 is text, not an event object" in text.errors[0].message
    assert codes(wrong_values) == ["MALFORMED_RECORD"]
    assert codes(partly) == ["MALFORMED_RECORD", "MALFORMED_RECORD"]
    assert partly.fields == {"Age": "20"}


def test_a_data_element_listed_twice_in_json_is_a_duplicate_unless_empty() -> None:
    twice = {
        "dataValues": [{"dataElement": "Age", "value": "20"}, {"dataElement": "Age", "value": "21"}]
    }
    once = {
        "dataValues": [{"dataElement": "Age", "value": None}, {"dataElement": "Age", "value": "21"}]
    }
    first, second = read_json([twice, once], source_name="upload")
    assert codes(first) == ["DUPLICATE_VALUE"]
    assert second.errors == ()
    assert second.fields == {"Age": "21"}


def test_titles_and_blank_lines_above_the_header_are_skipped(tmp_path: Path) -> None:
    text = csv_text([["IN-PATIENT REGISTER"], ["", "", ""], HEADER, ["SYN-001", "20", "Male"]])
    with open_records(write(tmp_path, "titled.csv", text)) as source:
        assert source.columns == HEADER
        [record] = source.records
    assert (record.row, record.fields["Patient number"]) == (4, "SYN-001")


def test_a_one_column_table_starts_at_its_first_row(tmp_path: Path) -> None:
    text = csv_text([["Patient number"], ["SYN-001"], ["SYN-002"]])
    assert [r.fields for r in read_records(write(tmp_path, "one.csv", text))] == [
        {"Patient number": "SYN-001"},
        {"Patient number": "SYN-002"},
    ]


def test_blank_header_cells_after_the_last_name_are_no_columns(tmp_path: Path) -> None:
    text = csv_text([[*HEADER, "", ""], ["SYN-001", "20", "Male", "", ""]])
    with open_records(write(tmp_path, "trailing.csv", text)) as source:
        assert source.columns == HEADER
        assert [record.errors for record in source.records] == [()]


def test_a_vertical_bar_delimits_too(tmp_path: Path) -> None:
    [record] = read_records(write(tmp_path, "bars.csv", csv_text([HEADER, ["S-1", "2", "M"]], "|")))
    assert record.fields == {"Patient number": "S-1", "Age": "2", HEADER[2]: "M"}


def test_excel_unicode_text_is_utf16_tab_delimited(tmp_path: Path) -> None:
    content = csv_text([HEADER, ["SYN-001", "20", "Fémale"]], "\t").encode("utf-16")
    [record] = read_records(write(tmp_path, "export.txt", content))
    assert record.fields[HEADER[2]] == "Fémale"


def test_a_tsv_file_is_read_as_delimited_text(tmp_path: Path) -> None:
    [record] = read_records(write(tmp_path, "a.tsv", csv_text([HEADER, ["S", "1", "M"]], "\t")))
    assert record.fields["Age"] == "1"


def test_open_records_knows_the_columns_before_reading_any_record(tmp_path: Path) -> None:
    path = write(tmp_path, "sheet.csv", csv_text([HEADER, ["SYN-001", "20", "Male"]]))
    with open_records(path) as source:
        assert source.columns == HEADER
        assert (source.sheet, source.sheets) == (None, ())
    json_path = write(tmp_path, "records.json", json.dumps([{"dataValues": {"Age": "3"}}]))
    with open_records(json_path) as source:
        assert source.columns == ["Age"]


def test_only_a_workbook_has_sheets(tmp_path: Path) -> None:
    path = write(tmp_path, "sheet.csv", csv_text([HEADER]))
    with pytest.raises(InputError, match=r'sheet.csv is not a workbook, so it has no sheet "Ward"'):
        list(read_records(path, sheet="Ward"))
