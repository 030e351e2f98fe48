"""The upload engine against the sandbox over HTTP: every record ends created, updated or rejected
with DHIS2's reason, exactly once, whatever the server or the network does on the way."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import NotSignedIn
from dhims2.dhis2.transport import RetryPolicy
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue import store as states
from dhims2.queue.jobs import JobFollower
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import Store

FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.05)
GENDER = "fg8sMCaTOrK"


def prepared_records(count: int, *, tag: str = "S", edit=None) -> list:
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    records = []
    for index, row in enumerate(synthetic_rows(count, tag=tag)):
        if edit is not None:
            edit(index, row)
        records.append(mapper.prepare(SourceRecord(row=index + 2, fields=row)))
    return records


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "uploads.sqlite3") as opened:
        yield opened


@pytest.fixture
def client(sandbox):
    with Dhis2Client(
        sandbox.base_url, Credentials(token=sandbox.create_token()), retry=FAST_RETRY
    ) as opened:
        yield opened


def make_service(store, client, *, batch_size=10, listener=None, **follower_options):
    follower = JobFollower(
        client, first_poll=0.02, max_poll=0.2, clock=time.time, **follower_options
    )
    return UploadService(
        store,
        client,
        settings=UploadSettings(batch_size=batch_size),
        follower=follower,
        listener=listener,
    )


def upload(service, records, **run_options) -> str:
    batch = service.queue(records, program=PROGRAM_UID, stage=STAGE_UID, source="test.csv")
    service.run(timeout=run_options.pop("timeout", 60), **run_options)
    return batch


def states_of(store, batch) -> Counter:
    return Counter(record.state for record in store.batch_records(batch))


def assert_each_event_stored_once(sandbox, store, batch) -> None:
    stored = Counter(event["event"] for event in sandbox.stored_events())
    assert all(count == 1 for count in stored.values())
    accepted = {
        record.event_uid
        for record in store.batch_records(batch)
        if record.state in (states.CREATED, states.UPDATED)
    }
    assert accepted == set(stored)


def test_all_records_created_with_the_values_sent(sandbox, store, client):
    records = prepared_records(25)
    batch = upload(make_service(store, client), records)
    assert states_of(store, batch) == {states.CREATED: 25}
    assert_each_event_stored_once(sandbox, store, batch)
    by_uid = {event["event"]: event for event in sandbox.stored_events()}
    for record in store.batch_records(batch):
        stored = by_uid[record.event_uid]
        sent = {item["dataElement"]: item["value"] for item in record.event["dataValues"]}
        kept = {item["dataElement"]: item["value"] for item in stored["dataValues"]}
        assert kept == sent
        assert stored["occurredAt"].startswith(record.event["occurredAt"])
    assert {job.state for job in store.batch_jobs(batch)} == {"completed"}
    assert all(job.messages for job in store.batch_jobs(batch))


def test_reupload_of_the_same_records_updates_and_creates_nothing(sandbox, store, client):
    service = make_service(store, client)
    first = upload(service, prepared_records(12))
    second = upload(service, prepared_records(12))
    assert states_of(store, first) == {states.CREATED: 12}
    assert states_of(store, second) == {states.UPDATED: 12}
    assert len(sandbox.stored_events()) == 12
    first_uids = [record.event_uid for record in store.batch_records(first)]
    assert [record.event_uid for record in store.batch_records(second)] == first_uids


def test_same_patient_twice_in_one_file_is_sent_once(sandbox, store, client):
    def duplicate_first_patient(index, row):
        if index == 3:
            row.update(next(synthetic_rows(1, tag="S")))

    batch = upload(make_service(store, client), prepared_records(5, edit=duplicate_first_patient))
    records = store.batch_records(batch)
    assert [record.state for record in records].count(states.REJECTED) == 1
    duplicate = next(record for record in records if record.state == states.REJECTED)
    assert duplicate.row == 5
    assert duplicate.errors[0]["code"] == "DUPLICATE_RECORD"
    assert "row 2" in duplicate.errors[0]["message"]
    assert len(sandbox.stored_events()) == 4


def test_server_rejections_are_mapped_to_rows_and_fields(sandbox, store, client):
    records = prepared_records(6)
    # Bypass local validation so DHIS2 itself judges the bad value.
    bad = records[2]
    for item in bad.event["dataValues"]:
        if item["dataElement"] == GENDER:
            item["value"] = "Malee"
    batch = upload(make_service(store, client), records)
    assert states_of(store, batch) == {states.CREATED: 5, states.REJECTED: 1}
    rejected = next(r for r in store.batch_records(batch) if r.state == states.REJECTED)
    assert rejected.row == bad.row
    [error] = rejected.errors
    assert error["code"] == "E1125"
    assert error["dataElement"] == GENDER
    assert error["field"] == "Gender (morbidity/mortality)"
    assert error["value"] == "Malee"
    assert error["source"] == "dhis2"
    assert len(sandbox.stored_events()) == 5


def test_locally_invalid_records_are_never_sent(sandbox, store, client):
    def break_gender(index, row):
        if index == 1:
            row["Gender (morbidity/mortality)"] = "Malee"

    batch = upload(make_service(store, client), prepared_records(4, edit=break_gender))
    rejected = [r for r in store.batch_records(batch) if r.state == states.REJECTED]
    assert [r.row for r in rejected] == [3]
    assert rejected[0].errors[0]["source"] == "local"
    assert rejected[0].event_uid not in {e["event"] for e in sandbox.stored_events()}
    assert len(sandbox.stored_events()) == 3


def test_jobs_queued_behind_each_other_all_finish(sandbox, store, client):
    sandbox.knobs.queue_delay = 0.05
    sandbox.knobs.per_event_seconds = 0.002
    batch = upload(make_service(store, client, batch_size=4), prepared_records(30))
    assert states_of(store, batch) == {states.CREATED: 30}
    assert len(store.batch_jobs(batch)) == 8
    assert_each_event_stored_once(sandbox, store, batch)


def test_report_arriving_late_is_waited_for(sandbox, store, client):
    sandbox.knobs.report_delay = 0.3
    batch = upload(make_service(store, client), prepared_records(10))
    assert states_of(store, batch) == {states.CREATED: 10}


def test_job_failing_with_an_exception_is_resent_then_failed_with_its_message(
    sandbox, store, client
):
    sandbox.knobs.job_failure_rate = 1.0
    batch = upload(make_service(store, client, report_grace=0.2), prepared_records(3))
    records = store.batch_records(batch)
    assert {record.state for record in records} == {states.FAILED}
    assert all(record.sends == UploadSettings().max_sends for record in records)
    assert "Process failed" in records[0].errors[0]["message"]
    assert sandbox.stored_events() == []

    sandbox.knobs.job_failure_rate = 0.0
    service = make_service(store, client)
    assert store.retry_failed(batch) == 3
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 3}


def test_5xx_and_dropped_connections_lose_and_duplicate_nothing(sandbox, store, client):
    sandbox.knobs.seed = 7
    sandbox.knobs.error_rate = 0.1
    sandbox.knobs.drop_before_rate = 0.1
    sandbox.knobs.drop_after_rate = 0.1
    batch = upload(make_service(store, client, batch_size=5), prepared_records(60))
    assert states_of(store, batch) == {states.CREATED: 60}
    assert len(sandbox.stored_events()) == 60
    assert_each_event_stored_once(sandbox, store, batch)


def test_server_restart_with_jobs_queued_sends_nothing_twice(sandbox, store, client):
    sandbox.knobs.queue_delay = 0.3
    service = make_service(store, client, batch_size=5, forget_after=1.0)
    batch = service.queue(prepared_records(10), program=PROGRAM_UID, stage=STAGE_UID, source="t")
    service.run(wait=False)
    assert states_of(store, batch) == {states.IMPORTING: 10}
    sandbox.restart()
    sandbox.knobs.queue_delay = 0.0
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 10}
    assert {record.sends for record in store.batch_records(batch)} == {1}
    assert_each_event_stored_once(sandbox, store, batch)


def test_expired_session_stops_the_run_and_keeps_the_records(sandbox, store):
    with Dhis2Client(
        sandbox.base_url,
        Credentials(session_cookie=sandbox_session(sandbox)),
        retry=FAST_RETRY,
    ) as session_client:
        service = make_service(store, session_client)
        batch = service.queue(prepared_records(4), program=PROGRAM_UID, stage=STAGE_UID, source="t")
        session_client.server_info()
        sandbox.expire_sessions()
        with pytest.raises(NotSignedIn):
            service.run(timeout=30)
    assert states_of(store, batch) == {states.QUEUED: 4}
    assert sandbox.stored_events() == []

    with Dhis2Client(
        sandbox.base_url, Credentials(session_cookie=sandbox_session(sandbox)), retry=FAST_RETRY
    ) as signed_in_again:
        make_service(store, signed_in_again).run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 4}


def test_a_run_that_stops_waiting_leaves_jobs_importing_for_the_next_run(sandbox, store, client):
    sandbox.knobs.job_overhead_seconds = 0.5
    service = make_service(store, client)
    batch = upload(service, prepared_records(5), timeout=0.1)
    assert states_of(store, batch) == {states.IMPORTING: 5}
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 5}


def test_cancel_withdraws_only_records_not_yet_sent(sandbox, store, client):
    service = make_service(store, client)
    batch = service.queue(prepared_records(4), program=PROGRAM_UID, stage=STAGE_UID, source="t")
    assert store.cancel_queued(batch) == 4
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CANCELLED: 4}
    assert sandbox.stored_events() == []


def test_listener_hears_every_record_reach_its_outcome(sandbox, store, client):
    heard = []
    lock = threading.Lock()

    def listener(message):
        with lock:
            heard.append(message)

    batch = upload(make_service(store, client, listener=listener), prepared_records(7))
    final = {m["row"]: m["state"] for m in heard if m["type"] == "record.state"}
    assert final == {row: states.CREATED for row in range(2, 9)}
    progress = [m for m in heard if m["type"] == "batch.progress" and m["batch"] == batch]
    assert progress[-1]["created"] == 7 and progress[-1]["pending"] == 0
    assert any(m["type"] == "job.progress" and m["messages"] for m in heard)


def test_servers_without_the_tracker_api_use_the_legacy_import(store):
    from dhims2.sandbox import Sandbox

    with (
        Sandbox(version="2.35.0") as old_server,
        Dhis2Client(
            old_server.base_url, Credentials(token=old_server.create_token()), retry=FAST_RETRY
        ) as old_client,
    ):
        batch = upload(make_service(store, old_client), prepared_records(6))
        assert states_of(store, batch) == {states.CREATED: 6}
        assert len(old_server.stored_events()) == 6


def sandbox_session(sandbox) -> str:
    import requests

    answer = requests.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=5,
    )
    answer.raise_for_status()
    return answer.cookies["JSESSIONID"]


def wait_for_a_job_while_reading(sandbox) -> None:
    """Holds a source's next rows until DHIS2 has received a job."""
    deadline = time.monotonic() + 20
    while sandbox.request_count("POST", "/api/tracker") == 0:
        assert time.monotonic() < deadline, "no job was sent while the file was read"
        time.sleep(0.01)


