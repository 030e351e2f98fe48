"""What DHIS2 2.41 does that a simple stand-in hides, and how the engine answers it.

Each test drives the real upload engine against the sandbox over HTTP, with the sandbox behaving
as dhis2-core 2.41 does (sources in docs/dhis2-tracker-api.md): events dropped while saving, one
import queue shared by every user and surviving restarts, jobs stuck by a restart, re-sends met
by update-only rules, lost completion notifications, and refusals that are not about the records.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from datetime import date
from typing import Any

import pytest
import requests

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import ServerError
from dhims2.dhis2.transport import RetryPolicy
from dhims2.dhis2.uids import new_uid
from dhims2.forms.metadata import PROGRAM_UID, STAGE_UID, bundled_metadata
from dhims2.forms.program import ProgramForm
from dhims2.forms.synthetic import synthetic_rows, write_csv
from dhims2.forms.validation import EventValidator
from dhims2.queue import store as states
from dhims2.queue.jobs import JobFollower
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import Store
from dhims2.sandbox import Sandbox
from dhims2.sandbox.knobs import Knobs
from dhims2.workspace.connection import load_form
from host_process import Host
from test_cli import dhims2, server_args
from test_program import (
    SYNTHETIC_ORG_UNITS,
    SYNTHETIC_PROGRAM,
    SYNTHETIC_STAGE,
    synthetic_element,
    synthetic_program,
)
from test_service import assert_each_event_stored_once, prepared_records, states_of

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "uploads.sqlite3") as opened:
        yield opened


def connect(sandbox: Sandbox) -> Dhis2Client:
    return Dhis2Client(
        sandbox.base_url, Credentials(token=sandbox.create_token()), retry=FAST_RETRY
    )


@pytest.fixture
def client(sandbox):
    with connect(sandbox) as opened:
        yield opened


def service_for(store, client, *, batch_size=10, listener=None, **follower_options):
    options = {"first_poll": 0.02, "max_poll": 0.2, "forget_after": 0.3, **follower_options}
    follower = JobFollower(client, clock=time.time, **options)
    return UploadService(
        store,
        client,
        settings=UploadSettings(batch_size=batch_size),
        follower=follower,
        listener=listener,
    )


def queue(service, count: int) -> str:
    return service.queue(prepared_records(count), program=PROGRAM_UID, stage=STAGE_UID, source="t")


def sends_of(store, batch) -> Counter:
    return Counter(record.sends for record in store.batch_records(batch))


# --- 2. events dropped while saving ------------------------------------------------------------


def test_events_dropped_while_saving_are_never_reported_created(sandbox, store, client):
    sandbox.knobs.save_drop_rate = 1.0
    service = service_for(store, client)
    batch = queue(service, 3)
    service.run(timeout=30)
    records = store.batch_records(batch)
    assert {record.state for record in records} == {states.FAILED}
    assert {record.errors[0]["code"] for record in records} == {"NOT_SAVED"}
    assert sends_of(store, batch) == {2: 3}  # sent once more, then given up
    assert sandbox.stored_events() == []


def test_an_event_dropped_once_is_sent_again_and_created(sandbox, store, client):
    sandbox.knobs.save_drop_rate = 1.0
    service = service_for(store, client)
    batch = queue(service, 4)
    service.run(wait=False)
    assert sandbox.wait_idle(5)
    sandbox.knobs.save_drop_rate = 0.0
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 4}
    assert sends_of(store, batch) == {2: 4}
    assert_each_event_stored_once(sandbox, store, batch)


# --- 3. one import queue for the whole server --------------------------------------------------


def test_a_long_wait_behind_other_users_is_shown_and_never_resent(sandbox, store, client):
    heard: list[dict[str, Any]] = []
    sandbox.submit_other_users_job(1.5)
    service = service_for(store, client, listener=heard.append)
    batch = queue(service, 5)
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 5}
    assert sends_of(store, batch) == {1: 5}
    waiting = [
        message["messages"][0]
        for message in heard
        if message["type"] == "job.progress" and "queue" in message["messages"][0]
    ]
    assert waiting[0] == (
        "waiting in DHIS2's queue for less than a minute (one import runs at a time for all users)"
    )
    # Each change of the wait is told once, not at every poll.
    assert len(waiting) == len(set(waiting))


def test_jobs_queued_at_a_restart_run_afterwards_and_are_not_resent(sandbox, store, client):
    sandbox.knobs.queue_delay = 0.8
    service = service_for(store, client, batch_size=3)
    batch = queue(service, 9)
    service.run(wait=False)
    sandbox.restart()
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 9}
    assert sends_of(store, batch) == {1: 9}
    assert_each_event_stored_once(sandbox, store, batch)


def test_a_job_stuck_by_a_restart_is_resent_once_and_waits_for_housekeeping(sandbox, store):
    sandbox.knobs.job_overhead_seconds = 30
    sandbox.knobs.stuck_job_seconds = 1.5
    restarted = []

    def restart_once_running(message: dict[str, Any]) -> None:
        running = message["type"] == "job.progress" and "Tracker import started" in message.get(
            "messages", []
        )
        if running and not restarted:
            restarted.append(True)
            sandbox.knobs.job_overhead_seconds = 0
            sandbox.restart()

    with connect(sandbox) as client:
        service = service_for(store, client, listener=restart_once_running)
        batch = queue(service, 4)
        service.run(timeout=30)
    assert restarted
    assert states_of(store, batch) == {states.CREATED: 4}
    assert sends_of(store, batch) == {2: 4}
    assert_each_event_stored_once(sandbox, store, batch)


def test_a_job_that_ran_while_its_traces_were_lost_is_read_back_not_resent(sandbox, store, client):
    service = service_for(store, client)
    batch = queue(service, 6)
    service.run(wait=False)
    assert sandbox.wait_idle(5)
    sandbox.restart()  # the report and notifications go; the events stay
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 6}
    assert sends_of(store, batch) == {1: 6}
    assert sandbox.request_count("POST", "/api/tracker") == 1


def test_a_job_cut_off_before_its_host_saw_it_run_is_resent_once_housekeeping_fails_it(
    sandbox, store, client
):
    sandbox.knobs.job_overhead_seconds = 30
    sandbox.knobs.stuck_job_seconds = 1.0
    service = service_for(store, client)
    batch = queue(service, 3)
    service.run(wait=False)  # sent, never polled: nobody saw it start
    deadline = time.monotonic() + 5
    while not sandbox.request_count("POST", "/api/tracker") or sandbox.wait_idle(0):
        assert time.monotonic() < deadline
    time.sleep(0.1)
    sandbox.knobs.job_overhead_seconds = 0
    sandbox.restart()
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 3}
    assert sends_of(store, batch) == {2: 3}
    assert_each_event_stored_once(sandbox, store, batch)


def test_sandbox_job_configuration_outlives_a_restart(sandbox, sandbox_client, inpatient_event):
    # HibernateJobConfigurationStore: the row survives; a RUNNING row cut off by a restart is
    # failed by housekeeping (lastexecutedstatus FAILED).
    sandbox.knobs.job_overhead_seconds = 30
    sandbox.knobs.stuck_job_seconds = 0.3
    job_id = sandbox_client.import_events([inpatient_event()]).json()["response"]["id"]

    def status() -> tuple[str, str]:
        row = sandbox_client.get(f"/api/jobConfigurations/{job_id}").json()
        return row["jobStatus"], row["lastExecutedStatus"]

    deadline = time.monotonic() + 5
    while status()[0] != "RUNNING":
        assert time.monotonic() < deadline
    sandbox.restart()
    assert status() == ("RUNNING", "NOT_STARTED")
    time.sleep(0.4)
    assert status() == ("DISABLED", "FAILED")
    assert sandbox_client.get("/api/jobConfigurations/AAAAAAAAAAA").status_code == 404


# --- 4. a re-send met by update-only rules ---------------------------------------------------


# A records clerk's authorities: no ALL and no F_EDIT_EXPIRED, so DHIS2's expiry rules apply.
CLERK_AUTHORITIES = ["M_dhis-web-capture"]


def metadata_with(
    stage: dict[str, Any] | None = None,
    program: dict[str, Any] | None = None,
    authorities: list[str] = CLERK_AUTHORITIES,
):
    metadata = copy.deepcopy(bundled_metadata())
    [in_patient] = [p for p in metadata["programs"] if p["id"] == PROGRAM_UID]
    in_patient.update(program or {})
    in_patient["programStages"][0].update(stage or {})
    metadata["users"][0]["authorities"] = authorities
    return metadata


def first_send_with_lost_answer(sandbox, service, count, *, deleted=False, **event_changes):
    """Queue records, and import them the way a first POST whose answer was lost would."""
    batch = queue(service, count)
    payloads = [
        {**record.payload, **event_changes} for record in service.store.batch_records(batch)
    ]
    with connect(sandbox) as other:
        other.submit_import(payloads)
        assert sandbox.wait_idle(5)
        if deleted:
            other.submit_import(payloads, import_strategy="DELETE")
            assert sandbox.wait_idle(5)
    return batch


@pytest.mark.parametrize(
    ("stage", "program", "event_changes", "deleted", "code"),
    [
        ({"blockEntryForm": True}, None, {}, False, "E1326"),
        (
            None,
            {"completeEventsExpiryDays": 1},
            {"completedAt": "2025-03-06T10:00:00"},
            False,
            "E1043",
        ),
        (None, None, {}, True, "E1082"),
    ],
)
def test_a_resend_refused_by_an_update_only_rule_ends_created(
    store, stage, program, event_changes, deleted, code
):
    with Sandbox(metadata=metadata_with(stage, program)) as sandbox, connect(sandbox) as client:
        service = service_for(store, client)
        batch = first_send_with_lost_answer(sandbox, service, 3, deleted=deleted, **event_changes)
        service.run(timeout=30)
        jobs = store.batch_jobs(batch)
        report = client.job_report(jobs[0].id)
    assert {error["errorCode"] for error in report["validationReport"]["errorReports"]} == {code}
    assert states_of(store, batch) == {states.CREATED: 3}


def test_an_update_of_our_own_earlier_upload_blocked_after_completion_stays_rejected(store):
    metadata = metadata_with({"blockEntryForm": True})
    with Sandbox(metadata=metadata) as sandbox, connect(sandbox) as client:
        service = service_for(store, client)
        first = queue(service, 2)
        service.run(timeout=30)
        again = queue(service, 2)  # the same patients: the same events, updated
        service.run(timeout=30)
    assert states_of(store, first) == {states.CREATED: 2}
    assert states_of(store, again) == {states.REJECTED: 2}
    assert {r.errors[0]["code"] for r in store.batch_records(again)} == {"E1326"}


# --- 5. a completion notification that never comes ---------------------------------------------


def test_a_dropped_completion_notification_does_not_mean_polling_forever(sandbox, store, client):
    sandbox.knobs.lost_completion_rate = 1.0
    service = service_for(store, client, report_after_silence=0.3)
    batch = queue(service, 5)
    service.run(timeout=20)
    assert states_of(store, batch) == {states.CREATED: 5}
    assert sends_of(store, batch) == {1: 5}


# --- 6. refusals that are not verdicts on the records ----------------------------------------


def test_a_batch_too_large_for_a_proxy_is_split(sandbox, store, client):
    service = service_for(store, client, batch_size=8)
    batch = queue(service, 8)
    one_record = len(str(store.batch_records(batch)[0].payload))
    sandbox.knobs.max_body_bytes = one_record * 3
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 8}
    assert len(store.batch_jobs(batch)) >= 3
    assert_each_event_stored_once(sandbox, store, batch)


@pytest.mark.parametrize("status", [403, 409])
def test_a_firewall_page_or_a_scheduler_conflict_keeps_the_records_queued(
    sandbox, store, client, status
):
    sandbox.knobs.refuse_imports_status = status
    service = service_for(store, client)
    batch = queue(service, 3)
    with pytest.raises(ServerError) as raised:
        service.run(timeout=30)
    assert f"HTTP {status}" in str(raised.value)
    assert "stay queued" in str(raised.value)
    assert raised.value.retryable
    assert states_of(store, batch) == {states.QUEUED: 3}
    sandbox.knobs.refuse_imports_status = 0
    service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 3}
    assert sends_of(store, batch) == {1: 3}


# --- the sandbox's rules, straight from DHIS2 ---------------------------------------------------


def test_sandbox_blocks_updates_of_a_completed_event_when_the_stage_says_so(
    sandbox_client_for, inpatient_event
):
    # BlockEntryFormAfterCompletionValidator: UPDATE only, both stored and sent COMPLETED.
    with Sandbox(metadata=metadata_with({"blockEntryForm": True})) as sandbox:
        client = sandbox_client_for(sandbox)
        event = inpatient_event()
        assert client.import_now([event]).status_code == 200
        again = client.import_now([event], atomicMode="OBJECT").json()
        [error] = again["validationReport"]["errorReports"]
        assert (error["errorCode"], error["uid"]) == ("E1326", event["event"])
        reopened = client.import_now([{**event, "status": "ACTIVE"}]).json()
        assert reopened["validationReport"]["errorReports"] == []


def test_sandbox_refuses_changes_to_an_event_completed_too_long_ago(
    sandbox_client_for, inpatient_event
):
    # DateValidator.validateCompletionExpiryDays: the stored completion date counts.
    with Sandbox(metadata=metadata_with(program={"completeEventsExpiryDays": 2})) as sandbox:
        client = sandbox_client_for(sandbox)
        old = inpatient_event(completedAt="2025-03-06T10:00:00")
        recent = inpatient_event()
        assert client.import_now([old, recent]).status_code == 200
        again = client.import_now([old, recent], atomicMode="OBJECT").json()
        errors = again["validationReport"]["errorReports"]
        assert [(e["errorCode"], e["uid"]) for e in errors] == [("E1043", old["event"])]


def test_sandbox_refusals_before_import(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(max_body_bytes=200)) as sandbox:
        client = sandbox_client_for(sandbox)
        too_big = client.import_events([inpatient_event()])
        assert too_big.status_code == 413
        assert too_big.headers["Content-Type"].startswith("text/html")
        sandbox.knobs.max_body_bytes = 0
        sandbox.knobs.refuse_imports_status = 409
        conflict = client.import_events([inpatient_event()])
        assert conflict.status_code == 409
        assert conflict.json()["message"] == "Failed to transition job into ONCE_ASAP state."
        assert sandbox.stored_events() == []


# --- 1. a user assigned to a region captures for every facility below it -------------------

VOLTA_REGION = "VoltaReg001"
VOLTA_FACILITIES = {
    "duCDqCRlWG1": "Volta Regional Hospital",
    "Kp4wTr2mHoS": "Ho Municipal Hospital",
}
ACCRA_FACILITY = "Zq8NvB3xLeA"


def region_user_metadata() -> dict[str, Any]:
    metadata = copy.deepcopy(bundled_metadata())
    metadata["users"][0]["organisationUnits"] = [{"id": VOLTA_REGION}]
    return metadata


def test_a_region_user_uploads_for_the_facilities_below_and_only_those(tmp_path, env):
    # SecurityOwnershipValidator accepts any org unit in the user's hierarchy (isInUserHierarchy).
    rows = list(synthetic_rows(3, tag="REG"))
    for row, unit in zip(rows, [*VOLTA_FACILITIES, ACCRA_FACILITY], strict=True):
        row["orgUnit"] = unit
    path = write_csv(tmp_path / "region.csv", rows)
    with Sandbox(metadata=region_user_metadata()) as sandbox:
        result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
        stored = {event["orgUnit"] for event in sandbox.stored_events()}
    report = json.loads(result.stdout)
    states_by_row = {record["row"]: record["state"] for record in report["records"]}
    assert states_by_row == {2: "created", 3: "created", 4: "rejected"}
    [refusal] = report["records"][2]["errors"]
    assert "organisation unit" in refusal["message"]
    assert stored == set(VOLTA_FACILITIES)


def test_the_host_lists_a_region_users_facilities_by_name(env):
    with Sandbox(metadata=region_user_metadata()) as sandbox:
        host = Host(["chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/"], env)
        try:
            assert host.receive()["type"] == "hello"
            host.send(
                {
                    "id": "setup",
                    "type": "configure",
                    "server": sandbox.base_url,
                    "auth": "token",
                    "token": sandbox.create_token(),
                }
            )
            assert host.receive_until(lambda m: m.get("id") == "setup")[-1]["ok"]
            host.send(
                {"id": "p", "type": "get_program", "program": PROGRAM_UID, "stage": STAGE_UID}
            )
            reply = host.receive_until(lambda m: m.get("id") == "p")[-1]
        finally:
            host.process.kill()
            host.process.wait()
    assert reply["ok"], reply
    assert reply["org_units"] == sorted(
        ({"id": uid, "name": name} for uid, name in VOLTA_FACILITIES.items()),
        key=lambda unit: unit["name"],
    )


# --- 9. E1302 from 2.41.9 names the value type, not the data element ------------------------

AGE = "upqhIcii1iC"


def test_sandbox_2_41_9_e1302_args_are_the_value_type_and_a_sentence(
    sandbox_client_for, inpatient_event
):
    # ValidationUtils.validateValueType (2.41.9): addError(dto, E1302, valueType, error).
    with Sandbox(version="2.41.9") as sandbox:
        report = sandbox_client_for(sandbox).import_now([inpatient_event(values={AGE: "x"})])
    [error] = report.json()["validationReport"]["errorReports"]
    assert error["errorCode"] == "E1302"
    value_type = error["args"][0]
    assert error["args"] == [value_type, f"Value type is {value_type} but the value `x` is not."]
    assert AGE not in error["message"]


def test_a_2_41_9_e1302_is_still_placed_on_its_field(store):
    records = prepared_records(2)
    for item in records[1].event["dataValues"]:  # past local checks: DHIS2 judges the value
        if item["dataElement"] == AGE:
            item["value"] = "thirty"
    with Sandbox(version="2.41.9") as sandbox, connect(sandbox) as client:
        service = service_for(store, client)
        batch = service.queue(records, program=PROGRAM_UID, stage=STAGE_UID, source="t")
        service.run(timeout=30)
    rejected = [r for r in store.batch_records(batch) if r.state == states.REJECTED]
    [error] = rejected[0].errors
    assert (error["code"], error["dataElement"], error["value"]) == ("E1302", AGE, "thirty")
    assert error["field"] == "Age"


# --- polling a job keeps the node that holds its notifications ---------------------------------


@pytest.mark.parametrize("sign_in", ["token", "browser session"])
def test_a_load_balancers_stickiness_cookie_is_sent_back(sandbox, store, sign_in):
    # DefaultNotifier keeps notifications in the node's memory: a poll that lands on another
    # node sees []. The balancer's cookie must come back with every request after the first,
    # beside the DHIS2 session cookie the popup hands over.
    sandbox.balancer_cookie = "dhims2lb"
    if sign_in == "token":
        credentials = Credentials(token=sandbox.create_token())
    else:
        login = requests.post(
            f"{sandbox.base_url}/api/auth/login",
            json={"username": sandbox.username, "password": sandbox.password},
            timeout=5,
        )
        credentials = Credentials(session_cookie=login.cookies["JSESSIONID"])
    with Dhis2Client(sandbox.base_url, credentials, retry=FAST_RETRY) as client:
        service = service_for(store, client)
        batch = queue(service, 3)
        service.run(timeout=30)
    assert states_of(store, batch) == {states.CREATED: 3}
    counts = sandbox.balancer_cookie_counts()
    first_requests = 1 if sign_in == "token" else 2  # the browser's sign-in, then ours
    assert counts[False] == first_requests and counts[True] >= 3


# --- 7. program settings DHIS2 validates against, fetched and cached with the form -------------


def test_program_settings_come_with_the_form_and_are_checked_locally(store):
    metadata = metadata_with(
        {"validationStrategy": "ON_UPDATE_AND_INSERT", "blockEntryForm": True},
        {"categoryCombo": {"id": "AttrCombo01", "isDefault": False}, "completeEventsExpiryDays": 7},
    )
    with Sandbox(metadata=metadata) as sandbox, connect(sandbox) as client:
        context = load_form(client, store, PROGRAM_UID, STAGE_UID)
        cached = store.cache_get(f"program:{client.base_url}:{PROGRAM_UID}")
        [record] = prepared_records(1)
        event = {**record.event, "status": "ACTIVE"}
        event["dataValues"] = [v for v in event["dataValues"] if v["dataElement"] != AGE]
        local = EventValidator(context.form).errors(event)
        complete = {**record.event, "event": new_uid()}
        with_combo = {**event, "event": new_uid(), "attributeOptionCombo": "AttrOption1"}
        refused = client.import_now([complete, with_combo], atomic_mode="OBJECT")
    assert context.form.validation_strategy == "ON_UPDATE_AND_INSERT"
    assert context.form.needs_attribute_option_combo
    assert cached["completeEventsExpiryDays"] == 7
    assert cached["programStages"][0]["blockEntryForm"] is True
    # What DHIS2 refuses (DataRelationsValidator E1055; compulsory values on every save with
    # ON_UPDATE_AND_INSERT, E1303) is refused on this computer first.
    server_codes = {(e["uid"], e["errorCode"]) for e in refused["validationReport"]["errorReports"]}
    assert server_codes == {(complete["event"], "E1055"), (with_combo["event"], "E1303")}
    assert {"E1055", "E1303"} <= {error.code for error in local}


MONTHLY_EXPIRY = {"expiryPeriodType": "Monthly", "expiryDays": 10}


@pytest.mark.parametrize(
    ("authorities", "refused"),
    [(CLERK_AUTHORITIES, True), (["F_EDIT_EXPIRED"], False), (["ALL"], False)],
)
def test_sandbox_refuses_events_in_an_expired_period_unless_the_user_may_edit_them(
    sandbox_client_for, inpatient_event, authorities, refused
):
    # DateValidator.validateExpiryPeriodType (2.41, lines 125-158), skipped for F_EDIT_EXPIRED
    # and ALL (User.isAuthorized).
    metadata = metadata_with(program=MONTHLY_EXPIRY, authorities=authorities)
    with Sandbox(metadata=metadata) as sandbox:
        client = sandbox_client_for(sandbox)
        old = inpatient_event(occurredAt="2025-03-01")
        current = inpatient_event(occurredAt=date.today().isoformat())
        answer = client.import_now([old, current], atomicMode="OBJECT").json()
        errors = answer["validationReport"]["errorReports"]
        stored = {event["event"] for event in sandbox.stored_events()}
    assert [(e["errorCode"], e["uid"]) for e in errors] == (
        [("E1047", old["event"])] if refused else []
    )
    assert stored == ({current["event"]} if refused else {old["event"], current["event"]})


@pytest.mark.parametrize(
    ("authorities", "old_row"), [(CLERK_AUTHORITIES, "rejected"), (["F_EDIT_EXPIRED"], "created")]
)
def test_a_record_in_an_expired_period_is_refused_on_this_computer_before_it_is_sent(
    tmp_path, env, authorities, old_row
):
    rows = list(synthetic_rows(2, tag="EXP"))
    rows[1]["occurredAt"] = date.today().isoformat()
    path = write_csv(tmp_path / "expiry.csv", rows)
    with Sandbox(
        metadata=metadata_with(program=MONTHLY_EXPIRY, authorities=authorities)
    ) as sandbox:
        result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
        stored = len(sandbox.stored_events())
    report = json.loads(result.stdout)
    states_by_row = {record["row"]: record["state"] for record in report["records"]}
    assert states_by_row == {2: old_row, 3: "created"}
    assert stored == (1 if old_row == "rejected" else 2)
    if old_row == "rejected":
        [refusal] = report["records"][0]["errors"]
        assert refusal["code"] == "E1047"
        assert (
            "closed data entry" in refusal["message"]
            and rows[0]["occurredAt"] in refusal["message"]
        )


# --- 8. MULTI_TEXT: option codes separated by commas ------------------------------------------


def test_multi_text_takes_comma_separated_option_codes_and_names_the_wrong_one():
    # ValidationUtils.validateOptionSet: ValueType.splitMultiText, each part an option code.
    element = synthetic_element(
        "deMultiText", "MULTI_TEXT", options=(("FEVER", "Fever"), ("COUGH", "Cough"))
    )
    validator = EventValidator(ProgramForm.from_metadata(synthetic_program(element)))

    def errors(value: str) -> list:
        event = {
            "program": SYNTHETIC_PROGRAM,
            "programStage": SYNTHETIC_STAGE,
            "orgUnit": SYNTHETIC_ORG_UNITS[1],
            "occurredAt": "2025-03-14",
            "dataValues": [{"dataElement": "deMultiText", "value": value}],
        }
        return validator.errors(event)

    assert errors("FEVER") == [] and errors("FEVER,COUGH") == []
    [error] = errors("FEVER,SNEEZE")
    assert error.code == "E1125" and '"SNEEZE"' in error.message
    assert [e.code for e in errors("FEVER,")] == ["E1125"]
