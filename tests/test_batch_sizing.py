"""Job sizes fitted to the server: the cost model, its bounds, what is remembered between runs,
and the upload engine learning a real sandbox's job costs from DHIS2's notification times."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.transport import RetryPolicy
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue import store as states
from dhims2.queue.batch_sizing import (
    FIRST_SIZE,
    NOTHING,
    PROBE_LIMIT,
    BatchSizer,
    JobCost,
    JobCostFile,
    fit_job_cost,
    size_for,
)
from dhims2.queue.jobs import JobFollower, server_busy_seconds
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import Store
from dhims2.sandbox import Knobs, Sandbox


def test_the_fit_recovers_fixed_and_per_event_costs():
    samples = [(n, 0.3 + 0.005 * n) for n in (100, 200, 400, 800)]
    cost = fit_job_cost(samples)
    assert cost is not None
    assert (cost.fixed_seconds, cost.per_event_seconds) == pytest.approx((0.3, 0.005))
    assert cost.seconds(1000) == pytest.approx(5.3)


def test_one_size_alone_cannot_tell_the_two_costs_apart():
    assert fit_job_cost([]) is None
    assert fit_job_cost([(100, 0.8), (100, 0.9)]) is None


def test_noise_never_makes_a_cost_negative():
    falling = fit_job_cost([(100, 1.0), (200, 0.9)])
    assert falling == JobCost(pytest.approx(0.95), 0.0)
    steep = fit_job_cost([(100, 0.1), (200, 0.5)])
    assert steep is not None and steep.fixed_seconds == 0.0 and steep.per_event_seconds > 0


@pytest.mark.parametrize(
    ("server", "client", "remaining", "size"),
    [
        # Two jobs of 600 beat three of 400 by 4.5%: more than the 2% allowed.
        (JobCost(0.3, 0.005), NOTHING, 1200, 600),
        # 0.9 s of client time nothing overlaps: 4 jobs of 300 are within 2% of 3 of 400.
        (JobCost(0.3, 0.005), JobCost(0.3, 0.002), 1200, 300),
        (JobCost(0.3, 0.005), JobCost(0.3, 0.002), 150, 150),
        (JobCost(2.0, 0.001), JobCost(0.3, 0.002), 1200, 600),
        # Cheap jobs: as small as possible, but each runs at least a second (122 x 8 ms).
        (JobCost(0.03, 0.008), JobCost(0.3, 0.002), 1200, 122),
        (JobCost(0.0, 0.008), NOTHING, 1200, 134),  # 9 jobs: none of them a remnant
        # A slow link makes sending the bottleneck: jobs small enough to keep the server busy.
        (JobCost(0.3, 0.005), JobCost(0.3, 0.0106), 1200, 172),
        (JobCost(0.0001, 0.0001), NOTHING, 50, 50),
        (JobCost(0.01, 0.0), NOTHING, 5, 5),
    ],
)
def test_the_size_is_the_smallest_near_the_best_predicted_time(server, client, remaining, size):
    assert size_for(server, client, remaining=remaining) == size


def test_no_job_is_predicted_to_run_over_30_seconds():
    size = size_for(JobCost(1.0, 0.1), remaining=10_000)
    assert JobCost(1.0, 0.1).seconds(size) <= 30


def test_a_refused_size_bounds_the_choice():
    assert size_for(JobCost(0.3, 0.005), remaining=1200, limit=200) == 200
    assert size_for(JobCost(0.3, 0.005), remaining=1200, limit=5) == 5


def test_probing_doubles_until_two_sizes_are_measured_then_fits():
    sizer = BatchSizer()
    sizes = []
    for _ in range(4):
        sizes.append(sizer.next_size(5000))
        sizer.sent(sizes[-1])
    assert sizes == [FIRST_SIZE, 2 * FIRST_SIZE, PROBE_LIMIT, PROBE_LIMIT]
    assert sizer.describe(5000)["how"] == "probing"
    sizer.finished(100, 0.8)
    assert sizer.next_size(5000) == 800  # doubled; 800 x 8 ms stays far below 30 s
    sizer.finished(200, 1.3)
    assert sizer.describe(1200) == {
        "size": 600,
        "how": "measured",
        "seconds_per_job": pytest.approx(0.3),
        "seconds_per_event": pytest.approx(0.005),
    }


def test_a_slow_first_job_stops_the_doubling_at_the_longest_job_allowed():
    sizer = BatchSizer()
    sizer.sent(100)
    sizer.finished(100, 20.0)
    assert sizer.next_size(5000) == 150  # 30 s at 0.2 s per event


def test_a_refused_body_halves_every_later_job_configured_or_measured():
    measured = BatchSizer(jobs=[(100, 0.8), (200, 1.3)])
    measured.refused_as_too_large(1000)
    assert measured.next_size(5000) == 455  # 11 jobs: within 2% of 10 jobs of 500
    configured = BatchSizer(fixed_size=300)
    assert configured.describe(5000) == {
        "size": 300,
        "how": "configured",
        "seconds_per_job": None,
        "seconds_per_event": None,
    }
    configured.refused_as_too_large(300)
    assert configured.next_size(5000) == 150


def test_unmeasured_jobs_teach_nothing():
    sizer = BatchSizer()
    sizer.finished(100, None)
    sizer.finished(0, 1.0)
    sizer.finished(100, float("nan"))
    sizer.handled(100, float("inf"))
    assert sizer.jobs == [] and sizer.handling == []


def test_costs_are_kept_per_server_and_a_damaged_file_is_ignored(tmp_path):
    costs = JobCostFile(tmp_path)
    costs.save(
        "https://a.example/", BatchSizer(jobs=[(100, 0.8), (200, 1.3)], handling=[(100, 0.2)])
    )
    costs.save("https://b.example/", BatchSizer(jobs=[(50, 2.1)]))
    assert JobCostFile(tmp_path).load("https://a.example/") == (
        [(100, 0.8), (200, 1.3)],
        [(100, 0.2)],
    )
    assert costs.load("https://c.example/") == ([], [])
    damaged = [[100, 0.8], ["x", 1], [0, 1], [5, -1], [7]]
    costs.path.write_text(
        json.dumps({"https://a.example/": {"jobs": damaged, "handling": "x"}}), encoding="utf-8"
    )
    assert costs.load("https://a.example/") == ([(100, 0.8)], [])
    costs.path.write_text("{not json", encoding="utf-8")
    assert costs.load("https://a.example/") == ([], [])


def test_busy_time_is_read_from_dhis2s_notification_times():
    notifications = [
        {"time": "2026-12-07T10:00:02.500", "completed": True, "message": "done"},
        {"time": "2026-12-07T10:00:01.000", "completed": False, "message": "Running commit"},
        {"time": "2026-12-07T10:00:00.250", "completed": False, "message": "Running preheat"},
    ]
    assert server_busy_seconds(notifications) == pytest.approx(2.25)
    assert server_busy_seconds(notifications[1:]) is None  # not completed yet
    assert server_busy_seconds([{**notifications[0], "time": "yesterday"}]) is None
    assert server_busy_seconds([{"completed": True, "message": "done"}]) is None


FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.05)


def service_for(store: Store, client: Dhis2Client, **options) -> UploadService:
    follower = JobFollower(client, first_poll=0.02, max_poll=0.2, clock=time.time)
    return UploadService(store, client, follower=follower, **options)


def client_for(sandbox: Sandbox) -> Dhis2Client:
    return Dhis2Client(
        sandbox.base_url, Credentials(token=sandbox.create_token()), retry=FAST_RETRY
    )


def upload_with(sandbox: Sandbox, store: Store, count: int, tag: str, settings=None):
    sized: list[dict] = []
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    with client_for(sandbox) as client:
        service = service_for(
            store,
            client,
            settings=settings,
            listener=lambda message: (
                sized.append(message) if message["type"] == "jobs.sized" else None
            ),
        )
        batch = service.queue(
            [
                mapper.prepare(SourceRecord(row=index + 2, fields=row))
                for index, row in enumerate(synthetic_rows(count, tag=tag))
            ],
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="t.csv",
        )
        service.run(timeout=60)
    assert store.batch(batch).to_json()[states.CREATED] == count
    return sized


def test_the_engine_learns_the_servers_job_costs_and_the_next_run_starts_with_them(tmp_path):
    knobs = Knobs(job_overhead_seconds=0.2, per_event_seconds=0.002)
    with Sandbox(knobs=knobs) as sandbox, Store(tmp_path / "uploads.sqlite3") as store:
        first = upload_with(sandbox, store, 1700, "A")
        assert first[0] == {
            "type": "jobs.sized",
            "size": FIRST_SIZE,
            "how": "probing",
            "seconds_per_job": None,
            "seconds_per_event": None,
        }
        learnt = first[-1]
        assert learnt["how"] == "measured"
        assert learnt["seconds_per_job"] == pytest.approx(0.2, abs=0.08)
        assert learnt["seconds_per_event"] == pytest.approx(0.002, rel=0.4)
        second = upload_with(sandbox, store, 30, "B")
        assert second[0]["how"] == "measured"
        fixed = upload_with(sandbox, store, 30, "C", UploadSettings(batch_size=7))
        assert [message["size"] for message in fixed] == [7]


def test_a_file_still_being_read_is_sent_in_jobs_sized_for_a_long_backlog(tmp_path):
    """While a file is read, how many records are still to come is unknown: jobs take the size
    best for a long backlog, and none leaves short because only part of the file is stored."""
    costs = BatchSizer(jobs=[(100, 2.1), (500, 2.5)])  # an expensive job: 2 s + 1 ms an event
    backlog_size = size_for(fit_job_cost(costs.jobs), remaining=100_000)
    count = backlog_size + 40
    rows = [
        SourceRecord(row=index + 2, fields=row)
        for index, row in enumerate(synthetic_rows(count, tag="R"))
    ]
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    with Sandbox() as sandbox, Store(tmp_path / "uploads.sqlite3") as store:
        JobCostFile(tmp_path).save(sandbox.base_url, costs)
        with client_for(sandbox) as client:
            batch = service_for(store, client).queue_and_send(
                (mapper.prepare(row) for row in rows),
                program=PROGRAM_UID,
                stage=STAGE_UID,
                source="t.csv",
                timeout=60,
            )
        records = store.batch_records(batch)
    assert {record.state for record in records} == {states.CREATED}
    job_sizes = sorted(Counter(record.job_id for record in records).values(), reverse=True)
    assert backlog_size > 500 and job_sizes == [backlog_size, 40]