def test_the_first_job_leaves_before_the_last_row_is_read(sandbox, store, client):
    """queue_and_send stores the records a chunk at a time while sending (issue 14): a source
    that gives its last rows only once DHIS2 has received a job proves the first one left
    while the file was still being read, and the batch never looked finished meanwhile."""
    records = prepared_records(60)
    seen_while_reading: list[tuple[int, bool]] = []
    batch_ids: list[str] = []

    def slow_source():
        yield from records[:35]
        wait_for_a_job_while_reading(sandbox)
        summary = store.batch(batch_ids[0])
        seen_while_reading.append((summary.total, summary.finished))
        yield from records[35:]

    service = make_service(store, client)
    batch = service.queue_and_send(
        slow_source(),
        program=PROGRAM_UID,
        stage=STAGE_UID,
        source="test.csv",
        timeout=60,
        on_batch=batch_ids.append,
    )
    assert batch_ids == [batch]
    [(stored_then, finished_then)] = seen_while_reading
    assert 10 <= stored_then <= 35 and finished_then is False
    assert states_of(store, batch) == {states.CREATED: 60}
    assert store.batch(batch).finished and store.batch(batch).reading == states.READ
    assert_each_event_stored_once(sandbox, store, batch)


def test_rows_doubled_across_stored_chunks_are_still_refused(sandbox, store, client):
    def same_patient_as_row_two(index, row):
        if index == 45:  # stored in the second chunk; row 2 was committed in the first
            row.update(next(synthetic_rows(1, tag="S")))

    records = prepared_records(50, edit=same_patient_as_row_two)
    service = make_service(store, client)
    batch = service.queue_and_send(
        iter(records), program=PROGRAM_UID, stage=STAGE_UID, source="test.csv", timeout=60
    )
    doubled = [r for r in store.batch_records(batch) if r.state == states.REJECTED]
    assert [(r.row, r.errors[0]["code"]) for r in doubled] == [(47, "DUPLICATE_RECORD")]
    assert "row 2" in doubled[0].errors[0]["message"]
    assert states_of(store, batch)[states.CREATED] == 49


def test_a_reading_error_stops_sending_and_cancels_what_was_not_sent(sandbox, store, client):
    from dhims2.sheets.source import InputError

    records = prepared_records(1030)

    def broken_source():
        yield from records[:1020]
        wait_for_a_job_while_reading(sandbox)
        raise InputError("test.csv, line 27: holds binary data, not text")

    service = make_service(store, client)
    batch_ids: list[str] = []
    with pytest.raises(InputError, match="line 27"):
        service.queue_and_send(
            broken_source(),
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="test.csv",
            timeout=60,
            on_batch=batch_ids.append,
        )
    summary = store.batch(batch_ids[0])
    assert summary.reading == states.READING_STOPPED
    # The first chunk (one job of 10) and four of 250 were committed; the unfinished one never was.
    assert summary.total == 1010 and summary.counts.get(states.QUEUED, 0) == 0
    sent = summary.counts.get(states.CREATED, 0) + summary.counts.get(states.IMPORTING, 0)
    assert sent >= 10 and sent + summary.counts[states.CANCELLED] == 1010
    assert len(sandbox.stored_events()) <= sent
