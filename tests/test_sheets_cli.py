"""Spreadsheet backlogs end to end: a clerk's workbook through `dhims2 upload --template` to the
sandbox DHIS2, duplicates, dry runs, the export of invalid rows, sheets, and template suggestions.
Every workbook is generated here; every patient is made up."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dhims2.forms.duplicates import DUPLICATE_RECORD
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ADMISSION_DATE_UID, ORG_UNIT_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form
from dhims2.sheets.preparation import (
    ColumnError,
    prepared_records,
    reason_text,
    write_invalid_rows,
)
from dhims2.sheets.source import RecordSource
from test_cli import dhims2, server_args
from test_mapping import VALID_ROW
from test_templates import DHIMS2_HEADER, dhims2_row, dhims2_sheet
from test_xlsx import write_workbook

TEMPLATE = ["--template", "dhims2-inpatient"]


def values_of(event: dict) -> dict[str, str]:
    return {item["dataElement"]: item["value"] for item in event["dataValues"]}


def rows_of(*rows: dict[str, object]) -> list[list[object]]:
    return [DHIMS2_HEADER, *([row.get(column) for column in DHIMS2_HEADER] for row in rows)]


def read_export(path: Path) -> list[list[str]]:
    content = path.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(content.decode("utf-8-sig").splitlines()))


def test_a_dhims2_workbook_uploads_with_the_shipped_template(sandbox, tmp_path, env) -> None:
    rows = [["IN-PATIENT MORBIDITY AND MORTALITY (synthetic)"], [], *dhims2_sheet(12)]
    path = write_workbook(tmp_path / "ward.xlsx", {"Register": rows, "Notes": [["a", "b"]]})
    result = dhims2("upload", str(path), *TEMPLATE, *server_args(sandbox), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["total"], report["created"]) == (12, 12)
    assert [record["row"] for record in report["records"]] == list(range(4, 16))
    events = sandbox.stored_events()
    assert len(events) == 12
    for event in events:
        values = values_of(event)
        assert event["occurredAt"].startswith(values[ADMISSION_DATE_UID])
        assert values["WZ5rS7QuECT"] == "years"
        assert values["yPXPzceTIvq"] in ("A35 - Other tetanus", "B54 - Unspecified malaria")
        assert "O15UNfCqavW" not in values, '"NA" is no diagnosis'


def test_repeated_admissions_are_flagged_and_a_second_upload_only_updates(
    sandbox, tmp_path, env
) -> None:
    rows = [dhims2_row(index) for index in range(6)]
    rows.append(dhims2_row(2, **{"Address/Locality": "Keta"}))
    path = write_workbook(tmp_path / "twice.xlsx", {"Register": rows_of(*rows)})
    first = dhims2("upload", str(path), *TEMPLATE, *server_args(sandbox), "--json", env=env)
    assert first.returncode == 1
    report = json.loads(first.stdout)
    assert (report["created"], report["rejected"]) == (6, 1)
    [duplicate] = [record for record in report["records"] if record["state"] == "rejected"]
    assert duplicate["row"] == 8
    [error] = duplicate["errors"]
    assert error["code"] == DUPLICATE_RECORD
    assert error["message"] == (
        "Same Patient No. and Date of Admission as row 4: only row 4 is uploaded."
    )

    again = write_workbook(tmp_path / "again.xlsx", {"Register": rows_of(*rows[:6])})
    second = dhims2("upload", str(again), *TEMPLATE, *server_args(sandbox), env=env)
    assert second.returncode == 0, second.stderr
    assert "6 already in DHIS2, updated" in second.stdout
    stored = Counter(values_of(event)["h0Ef6ykTpNB"] for event in sandbox.stored_events())
    assert len(stored) == 6 and set(stored.values()) == {1}


def test_a_dry_run_exports_invalid_rows_that_upload_once_corrected(sandbox, tmp_path, env) -> None:
    rows = [dhims2_row(index) for index in range(5)]
    rows[1]["Gender"] = "Malee"
    rows[3]["Principal Diagnosis"] = "Tetanus(A99)"
    rows[4]["Date of Admission"] = "12/31/2025"
    path = write_workbook(tmp_path / "march.xlsx", {"Register": rows_of(*rows)})
    export = tmp_path / "invalid.csv"
    args = ["upload", str(path), *TEMPLATE, *server_args(sandbox), "--dry-run"]
    result = dhims2(*args, "--json", "--export-invalid", str(export), env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["total"], report["valid"], report["rejected"]) == (5, 2, 3)
    assert sandbox.stored_events() == []
    assert "3 rows not uploaded" in result.stderr

    header, *invalid = read_export(export)
    assert header == ["Source row", *DHIMS2_HEADER, "Reason not uploaded"]
    assert [row[0] for row in invalid] == ["3", "5", "6"]
    reasons = [row[-1] for row in invalid]
    assert 'did you mean "Male"' in reasons[0]
    assert "no option has the code A99" in reasons[1]
    assert "looks month first" in reasons[2]
    assert invalid[0][DHIMS2_HEADER.index("Date of Admission") + 1] == "02-01-2025"

    fixes = {"3": ("Gender", "Male"), "5": ("Principal Diagnosis", "B54")}
    fixes["6"] = ("Date of Admission", "31-12-2025")
    for row in invalid:
        column, value = fixes[row[0]]
        row[DHIMS2_HEADER.index(column) + 1] = value
    corrected = tmp_path / "corrected.csv"
    with corrected.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows([header, *invalid])
    upload = dhims2("upload", str(corrected), *TEMPLATE, *server_args(sandbox), env=env)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    assert len(sandbox.stored_events()) == 3


def test_the_export_after_an_upload_holds_the_rejected_rows(sandbox, tmp_path, env) -> None:
    rows = [dhims2_row(index) for index in range(3)]
    rows[2]["Age"] = "old"
    path = write_workbook(tmp_path / "april.xlsx", {"Register": rows_of(*rows)})
    export = tmp_path / "rejected.csv"
    result = dhims2(
        "upload", str(path), *TEMPLATE, *server_args(sandbox), "--export-invalid", str(export),
        env=env,
    )  # fmt: skip
    assert result.returncode == 1
    _header, rejected = read_export(export)
    assert rejected[0] == "4" and "is not an age with its unit" in rejected[-1]
    same = dhims2(
        "upload", str(path), "--export-invalid", str(path), *server_args(sandbox), env=env
    )
    assert same.returncode == 2 and "another file" in same.stderr


def test_a_sheet_is_chosen_by_name_and_a_missing_one_is_named(sandbox, tmp_path, env) -> None:
    path = write_workbook(
        tmp_path / "months.xlsx",
        {
            "January": rows_of(dhims2_row(1)),
            "February": rows_of(dhims2_row(2), dhims2_row(3)),
        },
    )
    args = ["upload", str(path), *TEMPLATE, *server_args(sandbox)]
    default = dhims2(*args, "--dry-run", env=env)
    assert default.returncode == 0, default.stderr
    assert '"February" (choose one with --sheet)' in default.stderr
    assert "Dry run: 1 of 1 records would be accepted" in default.stdout
    chosen = dhims2(*args, "--sheet", "February", "--json", env=env)
    assert json.loads(chosen.stdout)["created"] == 2
    missing = dhims2(*args, "--sheet", "March", env=env)
    assert missing.returncode == 2
    assert 'has no sheet "March"; its sheets are "January", "February"' in missing.stderr


def test_bad_templates_and_columns_stop_before_anything_is_sent(sandbox, tmp_path, env) -> None:
    path = write_workbook(tmp_path / "ward.xlsx", {"Register": list(dhims2_sheet(2))})
    broken = tmp_path / "broken.json"
    broken.write_text('{"formatVersion": 1, "name": "b", "columns": {"Age": {}}}')
    bad = dhims2("upload", str(path), "--template", str(broken), *server_args(sandbox), env=env)
    assert bad.returncode == 2
    assert 'broken.json, column "Age": give exactly one of' in bad.stderr
    renamed = write_workbook(
        tmp_path / "renamed.xlsx",
        {"Register": [["Ward", *DHIMS2_HEADER[1:]], *list(dhims2_sheet(2))[1:]]},
    )
    missing = dhims2("upload", str(renamed), *TEMPLATE, *server_args(sandbox), env=env)
    assert missing.returncode == 2
    assert 'The sheet has no column "Patient No."' in missing.stderr
    assert 'Column "Ward" is not a field of this form' in missing.stderr
    assert sandbox.stored_events() == []


def template_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`dhims2 template ...` in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "dhims2.cli", "template", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_suggested_template_is_saved_and_then_used(sandbox, tmp_path, env) -> None:
    rows = list(dhims2_sheet(4))
    rows[0] = ["S/N", *rows[0]]
    rows[1:] = [[number, *row] for number, row in enumerate(rows[1:], start=1)]
    for row in rows[1:]:
        row[-1] = "Yes"
    path = write_workbook(tmp_path / "new layout.xlsx", {"Register": rows})
    saved = tmp_path / "new-layout.json"
    suggested = template_command("suggest", str(path), "--save", str(saved), env=env)
    assert suggested.returncode == 0, suggested.stderr
    assert "S/N" in suggested.stdout and "(ignored)" in suggested.stdout
    assert 'Report date (occurredAt) from "Date of Admission"' in suggested.stdout
    again = template_command("suggest", str(path), "--save", str(saved), env=env)
    assert again.returncode == 2 and "pass --force" in again.stderr

    upload = dhims2(
        "upload", str(path), "--template", str(saved), *server_args(sandbox), "--json", env=env
    )
    assert upload.returncode == 0, upload.stderr
    assert json.loads(upload.stdout)["created"] == 4
    shown = template_command("show", str(saved), env=env)
    assert json.loads(shown.stdout)["name"] == "new-layout"
    listed = template_command("list", env=env)
    assert listed.stdout.startswith("dhims2-inpatient: The DHIMS2 In-Patient")


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))


def test_records_are_prepared_as_they_are_read(mapper: Mapper) -> None:
    def records() -> Iterator[SourceRecord]:
        for row in range(2, 5):
            yield SourceRecord(row, {"Patient number": f"SYN-{row}", "Age": "3"})
        raise AssertionError("read past the records asked for")

    source = RecordSource("endless.csv", ["Patient number", "Age"], records())
    prepared = prepared_records(source, mapper)
    assert [next(prepared).row for _ in range(3)] == [2, 3, 4]


def test_column_faults_are_raised_before_any_record_is_read(mapper: Mapper) -> None:
    def records() -> Iterator[SourceRecord]:
        raise AssertionError("a record was read")
        yield

    source = RecordSource("sheet.csv", ["Patient number", "Gendr"], records())
    with pytest.raises(ColumnError, match=r'sheet.csv: Gendr: Column "Gendr"') as raised:
        prepared_records(source, mapper)
    assert [error.code for error in raised.value.errors] == ["UNKNOWN_COLUMN"]


def test_only_valid_records_count_for_duplicates_and_each_org_unit_apart(mapper: Mapper) -> None:
    base = {**VALID_ROW, "Patient number": "SYN-1"}
    other_unit = {**base, "orgUnit": "Kp4wTr2mHoS"}
    rows = [{**base, "Age": "x"}, base, other_unit, base]
    source = RecordSource(
        "s.csv", list(base), iter(SourceRecord(i + 2, row) for i, row in enumerate(rows))
    )
    duplicates = [
        record.row
        for record in prepared_records(source, mapper)
        if any(error.code == DUPLICATE_RECORD for error in record.errors)
    ]
    # Rows 3 and 5 are the same admission; row 2 is invalid anyway and row 4 is elsewhere.
    assert duplicates == [5]


def test_invalid_rows_are_written_with_their_reasons(tmp_path: Path) -> None:
    source = tmp_path / "sheet.xlsx"
    admitted = date(2025, 3, 14)
    write_workbook(source, {"S": [["Patient No.", "Admitted"], ["SYN-1", admitted], ["SYN-2", 3]]})
    out = tmp_path / "out.csv"
    assert write_invalid_rows(source, {3: "Admitted: a number."}, out) == 1
    assert read_export(out) == [
        ["Source row", "Patient No.", "Admitted", "Reason not uploaded"],
        ["3", "SYN-2", "3", "Admitted: a number."],
    ]


def test_reason_text_joins_local_and_dhis2_messages(mapper: Mapper) -> None:
    record = mapper.prepare(SourceRecord(2, {"Gender (morbidity/mortality)": "Malee"}))
    dhis2 = {"code": "E1000", "message": "User has no write access to organisation unit."}
    text = reason_text([*record.errors[:1], dhis2])
    assert text.startswith('"Malee" is not an option of Gender')
    assert text.endswith("User has no write access to organisation unit.")
