"""How long a backlog takes: our upload engine against the prior system's per-record strategy,
and against the server's own busy time for the same records.

    python bench/upload.py            # 1,000 and 10,000 records (about 10 minutes)
    python bench/upload.py --quick    # a few records, to check that the script still works

Both strategies start from the same synthetic rows, map them with the same Mapper and talk to a
fresh sandbox (in its own process, with REALISTIC timing) through the same Dhis2Client.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import REALISTIC, BenchError, SandboxServer, figure, heading, rate, verdict

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.uids import new_uid
from dhims2.forms.mapping import Mapper, PreparedRecord, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import CREATED, Store
from dhims2.workspace.config import MAX_BATCH_SIZE

TARGET_SPEEDUP = 50.0  # over the per-record strategy, at 1,000 records
TARGET_OVER_BUSY = 1.3  # our time over the server's busy time for the same records
SPEEDUP_TARGET_SIZE = 1000


@dataclass(frozen=True)
class EngineRun:
    records: int
    jobs: int
    queue_seconds: float  # mapping and storing the batch
    send_seconds: float  # sending, following every job and recording every outcome
    server_busy_seconds: float  # sum of the server's job run times
    server_window_seconds: float  # first job start to last job completion on the server

    @property
    def seconds(self) -> float:
        return self.queue_seconds + self.send_seconds


@dataclass(frozen=True)
class PerRecordRun:
    records: int
    seconds: float
    server_busy_seconds: float


def prepare(rows: list[dict[str, str]]) -> list[PreparedRecord]:
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    return [mapper.prepare(SourceRecord(row=row, fields=fields)) for row, fields in rows]


def numbered_rows(count: int) -> list[tuple[int, dict[str, str]]]:
    """Synthetic rows with their sheet row numbers (the header is row 1)."""
    return list(enumerate(synthetic_rows(count, tag="B"), start=2))


def engine_upload(count: int, settings: UploadSettings) -> EngineRun:
    """Our engine, with its shipped job follower: map, queue, send, follow to every outcome."""
    rows = numbered_rows(count)
    with (
        SandboxServer(REALISTIC) as server,
        Dhis2Client(server.base_url, Credentials(token=server.token)) as client,
        tempfile.TemporaryDirectory() as folder,
        Store(Path(folder) / "uploads.sqlite3") as store,
    ):
        service = UploadService(store, client, settings=settings)
        started = time.perf_counter()
        batch = service.queue(prepare(rows), program=PROGRAM_UID, stage=STAGE_UID, source="bench")
        queued = time.perf_counter()
        service.run(timeout=harness.STUCK_SECONDS)
        finished = time.perf_counter()
        records = store.batch_records(batch)
        states = Counter(record.state for record in records)
        if states != {CREATED: count}:
            raise BenchError(f"expected {count} records created, the store says {dict(states)}")
        require_stored_once(client, {record.event_uid for record in records})
        runs = [client.job_notifications(job.id) for job in store.batch_jobs(batch)]
    starts = [min(harness.notification_seconds(entry) for entry in run) for run in runs]
    ends = [max(harness.notification_seconds(entry) for entry in run) for run in runs]
    return EngineRun(
        records=count,
        jobs=len(runs),
        queue_seconds=queued - started,
        send_seconds=finished - queued,
        server_busy_seconds=sum(harness.job_run_seconds(run) for run in runs),
        server_window_seconds=max(ends) - min(starts),
    )


def per_record_upload(count: int, poll_interval: float) -> PerRecordRun:
    """The prior system's strategy, minus its 500 ms pause: one event per import job, each job
    polled to completion and its report read before the next record goes."""
    rows = numbered_rows(count)
    with (
        SandboxServer(REALISTIC) as server,
        Dhis2Client(server.base_url, Credentials(token=server.token)) as client,
    ):
        busy = 0.0
        sent: set[str] = set()
        started = time.perf_counter()
        for record in prepare(rows):
            event = {**record.event, "event": new_uid()}
            job_id = client.submit_import([event])
            notifications, report = await_job(client, job_id, poll_interval)
            if report["status"] != "OK":
                raise BenchError(f"row {record.row} was not imported: {report['status']}")
            busy += harness.job_run_seconds(notifications)
            sent.add(event["event"])
        seconds = time.perf_counter() - started
        require_stored_once(client, sent)
    return PerRecordRun(records=count, seconds=seconds, server_busy_seconds=busy)


def await_job(client: Dhis2Client, job_id: str, interval: float) -> tuple[list[dict], dict]:
    """Polls one job every `interval` seconds until it completes; its notifications and report."""
    deadline = time.monotonic() + harness.STUCK_SECONDS
    notifications: list[dict] = []
    report = None
    while report is None:
        if time.monotonic() > deadline:
            raise BenchError(f"job {job_id} did not finish within {harness.STUCK_SECONDS:g} s")
        time.sleep(interval)
        if not any(entry["completed"] for entry in notifications):
            notifications = client.job_notifications(job_id)
        if any(entry["completed"] for entry in notifications):
            report = client.job_report(job_id)
    return notifications, report


def require_stored_once(client: Dhis2Client, event_uids: set[str]) -> None:
    """The server holds each uploaded event exactly once: nothing lost, nothing duplicated."""
    stored = Counter(event["event"] for event in client.list_events(PROGRAM_UID, page_size=1000))
    if set(stored) != event_uids or any(count > 1 for count in stored.values()):
        raise BenchError(
            f"the server holds {sum(stored.values())} events for {len(event_uids)} uploaded"
        )


def report_size(engine: EngineRun, per_record: PerRecordRun, measured: bool) -> None:
    heading(f"{engine.records:,} records")
    figure(
        "ours, total",
        f"{engine.seconds:.2f} s = {rate(engine.records, engine.seconds)}"
        f" (jobs: {engine.jobs}; map + queue {engine.queue_seconds:.2f} s,"
        f" send + follow {engine.send_seconds:.2f} s)",
    )
    floor = REALISTIC.busy_seconds(engine.jobs, engine.records)
    figure(
        "server busy for our jobs",
        f"{engine.server_busy_seconds:.2f} s measured (sum of job run times);"
        f" {floor:.2f} s from the knobs alone",
    )
    figure(
        "server idle while our jobs ran",
        f"{engine.server_window_seconds - engine.server_busy_seconds:.2f} s"
        f" of a {engine.server_window_seconds:.2f} s window",
    )
    over_busy = engine.seconds / engine.server_busy_seconds
    figure("ours / server busy", f"{over_busy:.2f}x")
    scale = engine.records / per_record.records
    per_record_seconds = per_record.seconds * scale
    how = (
        "measured"
        if measured
        else f"extrapolated: {scale:g} x a measured run of {per_record.records:,} records"
    )
    figure(
        "per-record strategy, total",
        f"{per_record_seconds:.1f} s = {rate(engine.records, per_record_seconds)} ({how})",
    )
    figure(
        "per-record strategy, server busy",
        f"{per_record.server_busy_seconds * scale:.1f} s ({how})",
    )
    speedup = per_record_seconds / engine.seconds
    figure("ours vs per-record", f"{speedup:.1f}x faster")
    verdict(
        "ours within 1.3x of server busy", over_busy <= TARGET_OVER_BUSY, f"<= {TARGET_OVER_BUSY}x"
    )
    if engine.records == SPEEDUP_TARGET_SIZE:
        verdict(
            "speed-up at 1,000 records",
            measured and speedup >= TARGET_SPEEDUP,
            f">= {TARGET_SPEEDUP:g}x, per-record measured",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="a few records: checks the script")
    parser.add_argument("--sizes", type=int, nargs="+", help="record counts (default 1000 10000)")
    parser.add_argument(
        "--per-record-sample",
        type=int,
        help="records the per-record strategy really sends (default 1000); bigger sizes are"
        " extrapolated from it",
    )
    parser.add_argument("--batch-size", type=int, help="events per job for our engine")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.1,
        help="seconds between job polls of the per-record strategy (default 0.1)",
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or ([20, 60] if args.quick else [1000, 10000])
    sample = args.per_record_sample
    if sample is None:
        sample = 5 if args.quick else 1000
    if min(sizes) < 1:
        parser.error("--sizes: every record count must be at least 1")
    if sample < 1:
        parser.error("--per-record-sample must be at least 1")
    if not 0 < args.poll_interval <= 10:
        parser.error("--poll-interval must be more than 0 and at most 10 seconds")
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
    sample = min(sample, min(sizes))
    settings = UploadSettings()
    if args.batch_size is not None:
        settings = dataclasses.replace(settings, batch_size=args.batch_size)

    harness.print_machine()
    heading("Setup")
    figure("server (sandbox, own process)", str(REALISTIC))
    figure(
        "our engine",
        f"batch size {settings.batch_size or 'sized to the server'},"
        f" {settings.max_jobs_in_flight} jobs in flight,"
        " shipped job follower",
    )
    figure(
        "per-record strategy",
        f"1 event per job, polled every {args.poll_interval:g} s, report read, no pause",
    )
    per_record = per_record_upload(sample, args.poll_interval)
    for size in sorted(sizes):
        report_size(engine_upload(size, settings), per_record, measured=size == sample)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/upload.py: {error}", file=sys.stderr)
        sys.exit(1)
