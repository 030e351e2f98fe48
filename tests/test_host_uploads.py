"""The real `dhims2-host` through its pipes, against the sandbox: uploads from a captured form,
from records and from a sheet, with pushed progress, paged results and resume after a restart."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dhims2.forms.metadata import (
    ADMISSION_DATE_UID,
    ORG_UNIT_UID,
    PATIENT_NUMBER_UID,
    PROGRAM_UID,
    STAGE_UID,
)
from dhims2.forms.synthetic import synthetic_rows, write_csv
from host_process import Host
from test_templates import DHIMS2_HEADER, dhims2_row
from test_xlsx import write_workbook

CHROME_ARGV = ["chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/"]
FIREFOX_ARGV = [
    "/home/u/.mozilla/native-messaging-hosts/org.dhims2.uploader.json",
    "uploader@dhims2.org",
]
GENDER = "fg8sMCaTOrK"


def start_host(env: dict[str, str], argv: list[str] = CHROME_ARGV) -> Host:
    host = Host(argv, env)
    assert host.receive()["type"] == "hello"
    return host


@pytest.fixture
def host(env: dict[str, str], sandbox: Any) -> Iterator[Host]:
    started = start_host(env)
    reply = started.request(
        "configure", "setup", server=sandbox.base_url, auth="token", token=sandbox.create_token()
    )
    assert reply["ok"], reply
    yield started
    started.process.kill()
    started.process.wait()


def reply_to(host: Host, request_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply to `request_id` and the pushed updates that came before it."""
    seen = host.receive_until(lambda message: message.get("id") == request_id)
    return seen[-1], seen[:-1]


def until_batch_settles(host: Host, batch: str) -> list[dict[str, Any]]:
    return host.receive_until(
        lambda m: m.get("type") == "batch.progress" and m["batch"] == batch and m["pending"] == 0
    )


def captured_form(**changes: Any) -> dict[str, Any]:
    row = next(synthetic_rows(1, tag="F"))
    from dhims2.forms.synthetic import in_patient_form

    form = in_patient_form()
    values = {}
    for element in form.data_elements:
        values[element.uid] = row[element.label]
    values.update(changes)
    return {
        "program": PROGRAM_UID,
        "stage": STAGE_UID,
        "orgUnit": ORG_UNIT_UID,
        "occurredAt": row["occurredAt"],
        "values": values,
    }


def test_check_connection_says_who_we_are_and_where_we_may_capture(host: Host, sandbox: Any):
    host.send({"id": "c", "type": "check_connection"})
    reply, _ = reply_to(host, "c")
    assert reply["ok"], reply
    assert reply["version"].startswith("2.41")
    assert reply["user"]["username"] == sandbox.username
    assert ORG_UNIT_UID in reply["org_units"]


def test_check_connection_with_a_bad_token_asks_to_sign_in(env: dict[str, str], sandbox: Any):
    host = start_host(env)
    host.request("configure", "s", server=sandbox.base_url, auth="token", token="d2p_nonsense")
    host.send({"id": "c", "type": "check_connection"})
    reply, _ = reply_to(host, "c")
    assert reply["error"]["code"] == "AUTH_REQUIRED"
    assert "d2p_nonsense" not in json.dumps(reply)


def test_session_auth_uses_the_cookie_the_extension_passes(env: dict[str, str], sandbox: Any):
    import requests

    host = start_host(env, FIREFOX_ARGV)
    host.request("configure", "s", server=sandbox.base_url, auth="session")
    host.send({"id": "no-cookie", "type": "check_connection"})
    refused, _ = reply_to(host, "no-cookie")
    assert refused["error"]["code"] == "AUTH_REQUIRED"
    login = requests.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=5,
    )
    host.send(
        {"id": "c", "type": "check_connection", "session_cookie": login.cookies["JSESSIONID"]}
    )
    reply, _ = reply_to(host, "c")
    assert reply["ok"] and reply["user"]["username"] == sandbox.username


def test_get_program_describes_the_form(host: Host):
    host.send({"id": "p", "type": "get_program"})
    reply, _ = reply_to(host, "p")
    program = reply["program"]
    assert program == {**program, "program": PROGRAM_UID} or program.get("program_uid")
    assert len(json.dumps(program)) > 1000
    assert reply["from_cache"] is False


