"""`dhims2 upload FILE`: validate, queue, send and follow a file of records to DHIS2's outcome."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dhims2_host.connection import add_server_arguments

if TYPE_CHECKING:
    from dhims2_host.dhis2 import Dhis2Client
    from dhims2_host.store import Store


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="records as .csv or .json")
    add_server_arguments(parser)
    parser.add_argument("--program", help="program UID (default from `dhims2 config`)")
    parser.add_argument("--stage", help="program stage UID (default from `dhims2 config`)")
    parser.add_argument("--org-unit", help="org unit UID for records without an orgUnit column")
    parser.add_argument("--batch-size", type=int, help="events per DHIS2 import job (1-1000)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate locally and with DHIS2 (importMode=VALIDATE); store nothing anywhere",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="hand the records to DHIS2 and return at once"
    )
    parser.add_argument("--timeout", type=float, help="stop waiting for DHIS2 after SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from dhims2_host.config import load_config
    from dhims2_host.connection import UsageError, open_client, open_store

    config = load_config()
    batch_size = args.batch_size if args.batch_size is not None else config.batch_size
    if not 1 <= batch_size <= 1000:
        raise UsageError("--batch-size must be between 1 and 1000")
    with open_client(args, config) as client, open_store() as store:
        return upload_file(
            client,
            store,
            args.file,
            program=args.program or config.program,
            stage=args.stage or config.stage,
            org_unit=args.org_unit or config.org_unit,
            batch_size=batch_size,
            dry_run=args.dry_run,
            wait=not args.no_wait,
            timeout=args.timeout,
            as_json=args.json,
        )


def upload_file(
    client: Dhis2Client,
    store: Store,
    path: Path,
    *,
    program: str,
    stage: str,
    org_unit: str | None,
    batch_size: int,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    as_json: bool = False,
) -> int:
    """Reads, validates, queues and sends one file; prints the outcome; returns the exit status."""
    from dhims2_host.connection import UsageError, load_form
    from dhims2_host.mapping import Mapper, RecordDefaults
    from dhims2_host.metadata import REPORT_DATE_DATA_ELEMENT
    from dhims2_host.records import read_records
    from dhims2_host.report import ProgressLine, batch_json, exit_status, print_summary
    from dhims2_host.service import UploadService, UploadSettings, run_service

    source_records = list(read_records(path))
    context = load_form(client, store, program, stage)
    if context.from_cache and not as_json:
        print("DHIS2 is unreachable: validating with the program saved earlier", file=sys.stderr)
    defaults = RecordDefaults(
        org_unit=org_unit, report_date_from=REPORT_DATE_DATA_ELEMENT.get(program)
    )
    mapper = Mapper(context.form, defaults, context.capture_org_units)
    column_errors = mapper.check_columns(_headers(source_records))
    if column_errors:
        raise UsageError(
            f"{path}: " + "; ".join(f"{error.field}: {error.message}" for error in column_errors)
        )
    prepared = [mapper.prepare(record) for record in source_records]
    if dry_run:
        return _dry_run(client, prepared, as_json=as_json)

    progress = ProgressLine()
    service = UploadService(
        store, client, settings=UploadSettings(batch_size=batch_size), listener=progress
    )
    batch_id = service.queue(
        prepared, program=context.form.program_uid, stage=stage, source=path.name
    )
    progress.batch_id = batch_id
    interruption = run_service(service, wait=wait, timeout=timeout)
    progress.finish()
    if as_json:
        print(json.dumps(batch_json(store, batch_id)))
    else:
        print_summary(store, batch_id)
    if interruption is not None:
        print(f"{interruption}", file=sys.stderr)
        return interruption.exit_status
    return exit_status(store.batch(batch_id))


def _headers(records: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record.fields))
    return list(seen)


def _dry_run(client: Any, prepared: list[Any], *, as_json: bool) -> int:
    """Checks the valid records with DHIS2's own validation; nothing is stored there or here."""
    from dhims2_host.service import error_json, validate_with_server
    from dhims2_host.store import REJECTED

    server_errors = validate_with_server(client, [record for record in prepared if record.ok])
    results = []
    for record in prepared:
        errors = [error_json(error) for error in record.errors] + server_errors.get(record.row, [])
        results.append(
            {
                "row": record.row,
                "event": record.event.get("event"),
                "state": REJECTED if errors else "valid",
                "errors": errors,
            }
        )
    rejected = sum(1 for result in results if result["state"] == REJECTED)
    if as_json:
        print(
            json.dumps(
                {
                    "batch": None,
                    "dry_run": True,
                    "total": len(results),
                    "valid": len(results) - rejected,
                    "rejected": rejected,
                    "records": results,
                }
            )
        )
    else:
        from dhims2_host.report import describe_error

        print(f"Dry run: {len(results) - rejected} of {len(results)} records would be accepted")
        for result in results:
            for error in result["errors"]:
                print(f"  row {result['row']}: {describe_error(error)}")
    return 1 if rejected else 0
