"""How soon the client knows a job's outcome: from the instant the server completes the job to the
instant our upload service has stored every record's outcome and told its listener.

    python bench/status_latency.py            # single records, a backlog, and long jobs
    python bench/status_latency.py --quick    # a few, to check that the script still works

The server's instant is the `time` of the job's completed notification, which the sandbox (in
its own process, on this machine's clock) stamps as it finishes the job; the client's instant is
taken by the service's listener when it reports the job's records as final.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import REALISTIC, BenchError, SandboxServer, figure, heading, verdict

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue.jobs import JobFollower
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import CREATED, FAILED, REJECTED, UPDATED, Store

FINAL_STATES = frozenset({CREATED, UPDATED, REJECTED, FAILED})
TARGET_MEDIAN_SECONDS = 1.0


@dataclass
class OutcomeClock:
    """The service's listener: when each job's outcome first reached the client."""

    known_at: dict[str, float] = field(default_factory=dict)

    def __call__(self, message: dict[str, Any]) -> None:
        if message.get("type") == "record.state" and message["state"] in FINAL_STATES:
            self.known_at.setdefault(message["job"], time.time())


def latencies(batches: list[int], settings: UploadSettings, max_poll: float | None) -> list[float]:
    """Uploads `batches` (record counts) one after the other; the latency of every job.
    `max_poll` replaces the shipped follower's longest poll interval when given."""
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    rows = synthetic_rows(sum(batches), tag="L")
    clock = OutcomeClock()
    with (
        SandboxServer(REALISTIC) as server,
        Dhis2Client(server.base_url, Credentials(token=server.token)) as client,
        tempfile.TemporaryDirectory() as folder,
        Store(Path(folder) / "uploads.sqlite3") as store,
    ):
        follower = (
            None if max_poll is None else JobFollower(client, max_poll=max_poll, clock=time.time)
        )
        service = UploadService(store, client, settings=settings, follower=follower, listener=clock)
        for size in batches:
            records = [
                mapper.prepare(SourceRecord(row=row, fields=next(rows)))
                for row in range(2, size + 2)
            ]
            service.queue(records, program=PROGRAM_UID, stage=STAGE_UID, source="bench")
            service.run(timeout=harness.STUCK_SECONDS)
        measured = []
        for job_id, known_at in clock.known_at.items():
            notifications = client.job_notifications(job_id)
            completed = [
                harness.notification_seconds(entry) for entry in notifications if entry["completed"]
            ]
            if not completed:
                raise BenchError(f"job {job_id} has no completed notification on the server")
            measured.append(known_at - min(completed))
    if not measured:
        raise BenchError("no job outcome reached the client")
    return measured


def report(title: str, values: list[float]) -> None:
    heading(title)
    middle = harness.median(values)
    figure("jobs", str(len(values)))
    figure("median", f"{middle * 1000:.0f} ms")
    figure("p95", f"{harness.p95(values) * 1000:.0f} ms")
    figure("max", f"{max(values) * 1000:.0f} ms")
    verdict("median under 1 s", middle < TARGET_MEDIAN_SECONDS, "< 1 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="a few jobs: checks the script")
    parser.add_argument(
        "--max-poll",
        type=float,
        help="longest interval between polls of one job, in seconds (default: the shipped"
        " follower's), to try another setting",
    )
    args = parser.parse_args(argv)
    if args.max_poll is not None and not 0.2 <= args.max_poll <= 60:
        parser.error("--max-poll must be between 0.2 (the first poll) and 60 seconds")
    singles, backlog, large, large_runs = (3, 250, 120, 1) if args.quick else (30, 1000, 1000, 3)
    shipped = UploadSettings()
    # The largest batch size `dhims2 upload --batch-size` allows: one long job per upload.
    one_job_each = dataclasses.replace(shipped, batch_size=large)

    harness.print_machine()
    heading("Setup")
    figure("server (sandbox, own process)", str(REALISTIC))
    follower = "shipped" if args.max_poll is None else f"max_poll {args.max_poll:g} s"
    figure("client", f"UploadService, job follower: {follower}")
    report(
        f"{singles} single-record uploads, one after the other",
        latencies([1] * singles, shipped, args.max_poll),
    )
    report(
        f"a backlog of {backlog:,} records in jobs of {shipped.batch_size}",
        latencies([backlog], shipped, args.max_poll),
    )
    report(
        f"{large_runs} uploads of {large:,} records, each in one job",
        latencies([large] * large_runs, one_job_each, args.max_poll),
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/status_latency.py: {error}", file=sys.stderr)
        sys.exit(1)