def test_a_captured_form_is_created_and_progress_is_pushed(host: Host, sandbox: Any):
    host.send({"id": "u", "type": "upload", "form": captured_form()})
    reply, _ = reply_to(host, "u")
    assert reply["ok"], reply
    batch = reply["batch"]["batch"]
    assert reply["records"][0]["state"] == "queued"
    pushed = until_batch_settles(host, batch)
    states = [m["state"] for m in pushed if m.get("type") == "record.state"]
    assert states[-1] == "created" and "importing" in states
    [stored] = sandbox.stored_events()
    assert stored["event"] == reply["records"][0]["event"]
    values = {item["dataElement"]: item["value"] for item in stored["dataValues"]}
    assert values[GENDER] in ("Male", "Female")

    host.send({"id": "g", "type": "get_batch", "batch": batch})
    detail, _ = reply_to(host, "g")
    assert detail["batch"]["created"] == 1
    assert detail["jobs"][0]["state"] == "completed"
    assert any("Import complete" in message for message in detail["jobs"][0]["messages"])


def test_get_patients_names_each_record_by_patient_number_and_admission_date(
    host: Host, tmp_path: Path
):
    from dhims2.forms.synthetic import in_patient_form

    labels = {element.uid: element.label for element in in_patient_form().data_elements}
    rows = list(synthetic_rows(2, tag="P"))
    sheet = sheet_of(write_csv(tmp_path / "ward.csv", rows))
    host.send({"id": "u", "type": "upload", "sheet": sheet})
    reply, _ = reply_to(host, "u")
    assert reply["batch"]["rejected"] == 0, reply["records"][0]["errors"]
    batch = reply["batch"]["batch"]
    until_batch_settles(host, batch)

    host.send({"id": "p", "type": "get_patients", "batch": batch, "page_size": 1, "page": 1})
    second, _ = reply_to(host, "p")
    assert second["records"] == [
        {
            "row": reply["records"][1]["row"],
            "patient_number": rows[1][labels[PATIENT_NUMBER_UID]],
            "admission_date": rows[1][labels[ADMISSION_DATE_UID]],
        }
    ]
    assert second["next_page"] is None

    # Once the values are purged the store no longer knows whose record it was.
    host.send({"id": "f", "type": "forget", "uploaded_before": "2999-01-01T00:00:00Z"})
    reply_to(host, "f")
    host.send({"id": "q", "type": "get_patients", "batch": batch})
    purged, _ = reply_to(host, "q")
    assert [(r["patient_number"], r["admission_date"]) for r in purged["records"]] == [
        (None, None),
        (None, None),
    ]


def test_a_bad_value_is_rejected_with_the_reason_next_to_its_field(host: Host, sandbox: Any):
    host.send({"id": "u", "type": "upload", "form": captured_form(**{GENDER: "Malee"})})
    reply, _ = reply_to(host, "u")
    record = reply["records"][0]
    assert record["state"] == "rejected"
    [error] = record["errors"]
    assert error["dataElement"] == GENDER and error["value"] == "Malee"
    assert error["field"] == "Gender (morbidity/mortality)"
    assert sandbox.stored_events() == []


def test_validate_is_a_dry_run(host: Host, sandbox: Any):
    host.send({"id": "v", "type": "validate", "form": captured_form(**{GENDER: "Malee"})})
    reply, _ = reply_to(host, "v")
    assert (reply["valid"], reply["rejected"]) == (0, 1)
    host.send({"id": "l", "type": "list_batches"})
    listing, _ = reply_to(host, "l")
    assert listing["batches"] == [] and sandbox.stored_events() == []


def sheet_of(path: Path, **fields: Any) -> dict[str, Any]:
    content = base64.b64encode(path.read_bytes()).decode()
    return {"name": path.name, "content_base64": content, **fields}


def dhims2_workbook(path: Path, *sheets: tuple[str, list[dict[str, object]]]) -> Path:
    tables = {
        title: [DHIMS2_HEADER, *([row.get(column) for column in DHIMS2_HEADER] for row in rows)]
        for title, rows in sheets
    }
    return write_workbook(path, tables)


def march_rows() -> list[dict[str, object]]:
    """Seven patients in the DHIMS2 layout; the sheet's rows 3, 5, 6 and 8 are invalid."""
    rows = [dhims2_row(index) for index in range(6)]
    rows[1]["Gender"] = "Malee"
    rows[3]["Principal Diagnosis"] = "Tetanus(A99)"
    rows[4]["Age"] = "old"
    rows.append(dhims2_row(0, **{"Address/Locality": "Keta"}))  # admitted twice
    return rows


