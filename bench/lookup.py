"""What asking DHIS2 about duplicates costs: the server-side lookup of each record's admission
before its first send, per 1,000 records, next to the upload it protects.

    python bench/lookup.py            # 1,000 records
    python bench/lookup.py --quick    # 200, to check that the script still works

The same records are uploaded twice against a sandbox with DHIS2-like timing in its own process:
first from an empty store to an empty server (every lookup finds nothing), then from a new,
empty store again (every lookup finds the event, which is updated). The lookup's own time is
measured inside the upload service, so both figures come from the same runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import REALISTIC, BenchError, SandboxServer, figure, heading, verdict

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.forms.mapping import Mapper, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.queue import service as service_module
from dhims2.queue.service import UploadService
from dhims2.queue.store import CREATED, UPDATED, Store

# One lookup round trip per job of 100 may add at most this share to an upload's time.
TARGET_SHARE = 0.15


class LookupClock:
    """Wraps the service's lookup function and adds up the time spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._lookup = service_module.events_on_server

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return self._lookup(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def upload_once(client: Dhis2Client, count: int) -> tuple[float, float, int, dict[str, int]]:
    """Uploads `count` records from a new store: (total s, lookup s, lookups, outcome counts)."""
    mapper = Mapper(in_patient_form(), RecordDefaults(org_unit=ORG_UNIT_UID))
    rows = synthetic_rows(count, tag="K")
    records = [mapper.prepare(SourceRecord(row=row, fields=next(rows))) for row in range(count)]
    clock = LookupClock()
    service_module.events_on_server = clock  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "u.sqlite3") as store:
            service = UploadService(store, client)
            started = time.perf_counter()
            batch = service.queue(records, program=PROGRAM_UID, stage=STAGE_UID, source="bench")
            service.run(timeout=harness.STUCK_SECONDS)
            total = time.perf_counter() - started
            counts = store.batch(batch).counts
    finally:
        service_module.events_on_server = clock._lookup
    return total, clock.seconds, clock.calls, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="200 records: checks the script")
    args = parser.parse_args(argv)
    count = 200 if args.quick else 1000
    harness.print_machine()
    heading("Setup")
    figure("server (sandbox, own process)", str(REALISTIC))
    figure("records", f"{count:,}, jobs of 100, lookups of up to 100 patient numbers")
    with (
        SandboxServer(REALISTIC) as server,
        Dhis2Client(server.base_url, Credentials(token=server.token)) as client,
    ):
        for title, expected in (("new records (nothing found)", CREATED), ("again", UPDATED)):
            total, lookup, calls, counts = upload_once(client, count)
            if counts.get(expected, 0) != count:
                raise BenchError(f"{title}: expected {count} {expected}, got {counts}")
            heading(f"Upload from a new store: {title}")
            figure("upload", f"{total:.2f} s")
            figure("lookups (one per job)", str(calls))
            figure("lookup per 1,000 records", f"{lookup * 1000 / count:.2f} s")
            share = round(lookup / total, 3)  # judged as printed
            figure("lookup share of the upload", f"{share:.1%}")
            verdict(
                f"lookup under {TARGET_SHARE:.0%} of the upload",
                share < TARGET_SHARE,
                f"< {TARGET_SHARE:.0%}",
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/lookup.py: {error}", file=sys.stderr)
        sys.exit(1)
