"""Asynchronous imports on the sandbox: notifications, reports, FIFO queue, failures, restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from dhims2.sandbox import Knobs, Sandbox

AGE = "upqhIcii1iC"
NOT_AGE = "value_not_zero_or_positive_integer"
NOTIFICATION_KEYS = {"uid", "level", "category", "time", "message", "completed", "id"}
STAGES_2_41 = [
    "Tracker import started",
    "Loading file resource",
    "Loading file content",
    "Running PreHeat",
    "Calculating Payload Size",
    "Running PreProcess",
    "Running Validation",
    "Running Rule Engine",
    "Running Rule Engine Validation",
    "Commit Transaction",
    "PostCommit",
]


def poll(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The first truthy result of check(), or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def submit(client, events: list[dict[str, Any]], **params: str) -> str:
    response = client.import_events(events, **params)
    assert response.status_code == 200, response.text
    return response.json()["response"]["id"]


def notifications(client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/tracker/jobs/{job_id}")
    assert response.status_code == 200
    return response.json()


def test_an_async_import_answers_tracker_job_added(sandbox, sandbox_client, inpatient_event):
    body = sandbox_client.import_events([inpatient_event()]).json()
    job_id = body["response"]["id"]
    assert body == {
        "httpStatus": "OK",
        "httpStatusCode": 200,
        "status": "OK",
        "message": "Tracker job added",
        "response": {"id": job_id, "location": f"{sandbox.base_url}/api/tracker/jobs/{job_id}"},
    }


def test_notifications_are_newest_first_and_end_with_the_outcome(
    sandbox, sandbox_client, inpatient_event
):
    job_id = submit(
        sandbox_client, [inpatient_event(), inpatient_event(values={AGE: "x"})], atomicMode="OBJECT"
    )
    assert sandbox.wait_idle(5)
    listed = notifications(sandbox_client, job_id)
    assert all(set(item) == NOTIFICATION_KEYS for item in listed)
    assert all(
        item["category"] == "TRACKER_IMPORT_JOB" and item["uid"] == item["id"] for item in listed
    )
    assert [item["message"] for item in reversed(listed)] == [
        *STAGES_2_41,
        "Import complete with status OK, 1 created, 0 updated, 0 deleted, 1 ignored",
    ]
    assert [item["completed"] for item in listed] == [True] + [False] * len(STAGES_2_41)
    assert listed[0]["level"] == "INFO"
    times = [item["time"] for item in listed]
    assert times == sorted(times, reverse=True)


def test_the_report_has_the_reference_shape(sandbox, sandbox_client, inpatient_event):
    bad = inpatient_event(values={AGE: "x"})
    job_id = submit(sandbox_client, [inpatient_event(), bad], atomicMode="OBJECT")
    report = sandbox_client.wait_for_report(job_id)
    assert report["status"] == "OK"
    assert report["stats"] == {"created": 1, "updated": 0, "deleted": 0, "ignored": 1, "total": 2}
    assert report["validationReport"] == {
        "errorReports": [
            {
                "message": f"DataElement `{AGE}` is not valid: `{NOT_AGE}`",
                "errorCode": "E1302",
                "trackerType": "EVENT",
                "uid": bad["event"],
                "args": [AGE, NOT_AGE],
            }
        ],
        "warningReports": [],
    }
    assert report["bundleReport"]["status"] == "OK"
    assert report["bundleReport"]["typeReportMap"]["EVENT"]["trackerType"] == "EVENT"
    full = sandbox_client.wait_for_report(job_id, reportMode="FULL")
    assert len(full["bundleReport"]["typeReportMap"]["EVENT"]["objectReports"]) == 1


def test_a_rejected_import_completes_at_level_error(sandbox, sandbox_client, inpatient_event):
    job_id = submit(sandbox_client, [inpatient_event(occurredAt=None)])
    assert sandbox.wait_idle(5)
    last = notifications(sandbox_client, job_id)[0]
    assert (last["level"], last["completed"]) == ("ERROR", True)
    assert (
        last["message"]
        == "Import complete with status ERROR, 0 created, 0 updated, 0 deleted, 1 ignored"
    )
    report = sandbox_client.wait_for_report(job_id)
    assert report["status"] == "ERROR" and "bundleReport" not in report
    assert sandbox.stored_events() == []


def test_an_unknown_job_has_no_notifications_and_no_report(sandbox_client):
    assert notifications(sandbox_client, "Unknownjob1") == []
    response = sandbox_client.get("/api/tracker/jobs/Unknownjob1/report")
    assert response.status_code == 404
    assert response.json() == {
        "httpStatus": "Not Found",
        "httpStatusCode": 404,
        "status": "ERROR",
        "message": "Summary for job Unknownjob1 does not exist",
        "errorCode": "E1005",
    }


@pytest.mark.parametrize("path", ["/api/tracker/jobs/not-a-uid", "/api/tracker/jobs/x/report"])
def test_a_malformed_job_id_is_a_400(sandbox_client, path):
    assert sandbox_client.get(path).status_code == 400


def test_a_bad_report_mode_is_a_400(sandbox_client):
    response = sandbox_client.get(
        "/api/tracker/jobs/Unknownjob1/report", params={"reportMode": "SOME"}
    )
    assert response.status_code == 400
    assert "reportMode" in response.json()["message"]


def test_jobs_run_one_at_a_time_in_arrival_order(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(job_overhead_seconds=0.15)) as sandbox:
        client = sandbox_client_for(sandbox)
        event = inpatient_event()
        job_ids = []
        for age in ("1", "2", "3"):
            event["dataValues"] = [{"dataElement": AGE, "value": age}]
            event["status"] = "ACTIVE"
            job_ids.append(submit(client, [event]))
        poll(lambda: notifications(client, job_ids[0]))
        # While the first runs, the others wait in the queue and show no notifications.
        assert notifications(client, job_ids[1]) == []
        assert notifications(client, job_ids[2]) == []
        assert sandbox.wait_idle(5)
        [stored] = sandbox.stored_events()
        assert stored["dataValues"][0]["value"] == "3"
        finished = [notifications(client, job_id)[0]["time"] for job_id in job_ids]
        assert finished == sorted(finished)


def test_a_queued_job_waits_for_queue_delay(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(queue_delay=0.2)) as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event()])
        assert notifications(client, job_id) == []
        assert sandbox.wait_idle(0.01) is False
        assert sandbox.wait_idle(5)
        assert notifications(client, job_id)[0]["completed"] is True


def test_a_running_job_shows_progress_before_completion(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(per_event_seconds=0.1)) as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event(), inpatient_event()])

        def validating() -> list[dict[str, Any]]:
            listed = notifications(client, job_id)
            return listed if listed and listed[0]["message"] == "Running Validation" else []

        running = poll(validating)
        assert not any(item["completed"] for item in running)
        assert client.get(f"/api/tracker/jobs/{job_id}/report").status_code == 404
        assert sandbox.wait_idle(5)


def test_the_report_can_lag_behind_the_completed_notification(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(report_delay=0.3)) as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event()])
        assert sandbox.wait_idle(5)
        assert notifications(client, job_id)[0]["completed"] is True
        early = client.get(f"/api/tracker/jobs/{job_id}/report")
        assert early.status_code == 404
        assert early.json()["errorCode"] == "E1005"
        assert client.wait_for_report(job_id)["stats"]["created"] == 1


def test_a_failed_job_reports_process_failed_and_never_a_report(
    sandbox_client_for, inpatient_event
):
    with Sandbox(knobs=Knobs(job_failure_rate=1.0)) as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event()])
        assert sandbox.wait_idle(5)
        last = notifications(client, job_id)[0]
        assert (last["level"], last["completed"]) == ("ERROR", True)
        assert last["message"].startswith("Process failed: ")
        assert client.get(f"/api/tracker/jobs/{job_id}/report").status_code == 404
        assert sandbox.stored_events() == []


def test_job_failures_follow_the_seed(sandbox_client_for, inpatient_event):
    def failures(seed: int) -> list[bool]:
        with Sandbox(knobs=Knobs(job_failure_rate=0.5, seed=seed)) as sandbox:
            client = sandbox_client_for(sandbox)
            job_ids = [submit(client, [inpatient_event()]) for _ in range(8)]
            assert sandbox.wait_idle(5)
            return [notifications(client, job_id)[0]["level"] == "ERROR" for job_id in job_ids]

    first = failures(11)
    assert first == failures(11)
    assert True in first and False in first


def test_restart_forgets_jobs_but_keeps_events_and_tokens(sandbox, sandbox_client, inpatient_event):
    job_id = submit(sandbox_client, [inpatient_event()])
    sandbox_client.wait_for_report(job_id)
    sandbox.restart()
    assert notifications(sandbox_client, job_id) == []  # the same token still works
    assert sandbox_client.get(f"/api/tracker/jobs/{job_id}/report").status_code == 404
    assert len(sandbox.stored_events()) == 1


def test_restart_drops_queued_jobs(sandbox_client_for, inpatient_event):
    with Sandbox(knobs=Knobs(queue_delay=30)) as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event()])
        sandbox.restart()
        assert sandbox.wait_idle(5)
        assert notifications(client, job_id) == []
        assert sandbox.stored_events() == []


def test_2_40_notifications_use_its_own_wording(sandbox_client_for, inpatient_event):
    with Sandbox(version="2.40.5") as sandbox:
        client = sandbox_client_for(sandbox)
        job_id = submit(client, [inpatient_event()])
        assert sandbox.wait_idle(5)
        messages = [item["message"] for item in notifications(client, job_id)]
    assert messages[-1] == "(clerk) Import:Start"
    assert messages[0].startswith("(clerk) Import:Done")
