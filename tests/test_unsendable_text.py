"""A value with no UTF-8 form (a lone surrogate, "\\ud800") is refused at validation, a record
holding one is rejected rather than retried, and no such record blocks any other."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PATIENT_NUMBER_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import CREATED, REJECTED, NewRecord, Store
from test_host_uploads import GENDER, captured_form, reply_to, start_host

LONE = "\ud800"


def test_validation_refuses_a_lone_surrogate_and_names_the_field():
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    row = next(synthetic_rows(1))
    row["Patient number"] = f"VRH{LONE}1"
    [error] = [e for e in mapper.prepare(SourceRecord(row=2, fields=row)).errors]
    assert (error.code, error.data_element, error.field) == (
        "INVALID_TEXT",
        PATIENT_NUMBER_UID,
        "Patient number",
    )
    assert error.value == "VRH\ufffd1"  # quotable: the message itself can be sent


def test_the_cli_rejects_the_record_and_sends_every_other_one(sandbox, tmp_path, env):
    rows = list(synthetic_rows(30))
    rows[4]["Address"] = f"Ward 3{LONE}"
    path = tmp_path / "records.json"
    # json.dumps writes the lone surrogate as the escape "\ud800", as a JSON file from
    # another program can hold it.
    events = [{"occurredAt": row.pop("occurredAt"), "dataValues": row} for row in rows]
    path.write_text(json.dumps(events), encoding="utf-8")
    args = ["--server", sandbox.base_url, "--token", sandbox.create_token(), "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "dhims2.cli", "upload", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["created"], report["rejected"], report["pending"]) == (29, 1, 0)
    [bad] = [record for record in report["records"] if record["state"] == REJECTED]
    assert bad["errors"][0]["code"] == "INVALID_TEXT" and bad["errors"][0]["field"] == "Address"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "uploads.sqlite3") as opened:
        yield opened


def test_a_queued_unsendable_record_is_rejected_and_blocks_no_other(
    sandbox, store, inpatient_event
):
    with Dhis2Client(sandbox.base_url, Credentials(token=sandbox.create_token())) as client:
        service = UploadService(store, client, settings=UploadSettings(batch_size=5))
        events = [inpatient_event({PATIENT_NUMBER_UID: f"S-{n}"}) for n in range(12)]
        events[1]["dataValues"][1]["value"] = f"bad{LONE}"
        first = store.create_batch(
            server=service.server,
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="older.csv",
            records=[NewRecord(row, event, {}) for row, event in enumerate(events[:6], start=2)],
        )
        later = store.create_batch(
            server=service.server,
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="later.csv",
            records=[NewRecord(row, event, {}) for row, event in enumerate(events[6:], start=2)],
        )
        service.run(timeout=30)
    assert store.batch(first).counts == {CREATED: 5, REJECTED: 1}
    assert store.batch(later).counts == {CREATED: 6}
    [bad] = [r for r in store.batch_records(first) if r.state == REJECTED]
    assert bad.errors[0]["code"] == "INVALID_TEXT" and bad.sends == 1
    assert len(sandbox.stored_events()) == 11


def test_the_host_answers_a_request_whose_reply_cannot_be_encoded(env, sandbox):
    host = start_host(env)
    try:
        setup = host.request(
            "configure", "s", server=sandbox.base_url, auth="token", token=sandbox.create_token()
        )
        assert setup["ok"], setup
        # The option check quotes the value back, lone surrogate and all.
        host.send({"id": "v", "type": "validate", "form": captured_form(**{GENDER: f"M{LONE}"})})
        reply, _ = reply_to(host, "v")
        if reply["ok"]:
            assert LONE not in json.dumps(reply, ensure_ascii=False)
        else:
            assert reply["error"]["code"] == "INVALID_TEXT"
        assert host.request("ping", "p")["ok"]
    finally:
        host.process.kill()
        host.process.wait()


def test_a_reply_quoting_stored_unsendable_text_becomes_an_error_reply(env):
    """A store written before validation refused such text can hold it in a record's errors."""
    error = {"code": "E1125", "message": "bad", "dataElement": None, "field": "Gender"}
    with Store(Path(env["DHIMS2_DATA_DIR"]) / "uploads.sqlite3") as store:
        batch = store.create_batch(
            server="https://events.chimgh.org/events",
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="older.csv",
            records=[
                NewRecord(
                    2, {"event": "Aaaaaaaaaa1"}, {}, None, REJECTED, [{**error, "value": LONE}]
                )
            ],
        )
    host = start_host(env)
    try:
        reply = host.request("get_batch", "b", batch=batch)
        assert reply["ok"] is False and reply["error"]["code"] == "INVALID_TEXT"
        assert host.request("ping", "p")["ok"]
    finally:
        host.process.kill()
        host.process.wait()


def test_a_reply_that_fails_only_when_framed_still_gets_an_error_reply(env):
    """`configure` echoes the saved settings; the reply is encoded only when it is framed."""
    host = start_host(env)
    try:
        reply = host.request("configure", "c", server=f"https://events.chimgh.org/ev{LONE}/")
        assert reply["ok"] is False and reply["error"]["code"] == "INVALID_TEXT"
        assert host.request("ping", "p")["ok"]
    finally:
        host.process.kill()
        host.process.wait()
