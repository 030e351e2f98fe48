"""A fleet of uploaders against one DHIS2: 200 hosts, each with its own store, sharing one server
that runs one tracker import at a time, with other users' imports mixed in, jobs started out of
order, restarts that keep queued jobs, and jobs left stuck by a restart until housekeeping.

    python bench/fleet.py            # 200 hosts, 5 records each (~3 min)
    python bench/fleet.py --quick    # 20 hosts, to check that the script still works

Each host is a thread with its own SQLite store, DHIS2 client and UploadService, as on 200 clerks'
computers; the sandbox runs in this process so it can be restarted at chosen instants. DHIS2's
own clock is scaled down TIME_SCALE times (its 20 s scheduler loop, 10-minute housekeeping and
the engine's matching patience), so minutes of a national server's queue fit in a run; figures
that depend on that clock are printed both as measured and at DHIS2's real timing.

It proves what matters: every record in DHIS2 exactly once (0 duplicates, 0 lost), none FAILED,
and the few re-sends that happen each backed by evidence; and it shows how long jobs waited in
the queue and how many requests per second each waiting client put on the server.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import BenchError, figure, heading, verdict

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.transport import RetryPolicy
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue import jobs as job_following
from dhims2.queue.jobs import JobFollower
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import CREATED, FAILED, PENDING_STATES, UPDATED, Store
from dhims2.sandbox import Knobs, Sandbox

TIME_SCALE = 10  # DHIS2's clock runs this many times faster here
PATIENT_NUMBER = "h0Ef6ykTpNB"
# What one job costs the server, and what other users' jobs cost (already scaled).
JOB_OVERHEAD_SECONDS = 0.10
PER_EVENT_SECONDS = 0.005
OTHER_JOB_SECONDS = 0.4
HOUSEKEEPING_SECONDS = 600 / TIME_SCALE  # 10 minutes without a sign of life
REQUESTS_PER_WAITING_CLIENT_TARGET = 1 / 10  # at most one poll per 10 s at DHIS2's real timing
# A job counts as "waiting" in the figures when it was followed this long (a minute, real time):
# its polls are then mostly those of a queued job, not of the few seconds it ran.
LONG_WAIT_SECONDS = 60 / TIME_SCALE
RUN_LIMIT_SECONDS = 900.0  # a host still pending then is stuck, not slow


@dataclass(frozen=True)
class FleetSize:
    hosts: int
    records_per_host: int
    other_users_jobs: int
    restarts: int
    start_spread: float  # hosts start within this many seconds


FULL = FleetSize(hosts=200, records_per_host=5, other_users_jobs=40, restarts=2, start_spread=20)
QUICK = FleetSize(hosts=20, records_per_host=3, other_users_jobs=4, restarts=1, start_spread=3)


@dataclass
class HostResult:
    index: int
    jobs: list[str] = field(default_factory=list)
    submitted_at: dict[str, float] = field(default_factory=dict)  # job -> when sent
    started_seen_at: dict[str, float] = field(default_factory=dict)  # job -> seen running
    finished_at: dict[str, float] = field(default_factory=dict)  # job -> outcome stored
    states: Counter[str] = field(default_factory=Counter)
    sends: Counter[int] = field(default_factory=Counter)
    error: str | None = None


def scaled_follower(client: Dhis2Client) -> JobFollower:
    """The shipped follower with DHIS2's clock scaled: every patience divided by TIME_SCALE."""
    return JobFollower(
        client,
        first_poll=0.2,
        max_poll=job_following.QUEUED_MAX_POLL / TIME_SCALE,
        report_grace=job_following.REPORT_GRACE / TIME_SCALE,
        forget_after=job_following.FORGET_AFTER / TIME_SCALE,
        report_after_silence=job_following.REPORT_AFTER_SILENCE / TIME_SCALE,
        clock=time.time,
    )