def test_list_templates_names_the_shipped_layouts(host: Host):
    host.send({"id": "t", "type": "list_templates"})
    reply, _ = reply_to(host, "t")
    [inpatient] = [t for t in reply["templates"] if t["name"] == "dhims2-inpatient"]
    assert inpatient["title"] == "The DHIMS2 In-Patient Morbidity and Mortality sheet"
    assert inpatient["description"].startswith(inpatient["title"] + ":")
    host.send({"id": "x", "type": "list_templates", "page": 1})
    refused, _ = reply_to(host, "x")
    assert refused["error"]["code"] == "INVALID_MESSAGE"
    assert refused["error"]["details"]["field"] == "page"


def test_validate_shows_a_workbooks_invalid_rows_page_by_page_and_its_sheets(
    host: Host, sandbox: Any, tmp_path: Path
):
    april = [dhims2_row(index) for index in range(10, 12)]
    path = dhims2_workbook(tmp_path / "ward.xlsx", ("March", march_rows()), ("April", april))
    sheet = sheet_of(path, template="dhims2-inpatient")
    host.send({"id": "v", "type": "validate", "sheet": sheet, "page_size": 3})
    reply, _ = reply_to(host, "v")
    assert (reply["total"], reply["valid"], reply["rejected"]) == (7, 3, 4)
    assert (reply["sheet"], reply["sheets"]) == ("March", ["March", "April"])
    assert [record["row"] for record in reply["records"]] == [3, 5, 6]
    assert reply["next_page"] == 3
    [gender] = reply["records"][0]["errors"]
    assert (gender["field"], gender["value"]) == ("Gender", "Malee")
    assert 'did you mean "Male"' in gender["message"]

    host.send({"id": "v2", "type": "validate", "sheet": sheet, "page": 3, "page_size": 3})
    rest, _ = reply_to(host, "v2")
    [duplicate] = rest["records"]
    assert duplicate["row"] == 8 and duplicate["errors"][0]["code"] == "DUPLICATE_RECORD"
    assert rest["next_page"] is None

    host.send({"id": "a", "type": "validate", "sheet": {**sheet, "sheet": "april"}})
    chosen, _ = reply_to(host, "a")
    assert (chosen["sheet"], chosen["valid"], chosen["rejected"]) == ("April", 2, 0)
    host.send({"id": "l", "type": "list_batches"})
    listing, _ = reply_to(host, "l")
    assert listing["batches"] == [] and sandbox.stored_events() == []
    assert sandbox.request_count("POST", "/api/tracker") == 0


def test_validate_exports_the_invalid_rows_with_their_reasons(host: Host, tmp_path: Path):
    path = dhims2_workbook(tmp_path / "ward march.xlsx", ("March", march_rows()))
    sheet = sheet_of(path, template="dhims2-inpatient")
    host.send({"id": "e", "type": "validate", "sheet": sheet, "export": True})
    reply, _ = reply_to(host, "e")
    export = reply["export"]
    assert (export["name"], export["rows"]) == ("ward march-invalid-rows.csv", 4)
    content = base64.b64decode(export["content_base64"])
    assert content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    header, *rows = csv.reader(content.decode("utf-8-sig").splitlines())
    assert header == ["Source row", *DHIMS2_HEADER, "Reason not uploaded"]
    assert [row[0] for row in rows] == ["3", "5", "6", "8"]
    assert rows[0][1 + DHIMS2_HEADER.index("Gender")] == "Malee"
    reasons = {row[0]: row[-1] for row in rows}
    assert 'did you mean "Male"' in reasons["3"]
    assert "no option has the code A99" in reasons["5"]
    assert "is not an age with its unit" in reasons["6"]
    assert (
        reasons["8"] == "Same Patient No. and Date of Admission as row 2: only row 2 is uploaded."
    )
    assert [record["row"] for record in reply["records"]] == [3, 5, 6, 8]


def test_an_export_too_big_for_the_browser_names_the_command_instead(host: Host, tmp_path: Path):
    rows = list(synthetic_rows(60, tag="X"))
    for row in rows:
        row.update({"Address": "x" * 10_000, "Gender (morbidity/mortality)": "Malee"})
    path = write_csv(tmp_path / "big.csv", rows)
    host.send({"id": "e", "type": "validate", "sheet": sheet_of(path), "export": True})
    reply, _ = reply_to(host, "e")
    error = reply["error"]
    assert error["code"] == "MESSAGE_TOO_LARGE"
    command = "dhims2 upload big.csv --dry-run --export-invalid invalid-rows.csv"
    assert error["details"]["command"] == command and command in error["message"]
    assert "xxxxxxxx" not in json.dumps(reply)


