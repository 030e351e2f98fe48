"""Following import jobs to their outcome, against the sandbox's real job queue."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import InvalidInput, NotSignedIn
from dhims2.dhis2.transport import RetryPolicy
from dhims2.dhis2.uids import new_uid
from dhims2.queue.jobs import COMPLETED, FAILED, FORGOTTEN, RUNNING, JobFollower, JobOutcome
from dhims2.sandbox import Sandbox

FOLLOW_TIMEOUT = 20.0  # only reached when a test is failing
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)


EventBuilder = Callable[..., dict]
Submit = Callable[..., tuple[str, float]]


def token_client(sandbox: Sandbox, retry: RetryPolicy = FAST_RETRY) -> Dhis2Client:
    return Dhis2Client(sandbox.base_url, Credentials(token=sandbox.create_token()), retry=retry)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[Dhis2Client]:
    with token_client(sandbox) as client:
        yield client


@pytest.fixture
def submit(client: Dhis2Client, inpatient_event: EventBuilder) -> Submit:
    """Submits `count` fresh events as one async import: (job id, submitted_at)."""

    def send(count: int = 1) -> tuple[str, float]:
        events = [inpatient_event() for _ in range(count)]
        return client.submit_import(events), time.monotonic()

    return send


def quick_follower(client: Dhis2Client, **kwargs: float) -> JobFollower:
    return JobFollower(client, **{"first_poll": 0.01, "max_poll": 0.05, **kwargs})


def follow_all(follower: JobFollower, jobs: list[tuple[str, float]], **kwargs) -> dict:
    outcomes = list(follower.follow(jobs, timeout=kwargs.pop("timeout", FOLLOW_TIMEOUT), **kwargs))
    assert sorted(outcome.job_id for outcome in outcomes) == sorted(job_id for job_id, _ in jobs)
    return {outcome.job_id: outcome for outcome in outcomes}


class SteppedClock:
    """Time that passes only when the follower sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1