def run_host(
    index: int, sandbox: Sandbox, root: Path, size: FleetSize, start_at: float
) -> HostResult:
    result = HostResult(index)
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    rows = synthetic_rows(size.records_per_host, tag=f"F{index:03d}")
    records = [mapper.prepare(SourceRecord(row=n + 2, fields=row)) for n, row in enumerate(rows)]

    def listen(message: dict[str, Any]) -> None:
        now = time.monotonic()
        job = message.get("job")
        if message["type"] == "record.state" and message["state"] == "importing" and job:
            result.submitted_at.setdefault(job, now)
        elif message["type"] == "job.progress" and "Tracker import started" in message["messages"]:
            result.started_seen_at.setdefault(job, now)
        elif message["type"] == "record.state" and message["state"] not in PENDING_STATES and job:
            result.finished_at[job] = now

    time.sleep(max(0.0, start_at - time.monotonic()))
    retry = RetryPolicy(attempts=6, base_delay=0.2, max_delay=2.0)
    try:
        with (
            Store(root / f"host-{index:03d}.sqlite3") as store,
            Dhis2Client(
                sandbox.base_url, Credentials(token=sandbox.create_token()), retry=retry
            ) as client,
        ):
            service = UploadService(
                store,
                client,
                settings=UploadSettings(batch_size=size.records_per_host),
                follower=scaled_follower(client),
                listener=listen,
            )
            batch = service.queue(records, program=PROGRAM_UID, stage=STAGE_UID, source="fleet")
            deadline = time.monotonic() + RUN_LIMIT_SECONDS
            while store.pending_count() and time.monotonic() < deadline:
                service.run(timeout=deadline - time.monotonic())
            stored = store.batch_records(batch)
            result.states.update(record.state for record in stored)
            result.sends.update(record.sends for record in stored)
            result.jobs = [job.id for job in store.batch_jobs(batch)]
    except Exception as error:  # reported with the figures: a host must never fail
        result.error = f"{type(error).__name__}: {error}"
    return result


def disturb(sandbox: Sandbox, size: FleetSize, stop: threading.Event, rng: random.Random) -> dict:
    """Other users' imports at random instants, and restarts while a job is running."""
    done = Counter[str]()
    span = size.start_spread * 1.5
    others = sorted(rng.uniform(0, span) for _ in range(size.other_users_jobs))
    restarts = [span * (n + 1) / (size.restarts + 1) for n in range(size.restarts)]
    began = time.monotonic()
    events = sorted([(at, "other") for at in others] + [(at, "restart") for at in restarts])
    for at, what in events:
        if stop.wait(max(0.0, began + at - time.monotonic())):
            break
        if what == "other":
            sandbox.submit_other_users_job(OTHER_JOB_SECONDS)
        else:
            # A restart only leaves a job stuck if one is running: wait for one (briefly).
            deadline = time.monotonic() + 5
            while sandbox.wait_idle(0) and time.monotonic() < deadline:
                time.sleep(0.01)
            sandbox.restart()
        done[what] += 1
    return done


def run_fleet(size: FleetSize, seed: int) -> None:
    knobs = Knobs(
        job_overhead_seconds=JOB_OVERHEAD_SECONDS,
        per_event_seconds=PER_EVENT_SECONDS,
        unordered_start_rate=0.3,
        stuck_job_seconds=HOUSEKEEPING_SECONDS,
        seed=seed,
    )
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder, Sandbox(knobs=knobs) as sandbox:
        root = Path(folder)
        began = time.monotonic()
        starts = [began + rng.uniform(0, size.start_spread) for _ in range(size.hosts)]
        results: list[HostResult] = [HostResult(i) for i in range(size.hosts)]

        def host(i: int) -> None:
            results[i] = run_host(i, sandbox, root, size, starts[i])

        threads = [threading.Thread(target=host, args=(i,), daemon=True) for i in range(size.hosts)]
        stop = threading.Event()
        disturbances: dict = {}
        disturber = threading.Thread(
            target=lambda: disturbances.update(disturb(sandbox, size, stop, rng)), daemon=True
        )
        for thread in threads:
            thread.start()
        disturber.start()
        for thread in threads:
            thread.join(RUN_LIMIT_SECONDS + size.start_spread + 60)
        stop.set()
        disturber.join(10)
        elapsed = time.monotonic() - began
        if any(thread.is_alive() for thread in threads):
            raise BenchError("some hosts were still running after the run limit")
        report(size, results, sandbox, disturbances, elapsed)


