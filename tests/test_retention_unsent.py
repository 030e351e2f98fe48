"""Every finished record's patient values leave this computer after the retention period, sent
or not, and the clerk is warned a week before unsent ones go (docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dhims2.dhis2.uids import new_uid
from dhims2.forms.metadata import PROGRAM_UID, STAGE_UID
from dhims2.queue.retention import SECONDS_PER_DAY, purge_expired, unsent_expiring
from dhims2.queue.store import (
    CANCELLED,
    CREATED,
    FAILED,
    QUEUED,
    REJECTED,
    STORE_FILE_NAME,
    UPDATED,
    NewRecord,
    Store,
)

STATES = [CREATED, UPDATED, REJECTED, FAILED, CANCELLED, QUEUED]
PATIENT_VALUE = "VRH/T/000123"


def note(state: str) -> str:
    """The made-up patient value of a record that ends in `state` (a queued one has its own)."""
    return "waiting" if state == QUEUED else PATIENT_VALUE


def finished(store: Store, states: list[str]) -> str:
    batch = store.create_batch(
        server="https://dhims2.example.org/events",
        program=PROGRAM_UID,
        stage=STAGE_UID,
        source="ward.csv",
        records=[
            NewRecord(row, {"event": new_uid(), "note": note(state)}, {"h0Ef6ykTpNB": "No."})
            for row, state in enumerate(states, start=2)
        ],
    )
    records = store.batch_records(batch)
    error = {"code": "E1125", "message": "bad", "value": PATIENT_VALUE}
    store.finish_records(
        {
            record.id: (state, [error] if state != CREATED else [])
            for record, state in zip(records, states, strict=True)
            if state != QUEUED
        }
    )
    return batch


def test_every_finished_record_loses_its_values_after_the_period(tmp_path: Path):
    with Store(tmp_path / STORE_FILE_NAME) as store:
        batch = finished(store, STATES)
        later = time.time() + 31 * SECONDS_PER_DAY
        assert purge_expired(store, 30, now=later) == 5
        kept = {r.state: r for r in store.batch_records(batch)}
        assert [state for state, r in kept.items() if r.event is not None] == [QUEUED]
        for state in (REJECTED, FAILED, CANCELLED):
            assert kept[state].errors[0]["value"] is None  # errors quoted the value too
        # A failed record without its values cannot be sent again.
        assert store.retry_failed(batch) == 0
    text = (tmp_path / STORE_FILE_NAME).read_bytes()
    assert PATIENT_VALUE.encode() not in text


def test_the_clerk_is_warned_a_week_before_unsent_records_go(tmp_path: Path):
    with Store(tmp_path / STORE_FILE_NAME) as store:
        finished(store, STATES)
        now = time.time()
        assert unsent_expiring(store, 30, now=now + 22 * SECONDS_PER_DAY) == 0
        assert unsent_expiring(store, 30, now=now + 24 * SECONDS_PER_DAY) == 3


def test_status_tells_the_clerk_which_records_are_about_to_go(tmp_path: Path, env):
    data = Path(env["DHIMS2_DATA_DIR"])
    with Store(data / STORE_FILE_NAME) as store:
        finished(store, STATES)
    with sqlite3.connect(data / STORE_FILE_NAME) as connection:
        connection.execute("UPDATE records SET updated_at = updated_at - ?", (25 * 86400,))
    connection.close()
    shown = subprocess.run(
        [sys.executable, "-m", "dhims2.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "3 records that never reached DHIS2" in shown.stderr
    assert json.loads(shown.stdout)["batches"]