def test_many_jobs_at_once_all_complete_with_their_reports(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.per_event_seconds = 0.01
    jobs = [submit(count=2) for _ in range(6)]
    outcomes = follow_all(quick_follower(client), jobs)
    assert {outcome.state for outcome in outcomes.values()} == {COMPLETED}
    assert all(outcome.report["stats"]["created"] == 2 for outcome in outcomes.values())
    assert all(outcome.error is None for outcome in outcomes.values())
    assert len(sandbox.stored_events()) == 12


def test_outcomes_are_yielded_as_each_job_finishes(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.job_overhead_seconds = 0.1
    jobs = [submit() for _ in range(3)]
    finished_in_order = [
        outcome.job_id for outcome in quick_follower(client).follow(jobs, timeout=FOLLOW_TIMEOUT)
    ]
    # The server runs imports one at a time in arrival order.
    assert finished_in_order == [job_id for job_id, _ in jobs]


def test_a_queued_job_answers_nothing_until_it_runs(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.queue_delay = 0.3
    job = submit()
    outcome = follow_all(quick_follower(client), [job])[job[0]]
    assert outcome.state == COMPLETED
    assert sandbox.request_count("GET", f"/api/tracker/jobs/{job[0]}") > 2


def test_a_report_that_lags_behind_completion_is_waited_for(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.report_delay = 0.3
    job = submit(count=3)
    outcome = follow_all(quick_follower(client), [job])[job[0]]
    assert outcome.state == COMPLETED
    assert outcome.report["stats"]["created"] == 3
    assert sandbox.request_count("GET", f"/api/tracker/jobs/{job[0]}/report") > 1


def test_a_report_that_never_comes_after_completion_means_forgotten(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.report_delay = 60
    job = submit()
    outcome = follow_all(quick_follower(client, report_grace=0.2), [job])[job[0]]
    assert outcome.state == FORGOTTEN
    assert outcome.messages[-1].startswith("Import complete with status OK")


def test_a_job_that_fails_on_the_server_is_failed_with_its_message(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.job_failure_rate = 1.0
    job = submit()
    outcome = follow_all(quick_follower(client), [job])[job[0]]
    assert outcome.state == FAILED
    assert outcome.report is None
    assert outcome.error.startswith("Process failed: ")
    assert outcome.messages[0] == "Tracker import started"
    assert outcome.messages[-1] == outcome.error
    assert sandbox.stored_events() == []


def test_an_import_refused_as_a_whole_is_completed_with_its_error_report(
    sandbox: Sandbox, client: Dhis2Client, inpatient_event: EventBuilder
) -> None:
    events = [inpatient_event(), inpatient_event(values={"fg8sMCaTOrK": "Malee"})]
    job = (client.submit_import(events, atomic_mode="ALL"), time.monotonic())
    outcome = follow_all(quick_follower(client), [job])[job[0]]
    assert outcome.state == COMPLETED
    assert outcome.report["status"] == "ERROR"
    assert outcome.error is None


def test_progress_callbacks_carry_the_servers_messages_oldest_first(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.per_event_seconds = 0.05
    job = submit(count=4)
    heard: list[tuple[str, list[str]]] = []
    outcome = follow_all(
        quick_follower(client), [job], on_progress=lambda *update: heard.append(update)
    )[job[0]]
    assert heard, "no progress was reported"
    assert {job_id for job_id, _ in heard} == {job[0]}
    assert heard[-1][1] == outcome.messages
    assert outcome.messages[0] == "Tracker import started"
    assert outcome.messages[-1] == (
        "Import complete with status OK, 4 created, 0 updated, 0 deleted, 0 ignored"
    )
    assert all(len(earlier) < len(later) for (_, earlier), (_, later) in itertools.pairwise(heard))


def test_after_a_server_restart_jobs_ahead_of_a_running_one_are_forgotten_at_once(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.queue_delay = 60
    lost = [submit() for _ in range(2)]
    sandbox.restart()
    sandbox.knobs.queue_delay = 0
    after_restart = submit()
    outcomes = follow_all(quick_follower(client), [*lost, after_restart])
    assert [outcomes[job_id].state for job_id, _ in lost] == [FORGOTTEN, FORGOTTEN]
    assert outcomes[after_restart[0]].state == COMPLETED


def test_a_job_seen_running_that_vanishes_is_forgotten_at_once(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.job_overhead_seconds = 60
    job = submit()

    def restart_server(job_id: str, messages: list[str]) -> None:
        sandbox.restart()

    outcome = follow_all(quick_follower(client), [job], on_progress=restart_server)[job[0]]
    assert outcome.state == FORGOTTEN
    assert outcome.messages[0] == "Tracker import started"


def test_a_job_nobody_knows_is_forgotten_only_after_forget_after(client: Dhis2Client) -> None:
    clock = SteppedClock()
    follower = JobFollower(
        client, first_poll=0.2, max_poll=5, forget_after=60, clock=clock, sleep=clock.sleep
    )
    started = clock()
    (outcome,) = follower.follow([(new_uid(), started)])
    assert outcome.state == FORGOTTEN
    assert 60 <= clock() - started <= 65
    assert clock.slept < 40, "polling did not back off"


def test_jobs_still_running_at_the_timeout_are_reported_running(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.job_overhead_seconds = 60
    jobs = [submit() for _ in range(2)]
    outcomes = follow_all(quick_follower(client), jobs, timeout=0.3)
    running, queued = (outcomes[job_id] for job_id, _ in jobs)
    assert (running.state, queued.state) == (RUNNING, RUNNING)
    assert running.messages[0] == "Tracker import started"
    assert queued.messages == []


def test_stop_ends_the_follow_at_once_with_jobs_running(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.job_overhead_seconds = 60
    jobs = [submit()]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    outcomes = list(JobFollower(client, first_poll=0.05, max_poll=5.0).follow(jobs, stop=stop))
    assert [outcome.state for outcome in outcomes] == [RUNNING]
    assert time.monotonic() - started < 2.0, "the follow slept through the stop"


def test_transient_server_errors_while_polling_do_not_end_the_follow(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    sandbox.knobs.per_event_seconds = 0.05
    job = submit(count=2)
    sandbox.knobs.error_rate, sandbox.knobs.seed = 0.5, 3
    no_retries = RetryPolicy(attempts=1)
    with token_client(sandbox, retry=no_retries) as impatient:
        outcome = follow_all(quick_follower(impatient), [job])[job[0]]
    assert outcome.state == COMPLETED


def test_losing_the_sign_in_ends_the_follow(
    sandbox: Sandbox, client: Dhis2Client, submit: Submit
) -> None:
    job = submit()
    stranger = Dhis2Client(sandbox.base_url, Credentials(token="d2p_" + "y" * 48))
    with stranger, pytest.raises(NotSignedIn):
        list(quick_follower(stranger).follow([job]))


@pytest.mark.parametrize(
    ("jobs", "timeout", "complaint"),
    [
        ([("LkXBUdIgbe3", 0.0), ("LkXBUdIgbe3", 1.0)], None, "twice"),
        ([("not-a-uid", 0.0)], None, "UID"),
        ([("LkXBUdIgbe3", "yesterday")], None, "submitted_at"),
        (["LkXBUdIgbe3"], None, "pair"),
        ("LkXBUdIgbe3", None, "list"),
        ([], -1, "timeout"),
    ],
)
def test_bad_arguments_are_refused_at_once(
    client: Dhis2Client, jobs: object, timeout: object, complaint: str
) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        quick_follower(client).follow(jobs, timeout=timeout)


def test_nothing_to_follow_yields_nothing(client: Dhis2Client) -> None:
    outcomes: list[JobOutcome] = list(quick_follower(client).follow([]))
    assert outcomes == []


def test_poll_settings_must_make_sense(client: Dhis2Client) -> None:
    with pytest.raises(InvalidInput, match="first_poll"):
        JobFollower(client, first_poll=0)
    with pytest.raises(InvalidInput, match="max_poll"):
        JobFollower(client, first_poll=2, max_poll=1)
