"""`dhims2 upload FILE`: validate, queue, send and follow a file of records to DHIS2's outcome."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dhims2.queue.store import FAILED, REJECTED, UPDATED
from dhims2.workspace.connection import add_server_arguments

if TYPE_CHECKING:
    from dhims2.dhis2.client import Dhis2Client
    from dhims2.forms.mapping import PreparedRecord
    from dhims2.queue.store import Store
    from dhims2.sheets.preparation import RecordPreparer
    from dhims2.sheets.source import RecordSource
    from dhims2.sheets.templates import Template

# Stored records read at a time when collecting the reasons of a batch's rejected rows.


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="records as .xlsx, .csv (or .tsv, .txt) or .json")
    add_server_arguments(parser)
    parser.add_argument("--program", help="program UID (default from `dhims2 config`)")
    parser.add_argument("--stage", help="program stage UID (default from `dhims2 config`)")
    parser.add_argument("--org-unit", help="org unit UID for records without an orgUnit column")
    parser.add_argument(
        "--template",
        metavar="T",
        help="mapping template: a .json file or a shipped name (`dhims2 template list`)",
    )
    parser.add_argument(
        "--sheet", metavar="NAME", help="the workbook sheet to read (default: the first)"
    )
    parser.add_argument(
        "--export-invalid",
        type=Path,
        metavar="FILE.csv",
        help="write the rows that were not uploaded to FILE.csv, with the reason for each",
    )
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
    from dhims2.queue.retention import purge_expired
    from dhims2.sheets.templates import load_template
    from dhims2.workspace.config import load_config
    from dhims2.workspace.connection import UsageError, open_client, open_store

    config = load_config()
    batch_size = args.batch_size if args.batch_size is not None else config.batch_size
    if not 1 <= batch_size <= 1000:
        raise UsageError("--batch-size must be between 1 and 1000")
    template = load_template(args.template) if args.template else None
    with open_client(args, config) as client, open_store() as store:
        purge_expired(store, config.retention_days)
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
            template=template,
            sheet=args.sheet,
            export_invalid=args.export_invalid,
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
    template: Template | None = None,
    sheet: str | None = None,
    export_invalid: Path | None = None,
) -> int:
    """Reads, validates, queues and sends one file; prints the outcome; returns the exit status.

    The file is streamed from reading to the store (or, in a dry run, to DHIS2's validation in
    chunks of `batch_size`), so its length does not change the memory needed.
    """
    from dhims2.cli.report import ProgressLine, exit_status, print_batch
    from dhims2.forms.mapping import Mapper, RecordDefaults
    from dhims2.forms.metadata import REPORT_DATE_DATA_ELEMENT
    from dhims2.queue.service import UploadService, UploadSettings, run_service
    from dhims2.sheets.preparation import prepared_records
    from dhims2.sheets.reading import open_records
    from dhims2.workspace.connection import UsageError, load_form

    if export_invalid is not None and export_invalid.resolve() == Path(path).resolve():
        raise UsageError("--export-invalid must name another file than the one uploaded")
    with open_records(path, sheet=sheet) as source:
        if not as_json:
            _mention_other_sheets(source, sheet)
        context = load_form(client, store, program, stage)
        if context.from_cache and not as_json:
            print(
                "DHIS2 is unreachable: validating with the program saved earlier", file=sys.stderr
            )
        defaults = RecordDefaults(
            org_unit=org_unit, report_date_from=REPORT_DATE_DATA_ELEMENT.get(program)
        )
        if template is None:
            preparer: RecordPreparer = Mapper(context.form, defaults, context.capture_org_units)
        else:
            preparer = template.bind(context.form, defaults, context.capture_org_units)
        records = prepared_records(source, preparer)
        if dry_run:
            reasons: dict[int, str] = {}
            status = _dry_run(client, records, reasons, as_json=as_json, chunk_size=batch_size)
        else:
            progress = ProgressLine()
            service = UploadService(
                store, client, settings=UploadSettings(batch_size=batch_size), listener=progress
            )
            batch_id = service.queue(
                records, program=context.form.program_uid, stage=stage, source=path.name
            )
    if dry_run:
        _export(path, sheet, reasons, export_invalid)
        return status

    progress.batch_id = batch_id
    interruption = run_service(service, wait=wait, timeout=timeout)
    progress.finish()
    print_batch(store, batch_id, as_json=as_json)
    if not as_json:
        updated = store.batch(batch_id).counts.get(UPDATED, 0)
        if updated:
            print(f"  {updated} already in DHIS2, updated")
    _export(path, sheet, _batch_reasons(store, batch_id), export_invalid)
    if interruption is not None:
        print(f"{interruption}", file=sys.stderr)
        return interruption.exit_status
    return exit_status(store.batch(batch_id))


def _mention_other_sheets(source: RecordSource, chosen: str | None) -> None:
    others = [name for name in source.sheets if name != source.sheet]
    if chosen is None and others:
        names = ", ".join(f'"{name}"' for name in others)
        print(
            f'Reading sheet "{source.sheet}" of {source.name}; it also has {names}'
            " (choose one with --sheet)",
            file=sys.stderr,
        )


def _dry_run(
    client: Dhis2Client,
    records: Iterable[PreparedRecord],
    reasons: dict[int, str],
    *,
    as_json: bool,
    chunk_size: int,
) -> int:
    """Checks the valid records with DHIS2's own validation, a chunk at a time; nothing is stored
    there or here. Each record's result is printed as its chunk is done; `reasons` collects why
    each rejected row would not go."""
    from dhims2.cli.report import describe_error
    from dhims2.queue.service import error_json, validate_with_server
    from dhims2.sheets.preparation import reason_text

    total = rejected = 0
    if as_json:
        sys.stdout.write('{"batch": null, "dry_run": true, "records": [')
    for chunk in _chunks(records, chunk_size):
        server_errors = validate_with_server(client, [record for record in chunk if record.ok])
        for record in chunk:
            errors = [error_json(error) for error in record.errors]
            errors += server_errors.get(record.row, [])
            if errors:
                rejected += 1
                reasons[record.row] = reason_text(errors)
            if as_json:
                result = {
                    "row": record.row,
                    "event": record.event.get("event"),
                    "state": REJECTED if errors else "valid",
                    "errors": errors,
                }
                sys.stdout.write(("," if total else "") + "\n" + json.dumps(result))
            else:
                for error in errors:
                    print(f"  row {record.row}: {describe_error(error)}")
            total += 1
    counts = {"total": total, "valid": total - rejected, "rejected": rejected}
    if as_json:
        print("], " + json.dumps(counts)[1:])
    else:
        print(f"Dry run: {total - rejected} of {total} records would be accepted")
    return 1 if rejected else 0


def _chunks(records: Iterable[PreparedRecord], size: int) -> Iterator[list[PreparedRecord]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _batch_reasons(store: Store, batch_id: str) -> dict[int, str]:
    """Row -> why it did not reach DHIS2, for the batch's rejected and failed records."""
    from dhims2.sheets.preparation import reason_text

    return {
        record.row: reason_text(record.errors)
        for record in store.iter_batch_records(batch_id)
        if record.state in (REJECTED, FAILED)
    }


def _export(
    path: Path, sheet: str | None, reasons: dict[int, str], export_invalid: Path | None
) -> None:
    from dhims2.sheets.preparation import write_invalid_rows
    from dhims2.workspace.connection import UsageError

    if export_invalid is None:
        return
    try:
        written = write_invalid_rows(path, reasons, export_invalid, sheet=sheet)
    except OSError as error:
        raise UsageError(f"cannot write {export_invalid}: {error.strerror}") from error
    print(
        f"{written} rows not uploaded, with the reasons, are in {export_invalid}", file=sys.stderr
    )