def report(
    size: FleetSize,
    results: list[HostResult],
    sandbox: Sandbox,
    disturbances: dict,
    elapsed: float,
) -> None:
    errors = [r.error for r in results if r.error]
    states = sum((r.states for r in results), Counter[str]())
    sends = sum((r.sends for r in results), Counter[int]())
    expected = size.hosts * size.records_per_host
    per_patient = Counter(
        value["value"]
        for event in sandbox.stored_events()
        for value in event["dataValues"]
        if value["dataElement"] == PATIENT_NUMBER
    )
    duplicates = sum(count - 1 for count in per_patient.values() if count > 1)
    lost = expected - len(per_patient)
    waits = [
        r.started_seen_at[job] - r.submitted_at[job]
        for r in results
        for job in r.started_seen_at
        if job in r.submitted_at
    ]
    waiting_rates = []
    for r in results:
        for job in r.jobs:
            if job in r.submitted_at and job in r.finished_at:
                followed = r.finished_at[job] - r.submitted_at[job]
                polls = sandbox.request_count("GET", f"/api/tracker/jobs/{job}") + (
                    sandbox.request_count("GET", f"/api/tracker/jobs/{job}/report")
                )
                if followed >= LONG_WAIT_SECONDS:
                    waiting_rates.append(polls / followed)
    resent = sum(count * (n - 1) for n, count in sends.items() if n > 1)

    heading("Setup")
    figure("hosts", f"{size.hosts}, each its own store, client and upload service")
    figure("records", f"{expected:,} ({size.records_per_host} per host, one job each)")
    figure("server", f"one job at a time; {JOB_OVERHEAD_SECONDS * 1000:.0f} ms per job")
    figure("other users' jobs", f"{disturbances.get('other', 0)} of {OTHER_JOB_SECONDS:g} s")
    figure("restarts while a job ran", str(disturbances.get("restart", 0)))
    figure("housekeeping of a stuck job", f"{HOUSEKEEPING_SECONDS:g} s (10 min / {TIME_SCALE})")
    figure("out-of-order starts", "30% of job starts")

    heading("Outcome")
    figure("records created or updated", f"{states[CREATED] + states[UPDATED]:,} of {expected:,}")
    figure("records FAILED", str(states[FAILED]))
    figure("records still pending", str(sum(states[s] for s in PENDING_STATES)))
    figure("events in DHIS2", f"{len(per_patient):,}")
    figure("duplicates", str(duplicates))
    figure("lost", str(lost))
    figure("records re-sent", f"{resent} ({resent / expected:.1%} of records)")
    figure("host errors", str(len(errors)) + (f" (first: {errors[0]})" if errors else ""))
    figure("run time", f"{elapsed:.0f} s")

    heading("Waiting in DHIS2's queue")
    if waits:
        figure("jobs seen starting", str(len(waits)))
        figure("queue wait median (measured)", f"{harness.median(waits):.1f} s")
        figure("queue wait p95 (measured)", f"{harness.p95(waits):.1f} s")
        figure("queue wait max (measured)", f"{max(waits):.1f} s")
    if waiting_rates:
        typical = harness.median(waiting_rates)
        real = typical / TIME_SCALE
        figure("jobs followed over a minute (real time)", str(len(waiting_rates)))
        figure("requests/s per such client (measured)", f"{typical:.3f} (median)")
        figure("same at DHIS2's real timing", f"{real:.4f} (one request per {1 / real:.0f} s)")
        verdict(
            "a waiting client stays cheap",
            real <= REQUESTS_PER_WAITING_CLIENT_TARGET,
            "at most one request per 10 s",
        )
    verdict(
        "nothing duplicated, lost or FAILED",
        duplicates == 0 and lost == 0 and states[FAILED] == 0 and not errors,
        "0 / 0 / 0",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="20 hosts: checks the script")
    parser.add_argument("--seed", type=int, default=12, help="random seed (default 12)")
    args = parser.parse_args(argv)
    harness.print_machine()
    run_fleet(QUICK if args.quick else FULL, args.seed)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/fleet.py: {error}", file=sys.stderr)
        sys.exit(1)
