"""`dhims2 demo`: the whole product in one command, against the built-in DHIS2 sandbox.

Starts the sandbox in this process, uploads the bundled synthetic In-Patient records (three of
them deliberately wrong), follows DHIS2's jobs to their outcome, then uploads the same file again
to show that a re-upload updates and never duplicates. Nothing touches a real server or the
user's own upload history: the records live in a temporary folder deleted at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path

DEMO_FILE = "demo-records.csv"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--latency-ms", type=float, default=40.0, help="sandbox round-trip time (default 40)"
    )
    parser.add_argument(
        "--per-event-ms", type=float, default=5.0, help="sandbox import time per event (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print each upload as one JSON object")


def run(args: argparse.Namespace) -> int:
    from dhims2.cli.upload import upload_file
    from dhims2.dhis2.client import Dhis2Client
    from dhims2.dhis2.credentials import Credentials
    from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
    from dhims2.queue.store import STORE_FILE_NAME, Store
    from dhims2.sandbox import Knobs, Sandbox

    knobs = Knobs(
        latency=args.latency_ms / 1000,
        per_event_seconds=args.per_event_ms / 1000,
        job_overhead_seconds=0.2,
    )
    demo_records = resources.files("dhims2").joinpath(f"data/{DEMO_FILE}")
    with (
        Sandbox(knobs=knobs) as sandbox,
        tempfile.TemporaryDirectory(prefix="dhims2-demo-") as folder,
        resources.as_file(demo_records) as records_path,
    ):
        say = _narrator(quiet=args.json)
        say(f"DHIS2 sandbox (version 2.41) running at {sandbox.base_url}")
        credentials = Credentials(token=sandbox.create_token())
        with (
            Dhis2Client(sandbox.base_url, credentials) as client,
            Store(Path(folder) / STORE_FILE_NAME) as store,
        ):
            statuses = []
            for attempt in ("First upload", "The same file again (a re-upload must not duplicate)"):
                say(f"\n{attempt}: {records_path.name}")
                statuses.append(
                    upload_file(
                        client,
                        store,
                        records_path,
                        program=PROGRAM_UID,
                        stage=STAGE_UID,
                        org_unit=ORG_UNIT_UID,
                        batch_size=5,
                        as_json=args.json,
                    )
                )
                say(f"DHIS2 now holds {len(sandbox.stored_events())} events")
    say(
        "\nEach rejected row says what to fix; every other record is in DHIS2 exactly once."
        "\nUpload your own file with `dhims2 upload FILE --server URL --username USER`."
    )
    # The demo's rejected rows are deliberate; it succeeded if it ran to the end.
    return 0 if all(status in (0, 1) for status in statuses) else 1


def _narrator(*, quiet: bool):
    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    return say
