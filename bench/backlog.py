"""A district backlog: `dhims2 upload` of 10,000 and of 100,000 rows, side by side in one run,
to show that time grows linearly with the rows, memory stays flat and the first job leaves
while the file is still being read.

    python bench/backlog.py            # 10,000 and 100,000 rows (a few minutes)
    python bench/backlog.py --quick    # a few rows, to check that the script still works

Each size is the real `dhims2 upload` process, with a data folder of its own, sending a CSV of
synthetic rows to a sandbox in its own process that answers at once (no latency, no job time),
so what is measured is this program's own cost. Times come from the uploader's store after it
exits: when each job was submitted and when each finished, against the process's spawn time.
While it runs, its store is read every 20 ms until the first job shows, to see whether the batch
was still being read from the file then. Peak memory is the process's own VmHWM at exit, as
bench/host.py reads it.

Both sizes send jobs of the same fixed size (`--batch-size`, 100 unless told): a job's memory and
time grow with its events, not with the file, and sized to this instant server the jobs keep
growing to their 1,000-event bound over a long file, which would compare two job sizes instead
of two file lengths (bench/batching.py measures the sizing).
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import INSTANT, BenchError, SandboxServer, figure, heading, verdict
from host import Workspace, csv_file, mebibytes, start_cli_upload, wait_for_exit

from dhims2.queue.store import CREATED, READING, STORE_FILE_NAME

# Issue 14: ten times the rows costs at most eleven times the sending, memory within 10%, and
# the first job leaves as soon as its records are stored, however long the file.
TARGET_SENDING_RATIO = 11.0
TARGET_MEMORY_RATIO = 1.10
WATCH_INTERVAL = 0.02


@dataclass(frozen=True)
class BacklogRun:
    rows: int
    jobs: int
    wall_seconds: float  # spawn to exit
    first_job_seconds: float  # spawn to the first job's submission
    sending_seconds: float  # first job's submission to the last job's end
    peak_bytes: int
    reading_at_first_job: bool  # the batch was still being read when its first job showed


def upload_backlog(folder: Path, rows: int, batch_size: int) -> BacklogRun:
    """`dhims2 upload` of a `rows`-row CSV file, sent to its end, and what it cost."""
    workspace = Workspace(folder)
    sheet = csv_file(folder, rows)
    peak_file = folder / "peak.txt"
    with SandboxServer(INSTANT) as server:
        started = time.time()
        process = start_cli_upload(
            workspace, sheet, peak_file, server, "--batch-size", str(batch_size)
        )
        reading_at_first_job = watch_first_job(process, folder / "data" / STORE_FILE_NAME)
        status = wait_for_exit(process, "dhims2 upload", harness.STUCK_SECONDS)
        ended = time.time()
    # 0 says every record reached DHIS2 (created or updated), none rejected, failed or pending.
    if status != 0:
        raise BenchError(f"dhims2 upload exited {status}: {workspace.stderr_tail()}")
    jobs, first_submitted, last_finished, created = store_figures(folder / "data")
    if created != rows:
        raise BenchError(f"the store says {created} of {rows} records were created")
    return BacklogRun(
        rows=rows,
        jobs=jobs,
        wall_seconds=ended - started,
        first_job_seconds=first_submitted - started,
        sending_seconds=last_finished - first_submitted,
        peak_bytes=int(peak_file.read_text()),
        reading_at_first_job=reading_at_first_job,
    )


def watch_first_job(process: subprocess.Popen[bytes], store: Path) -> bool:
    """Whether the uploader's batch was still being read from its file when its first job
    appeared in its store (False if the process ended before one was seen)."""
    deadline = time.monotonic() + harness.STUCK_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(WATCH_INTERVAL)
        try:
            connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                jobs = connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
                states = [row[0] for row in connection.execute("SELECT reading FROM batches")]
            finally:
                connection.close()
        except sqlite3.Error:
            continue  # not created yet, or its schema not yet written
        if jobs:
            return states == [READING]
    return False


def store_figures(data_folder: Path) -> tuple[int, float, float, int]:
    """(jobs, first submission, last finish, records created) from the uploader's own store."""
    connection = sqlite3.connect(f"{(data_folder / STORE_FILE_NAME).as_uri()}?mode=ro", uri=True)
    try:
        jobs, first, last = connection.execute(
            "SELECT COUNT(*), MIN(submitted_at), MAX(finished_at) FROM jobs"
        ).fetchone()
        created = connection.execute(
            "SELECT COUNT(*) FROM records WHERE state = ?", (CREATED,)
        ).fetchone()[0]
    finally:
        connection.close()
    if not jobs or last is None:
        raise BenchError("the uploader's store holds no finished job")
    return jobs, first, last, created


def report_run(run: BacklogRun) -> None:
    heading(f"{run.rows:,} rows")
    figure("wall time (spawn to exit)", f"{run.wall_seconds:.2f} s ({run.jobs} jobs)")
    figure("sending time (first job to last outcome)", f"{run.sending_seconds:.2f} s")
    figure("time to first job", f"{run.first_job_seconds:.2f} s")
    figure("file still being read at the first job", "yes" if run.reading_at_first_job else "no")
    figure("peak memory", mebibytes(run.peak_bytes))


def report_ratios(small: BacklogRun, large: BacklogRun) -> None:
    heading(f"{large.rows:,} / {small.rows:,} rows")
    # Each judged on the ratio as printed, so a verdict never contradicts its figure.
    wall = round(large.wall_seconds / small.wall_seconds, 2)
    sending = round(large.sending_seconds / small.sending_seconds, 2)
    memory = round(large.peak_bytes / small.peak_bytes, 2)
    first_job = round(large.first_job_seconds / small.first_job_seconds, 2)
    figure("rows", f"{large.rows / small.rows:.2f}x")
    figure("wall time", f"{wall:.2f}x")
    figure("sending time", f"{sending:.2f}x")
    figure("peak memory", f"{memory:.2f}x")
    figure("time to first job", f"{first_job:.2f}x")
    verdict(
        "sending linear in rows", sending <= TARGET_SENDING_RATIO, f"<= {TARGET_SENDING_RATIO}x"
    )
    verdict("memory flat", memory <= TARGET_MEMORY_RATIO, f"<= {TARGET_MEMORY_RATIO}x")
    verdict(
        "first job while the file is still read",
        large.reading_at_first_job,
        "the batch still 'reading' when its first job shows",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="a few rows: checks the script")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="row counts (default 10000 100000)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="events per job at both sizes (default 100)"
    )
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        raise BenchError("this benchmark reads Linux's peak memory figures; run it on Linux")
    small, large = sorted(args.sizes or ([100, 1000] if args.quick else [10000, 100000]))
    if small < 1 or small == large:
        parser.error("--sizes takes two different row counts of at least 1")

    harness.print_machine()
    heading("Setup")
    figure("server (sandbox, own process)", str(INSTANT))
    figure(
        "uploader",
        f"`dhims2 upload FILE.csv --batch-size {args.batch_size}`, own data folder",
    )
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        runs = [
            upload_backlog(root / f"rows-{rows}", rows, args.batch_size) for rows in (small, large)
        ]
    for run in runs:
        report_run(run)
    report_ratios(*runs)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/backlog.py: {error}", file=sys.stderr)
        sys.exit(1)
