"""The durable queue: owner-only files, migrations, and the state transitions it guarantees."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys

import pytest

from dhims2.dhis2.uids import new_uid
from dhims2.queue import store as states
from dhims2.queue.store import MIGRATIONS, NewRecord, Store, StoreError, UnknownBatch

SERVER = "http://127.0.0.1:1/events"


def new_records(count: int, *, first_row: int = 2) -> list[NewRecord]:
    return [
        NewRecord(
            row=first_row + index,
            event={
                "event": new_uid(),
                "dataValues": [{"dataElement": "h0Ef6ykTpNB", "value": "X"}],
            },
            fields={"h0Ef6ykTpNB": "Patient number"},
            identity=f"identity-{index}",
        )
        for index in range(count)
    ]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "data" / "uploads.sqlite3") as opened:
        yield opened


def batch_of(store: Store, count: int) -> str:
    return store.create_batch(
        server=SERVER,
        program="fFYTJRzD2qq",
        stage="LR7JT7ZNg8E",
        source="t.csv",
        records=new_records(count),
    )


def test_store_file_and_folder_are_owner_only(store):
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    batch_of(store, 1)
    for suffix in ("-wal", "-shm"):
        side_file = store.path.with_name(store.path.name + suffix)
        if side_file.exists():
            assert stat.S_IMODE(side_file.stat().st_mode) & 0o077 == 0


def test_processes_opening_a_new_store_at_once_migrate_it_once(tmp_path):
    # The CLI, the native host and its sender may all open a store that does not exist yet.
    opening = "import sys; from dhims2.queue.store import Store; Store(sys.argv[1]).close()"
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.sqlite3"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", opening, str(path)], stderr=subprocess.PIPE, text=True
            )
            for _ in range(6)
        ]
        errors = [process.communicate(timeout=60)[1] for process in processes]
        assert [process.returncode for process in processes] == [0] * 6, errors
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        connection.close()


def test_schema_version_is_recorded_and_a_newer_store_is_refused(tmp_path):
    path = tmp_path / "uploads.sqlite3"
    Store(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_reopening_keeps_batches_and_event_uids(tmp_path):
    path = tmp_path / "uploads.sqlite3"
    with Store(path) as first:
        batch = batch_of(first, 3)
        uids = [record.event_uid for record in first.batch_records(batch)]
    with Store(path) as second:
        assert [record.event_uid for record in second.batch_records(batch)] == uids
        assert second.batch(batch).counts == {states.QUEUED: 3}


def test_claim_marks_records_sending_and_recovery_requeues_them(store):
    batch = batch_of(store, 5)
    claimed = store.claim_for_sending(SERVER, 3)
    assert [record.state for record in claimed] == [states.SENDING] * 3
    assert all(record.sends == 1 for record in claimed)
    assert store.batch(batch).counts == {states.SENDING: 3, states.QUEUED: 2}
    assert store.recover_interrupted_sends(SERVER) == 3
    assert store.batch(batch).counts == {states.QUEUED: 5}
    again = store.claim_for_sending(SERVER, 10)
    assert len(again) == 5
    assert {record.event_uid for record in claimed} <= {record.event_uid for record in again}


def test_claims_take_one_batch_at_a_time_oldest_first(store):
    first = batch_of(store, 2)
    second = batch_of(store, 2)
    assert {record.batch_id for record in store.claim_for_sending(SERVER, 10)} == {first}
    assert {record.batch_id for record in store.claim_for_sending(SERVER, 10)} == {second}


def test_job_lifecycle_records_outcomes_in_one_step(store):
    batch = batch_of(store, 2)
    claimed = store.claim_for_sending(SERVER, 2)
    store.record_job(
        job_id="JobAAAAAAA1", server=SERVER, record_ids=[r.id for r in claimed], submitted_at=1.0
    )
    assert [job.id for job in store.pending_jobs(SERVER)] == ["JobAAAAAAA1"]
    assert [record.state for record in store.job_records("JobAAAAAAA1")] == [states.IMPORTING] * 2
    rejection = [{"code": "E1125", "message": "bad option"}]
    store.finish_job(
        "JobAAAAAAA1",
        state="completed",
        messages=["Import complete"],
        error=None,
        outcomes={claimed[0].id: (states.CREATED, []), claimed[1].id: (states.REJECTED, rejection)},
    )
    assert store.pending_jobs(SERVER) == []
    records = store.batch_records(batch)
    assert [(r.state, r.errors) for r in records] == [
        (states.CREATED, []),
        (states.REJECTED, rejection),
    ]
    assert [job.messages for job in store.batch_jobs(batch)] == [["Import complete"]]
    assert store.imported_event_uids(SERVER, [r.event_uid for r in records]) == {
        records[0].event_uid
    }


def test_retry_cancel_and_forget(store):
    batch = batch_of(store, 3)
    claimed = store.claim_for_sending(SERVER, 1)
    store.finish_records({claimed[0].id: (states.FAILED, [{"code": "JOB_FAILED"}])})
    assert store.cancel_queued(batch) == 2
    assert store.forget_batch(batch) == 3
    with pytest.raises(UnknownBatch):
        store.batch(batch)

    pending = batch_of(store, 1)
    assert store.forget_batch(pending) == 0, "a batch with pending records must be kept"
    failed = store.claim_for_sending(SERVER, 1)
    store.finish_records({failed[0].id: (states.FAILED, [])})
    assert store.retry_failed(pending) == 1
    assert store.batch(pending).counts == {states.QUEUED: 1}


def test_purge_drops_patient_values_but_keeps_identity(store):
    batch = batch_of(store, 1)
    claimed = store.claim_for_sending(SERVER, 1)
    store.finish_records({claimed[0].id: (states.CREATED, [])})
    assert store.purge_payloads(finished_before=float("inf")) == 1
    record = store.batch_records(batch)[0]
    assert record.event is None
    assert store.event_uid_for_identity(SERVER, "identity-0") == record.event_uid


def test_identity_lookup_ignores_rejected_records_and_other_servers(store):
    store.create_batch(
        server=SERVER,
        program="p",
        stage="s",
        source="a.csv",
        records=[NewRecord(2, {"event": "Aaaaaaaaaa1"}, {}, "same", states.REJECTED)],
    )
    assert store.event_uid_for_identity(SERVER, "same") is None
    store.create_batch(
        server="https://other.example/",
        program="p",
        stage="s",
        source="b.csv",
        records=[NewRecord(2, {"event": "Bbbbbbbbbb1"}, {}, "same")],
    )
    assert store.event_uid_for_identity(SERVER, "same") is None
    assert store.event_uid_for_identity("https://other.example/", "same") == "Bbbbbbbbbb1"


def test_install_secret_is_stable(store):
    assert store.install_secret("k") == store.install_secret("k")
    assert len(store.install_secret("k")) == 32


def test_per_record_and_per_tick_queries_never_scan_the_records_table(store):
    """What the service runs for every record, job or progress update finds its rows through an
    index or the batch counters: a large batch makes each of these no slower (issue 14)."""
    earlier = batch_of(store, 50)
    batch = batch_of(store, 300)
    store.finish_records({r.id: (states.CREATED, []) for r in store.claim_for_sending(SERVER, 50)})
    statements: list[str] = []
    store._connection.set_trace_callback(statements.append)
    claimed = store.claim_for_sending(SERVER, 100)
    assert {record.batch_id for record in claimed} == {batch}
    store.record_job(
        job_id="JobAAAAAAA1", server=SERVER, record_ids=[r.id for r in claimed], submitted_at=1.0
    )
    store.pending_jobs(SERVER)
    imported = store.job_records("JobAAAAAAA1")
    store.finish_job(
        "JobAAAAAAA1",
        state="completed",
        messages=[],
        error=None,
        outcomes={record.id: (states.CREATED, []) for record in imported},
    )
    store.batch(batch)
    store.pending_count(SERVER)
    store.imported_event_uids(SERVER, [record.event_uid for record in imported])
    store.event_uid_for_identity(SERVER, "identity-7")
    store.first_row_with_identity(batch, "identity-7")
    store.unclaim([claimed[0].id])
    pages = list(store.iter_batch_records(batch, page=120))
    store._connection.set_trace_callback(None)
    assert [record.row for record in pages] == list(range(2, 302))

    plans = {
        statement: [row[3] for row in store._connection.execute(f"EXPLAIN QUERY PLAN {statement}")]
        for statement in statements
        if statement.split()[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE")
    }
    assert len(plans) > 10
    for statement, plan in plans.items():
        for step in plan:
            assert not step.startswith(("SCAN records", "SCAN r ", "SCAN jobs")), (statement, plan)
            assert "TEMP B-TREE FOR ORDER BY" not in step, (statement, plan)
            # Every record of a state, or of a batch, is as bad as a scan for a large batch.
            assert "records_by_state" not in step, (statement, plan)
            assert "records_by_batch (batch_id=?)" not in step, (statement, plan)
    assert store.batch(batch).counts == {states.CREATED: 100, states.QUEUED: 200}
    assert store.batch(earlier).counts == {states.CREATED: 50}


def test_a_store_of_the_first_schema_is_upgraded_in_place(tmp_path):
    path = tmp_path / "uploads.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.execute("INSERT INTO batches VALUES ('Batch000001', ?, 'p', 's', 'a.csv', 1.0)", (SERVER,))
    old.executemany(
        "INSERT INTO records (batch_id, row, event_uid, fields, state, updated_at)"
        " VALUES ('Batch000001', ?, ?, '{}', ?, 1.0)",
        [(2, "Evt00000001", states.CREATED), (3, "Evt00000002", states.QUEUED)],
    )
    old.commit()
    old.close()
    with Store(path) as upgraded:
        summary = upgraded.batch("Batch000001")
        assert summary.counts == {states.CREATED: 1, states.QUEUED: 1}
        assert summary.finished is False and summary.reading == states.READ
        assert [r.event_uid for r in upgraded.claim_for_sending(SERVER, 5)] == ["Evt00000002"]
        assert upgraded.pending_count() == 1


def test_a_batch_being_read_is_unfinished_until_its_reading_ends(store):
    batch = store.open_batch(server=SERVER, program="p", stage="s", source="a.csv")
    store.add_records(batch, new_records(2))
    claimed = store.claim_for_sending(SERVER, 5)
    store.finish_records({record.id: (states.CREATED, []) for record in claimed})
    summary = store.batch(batch)
    assert summary.pending == 0 and not summary.finished
    assert store.forget_batch(batch) == 0, "a batch still being read must be kept"
    assert store.first_row_with_identity(batch, "identity-1") == 3
    store.end_reading(batch, complete=True)
    assert store.batch(batch).finished


def test_reading_left_open_by_a_dead_process_is_marked_stopped(store):
    batch = store.open_batch(server=SERVER, program="p", stage="s", source="a.csv")
    store.add_records(batch, new_records(1))
    assert store.stop_abandoned_reading() == 1
    assert store.batch(batch).reading == states.READING_STOPPED
    assert store.batch(batch).to_json()["reading"] == states.READING_STOPPED