def test_validate_refuses_what_it_cannot_check_naming_the_fault(host: Host, tmp_path: Path):
    host.send({"id": "f", "type": "validate", "form": captured_form(), "export": True})
    reply, _ = reply_to(host, "f")
    assert reply["error"]["code"] == "INVALID_MESSAGE"
    assert reply["error"]["details"]["field"] == "export"

    path = dhims2_workbook(tmp_path / "ward.xlsx", ("Notes", []), ("March", march_rows()))
    host.send({"id": "c", "type": "validate", "sheet": sheet_of(path, sheet="March")})
    reply, _ = reply_to(host, "c")
    error = reply["error"]
    assert error["code"] == "INVALID_RECORDS"
    faults = {column["field"]: column["message"] for column in error["details"]["columns"]}
    assert 'did you mean "Patient number"' in faults["Patient No."]
    assert (error["details"]["sheet"], error["details"]["sheets"]) == ("March", ["Notes", "March"])

    for template in (
        {"name": "ward-a"},
        {"formatVersion": 1, "name": "ward-a", "columns": {"Sex": {"dataElement": "Shoe size"}}},
    ):
        sheet = sheet_of(path, sheet="March", template=template)
        host.send({"id": "t", "type": "validate", "sheet": sheet})
        reply, _ = reply_to(host, "t")
        assert reply["error"]["code"] == "INVALID_MESSAGE", reply
        assert reply["error"]["details"]["field"] == "sheet.template"
    assert "Shoe size" in reply["error"]["message"]

    host.send({"id": "u", "type": "upload", "sheet": sheet_of(path), "export": True})
    reply, _ = reply_to(host, "u")
    assert reply["error"]["details"]["field"] == "export"


def test_a_sheet_upload_with_paged_results(host: Host, sandbox: Any, tmp_path: Path):
    path = write_csv(tmp_path / "sheet.csv", list(synthetic_rows(120, tag="P")))
    sheet = {"name": "sheet.csv", "content_base64": base64.b64encode(path.read_bytes()).decode()}
    host.send({"id": "u", "type": "upload", "sheet": sheet})
    reply, _ = reply_to(host, "u")
    batch = reply["batch"]["batch"]
    assert reply["batch"]["total"] == 120 and reply["next_page"] == 50
    until_batch_settles(host, batch)
    assert len(sandbox.stored_events()) == 120

    rows, page = [], 0
    while page is not None:
        host.send({"id": f"g{page}", "type": "get_batch", "batch": batch, "page": page})
        detail, _ = reply_to(host, f"g{page}")
        rows += [record["row"] for record in detail["records"]]
        page = detail["next_page"]
    assert rows == list(range(2, 122))


def test_unreadable_sheets_bad_records_and_unknown_batches(host: Host, sandbox: Any):
    garbage = {"name": "x.csv", "content_base64": base64.b64encode(b"\x00\xff" * 50).decode()}
    host.send({"id": "s", "type": "upload", "sheet": garbage})
    reply, _ = reply_to(host, "s")
    assert reply["error"]["code"] == "INVALID_RECORDS" and "x.csv" in reply["error"]["message"]

    host.send({"id": "r", "type": "upload", "records": [{"orgUnit": ORG_UNIT_UID}]})
    reply, _ = reply_to(host, "r")
    assert reply["batch"]["rejected"] == 1 and reply["records"][0]["errors"]
    assert sandbox.stored_events() == []
    for request_type in ("get_batch", "get_patients", "retry", "cancel", "forget"):
        host.send({"id": request_type, "type": request_type, "batch": "Nonexisting"})
        answer, _ = reply_to(host, request_type)
        assert answer["error"]["code"] == "NOT_FOUND"


def test_work_pending_when_the_host_stops_resumes_when_it_starts(env: dict[str, str], sandbox: Any):
    first = start_host(env)
    first.request(
        "configure", "s", server=sandbox.base_url, auth="token", token=sandbox.create_token()
    )
    sandbox.knobs.job_overhead_seconds = 1.0
    first.send({"id": "u", "type": "upload", "form": captured_form()})
    reply, _ = reply_to(first, "u")
    batch = reply["batch"]["batch"]
    first.receive_until(lambda m: m.get("type") == "record.state" and m["state"] == "importing")
    first.close_stdin()
    assert first.exit_code() == 0

    sandbox.knobs.job_overhead_seconds = 0.0
    second = start_host(env)
    second.send({"id": "l", "type": "list_batches"})
    until_batch_settles(second, batch)
    assert len(sandbox.stored_events()) == 1
    second.send({"id": "g", "type": "get_batch", "batch": batch})
    detail, _ = reply_to(second, "g")
    assert detail["records"][0]["state"] == "created"
