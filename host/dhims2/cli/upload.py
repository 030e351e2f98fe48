"""`dhims2 upload FILE`: validate, queue, send and follow a file of records to DHIS2's outcome."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dhims2.cli.arguments import add_server_arguments

if TYPE_CHECKING:
    from dhims2.cli.report import ProgressLine
    from dhims2.dhis2.client import Dhis2Client
    from dhims2.forms.mapping import Mapper, PreparedRecord
    from dhims2.queue.service import Interruption, UploadService
    from dhims2.queue.store import Store
    from dhims2.sheets.preparation import RecordPreparer
    from dhims2.sheets.source import RecordSource
    from dhims2.sheets.templates import Template
    from dhims2.workspace.connection import FormContext

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
    parser.add_argument(
        "--force", action="store_true", help="with --export-invalid, replace an existing file"
    )
    parser.add_argument("--batch-size", type=int, help="events per DHIS2 import job (1-1000)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate locally and with DHIS2 (importMode=VALIDATE); store nothing anywhere",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="with --dry-run, check against the program saved by an earlier run, without DHIS2",
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
    from dhims2.workspace.connection import UsageError, cached_form, open_client, open_store

    config = load_config()
    batch_size = args.batch_size if args.batch_size is not None else config.batch_size
    if batch_size is not None and not 1 <= batch_size <= 1000:
        raise UsageError("--batch-size must be between 1 and 1000")
    template = load_template(args.template) if args.template else None
    if args.offline and not args.dry_run:
        raise UsageError("--offline checks a file only: use it with --dry-run")
    # Refused before anything is read or sent: an upload is never followed by a failed export.
    check_export_path(args.export_invalid, args.file, force=args.force)
    program, stage = args.program or config.program, args.stage or config.stage
    if args.offline:
        with open_store() as store:
            context = cached_form(store, args.server or config.server, program, stage)
            return upload_file(
                None,
                store,
                args.file,
                program=program,
                stage=stage,
                org_unit=args.org_unit or config.org_unit,
                batch_size=batch_size,
                dry_run=True,
                as_json=args.json,
                template=template,
                sheet=args.sheet,
                export_invalid=args.export_invalid,
                context=context,
            )
    with open_client(args, config) as client, open_store() as store:
        purge_expired(store, config.retention_days)
        return upload_file(
            client,
            store,
            args.file,
            program=program,
            stage=stage,
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
    client: Dhis2Client | None,
    store: Store,
    path: Path,
    *,
    program: str,
    stage: str,
    org_unit: str | None,
    batch_size: int | None,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    as_json: bool = False,
    template: Template | None = None,
    sheet: str | None = None,
    export_invalid: Path | None = None,
    context: FormContext | None = None,
) -> int:
    """Reads, validates, queues and sends one file; prints the outcome; returns the exit status.

    Without a client (a dry run offline), `context` is the program saved earlier and the
    records are checked against it alone.

    The file is streamed from reading to the store (or, in a dry run, to DHIS2's validation in
    chunks of `batch_size`), so its length does not change the memory needed; the first job
    leaves as soon as its records are stored, while the rest of the file is still read.
    """
    from dhims2.cli.report import ProgressLine, exit_status, print_batch
    from dhims2.forms.mapping import Mapper, RecordDefaults
    from dhims2.forms.metadata import REPORT_DATE_DATA_ELEMENT
    from dhims2.queue import store as states
    from dhims2.queue.batch_sizing import FIRST_SIZE
    from dhims2.queue.service import UploadService, UploadSettings
    from dhims2.sheets.preparation import prepared_records
    from dhims2.sheets.reading import open_records
    from dhims2.workspace.connection import load_form

    with open_records(path, sheet=sheet) as source:
        if not as_json:
            _mention_other_sheets(source, sheet)
        if context is None:
            assert client is not None, "a client, or the program saved earlier"
            context = load_form(client, store, program, stage)
            if context.from_cache and not as_json:
                print(
                    "DHIS2 is unreachable: validating with the program saved earlier",
                    file=sys.stderr,
                )
        elif not as_json:
            print("Offline: checking against the program saved earlier", file=sys.stderr)
        defaults = RecordDefaults(
            org_unit=org_unit, report_date_from=REPORT_DATE_DATA_ELEMENT.get(program)
        )
        if template is None:
            preparer: RecordPreparer = Mapper(context.form, defaults, context.capture_org_units)
        else:
            preparer = template.bind(context.form, defaults, context.capture_org_units)
        _require_records(source)
        progress = ProgressLine()
        # Raises for unknown or doubled columns. An upload finds doubled rows through the
        # store's index (UploadService.queue_and_send), not a map of every row in memory.
        prepared = prepared_records(source, preparer, flag_duplicates=dry_run)
        if isinstance(preparer, Mapper):
            # An unknown column may well be the missing one misspelt, so it is named first.
            _require_compulsory_columns(source, preparer)
        if dry_run:
            reasons: dict[int, str] = {}
            records = _counted(source.name, prepared, progress)
            status = _dry_run(
                client, records, reasons, as_json=as_json, chunk_size=batch_size or FIRST_SIZE
            )
        else:
            assert client is not None, "only a dry run goes without a client"
            service = UploadService(
                store, client, settings=UploadSettings(batch_size=batch_size), listener=progress
            )
            # Then the batch's progress, "(reading the file)" until its last row is stored.
            progress.reading(source.name, 0)
            batch_id, interruption = _queue_and_send(
                service,
                prepared,
                program=context.form.program_uid,
                stage=stage,
                source=path.name,
                wait=wait,
                timeout=timeout,
                progress=progress,
            )
    if dry_run:
        progress.finish()
        _export(path, sheet, reasons, export_invalid)
        return status

    progress.finish()
    print_batch(store, batch_id, as_json=as_json)
    if not as_json:
        updated = store.batch(batch_id).counts.get(states.UPDATED, 0)
        if updated:
            print(f"  {updated} already in DHIS2, updated")
    _export(path, sheet, _batch_reasons(store, batch_id), export_invalid)
    if interruption is not None:
        print(f"{interruption}", file=sys.stderr)
        return interruption.exit_status
    return exit_status(store.batch(batch_id))


def _queue_and_send(
    service: UploadService,
    records: Iterable[PreparedRecord],
    *,
    program: str,
    stage: str,
    source: str,
    wait: bool,
    timeout: float | None,
    progress: ProgressLine,
) -> tuple[str, Interruption | None]:
    """Stores the records while sending them; the batch and why sending stopped early, if it did.

    When another process holds the run lock, the file is queued whole for it to send."""
    from dhims2.queue.service import interrupted

    opened: list[str] = []

    def on_batch(batch_id: str) -> None:
        opened.append(batch_id)
        progress.batch_id = batch_id

    try:
        interruption = interrupted(
            lambda: service.queue_and_send(
                records,
                program=program,
                stage=stage,
                source=source,
                wait=wait,
                timeout=timeout,
                on_batch=on_batch,
            )
        )
    except KeyboardInterrupt:
        progress.finish()
        if opened:
            _tell_stopped(service.store, opened[0])
        raise
    except Exception:
        if opened:
            print(
                f"Batch {opened[0]} stopped there: its records already with DHIS2 stay there,"
                " the others were not sent. Correct the file and upload it again: the records"
                " DHIS2 holds are updated, not created twice",
                file=sys.stderr,
            )
        raise
    if opened:
        return opened[0], interruption
    batch_id = service.queue(records, program=program, stage=stage, source=source)
    progress.batch_id = batch_id
    return batch_id, interruption


def _tell_stopped(store: Store, batch_id: str) -> None:
    from dhims2.queue import store as states

    if store.batch(batch_id).reading == states.READ:
        print(
            f"Stopped. Batch {batch_id} is saved on this computer: nothing is lost, and"
            f" `dhims2 status {batch_id} --follow` sends the rest and follows it to the end",
            file=sys.stderr,
        )
        return
    print(
        f"Stopped while reading the file. The records of batch {batch_id} read so far are saved"
        f" on this computer (`dhims2 status {batch_id} --follow` sends them); upload the file"
        " again for the rest: the records already sent are updated, not created twice",
        file=sys.stderr,
    )


def check_export_path(export: Path | None, uploaded: Path, *, force: bool) -> None:
    """Refuses an --export-invalid path that could not be written, before anything is read."""
    from dhims2.workspace.connection import UsageError

    if export is None:
        return
    if export.resolve() == uploaded.resolve():
        raise UsageError("--export-invalid must name another file than the one uploaded")
    folder = export.parent
    if not folder.is_dir():
        raise UsageError(f"--export-invalid {export}: there is no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--export-invalid {export}: the folder {folder} cannot be written to")
    if export.is_dir():
        raise UsageError(f"--export-invalid {export}: is a folder; name a file in it")
    if export.exists() and not force:
        raise UsageError(f"--export-invalid {export}: the file exists; add --force to replace it")


def _require_records(source: RecordSource) -> None:
    """A file without any record (a header alone, an empty JSON list) is an input error, raised
    before its columns are judged, a batch is made or anything is sent."""
    from dhims2.sheets.source import InputError

    first = next(source.records, None)
    if first is None:
        raise InputError(f"{source.name}: no records (nothing below the header)")
    source.records = itertools.chain([first], source.records)


def _require_compulsory_columns(source: RecordSource, mapper: Mapper) -> None:
    from dhims2.sheets.preparation import ColumnError

    missing = mapper.missing_compulsory_columns(source.columns)
    if missing:
        raise ColumnError(source.name, missing)


def _counted(
    source_name: str, records: Iterable[PreparedRecord], progress: ProgressLine
) -> Iterator[PreparedRecord]:
    progress.reading(source_name, 0)
    for count, record in enumerate(records, start=1):
        progress.reading(source_name, count)
        yield record


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
    client: Dhis2Client | None,
    records: Iterable[PreparedRecord],
    reasons: dict[int, str],
    *,
    as_json: bool,
    chunk_size: int,
) -> int:
    """Checks the valid records with DHIS2's own validation, a chunk at a time; nothing is stored
    there or here. With --json each record's result is printed as its chunk is done, else the
    errors at the end, each told once; `reasons` collects why each rejected row would not go."""
    from dhims2.cli.report import RepeatedErrors, describe_error
    from dhims2.queue import store as states
    from dhims2.queue.service import error_json, validate_with_server
    from dhims2.sheets.preparation import reason_text

    total = rejected = 0
    repeated = RepeatedErrors()
    if as_json:
        sys.stdout.write('{"batch": null, "dry_run": true, "records": [')
    for chunk in _chunks(records, chunk_size):
        valid = [record for record in chunk if record.ok]
        server_errors = validate_with_server(client, valid) if client is not None else {}
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
                    "state": states.REJECTED if errors else "valid",
                    "errors": errors,
                }
                sys.stdout.write(("," if total else "") + "\n" + json.dumps(result))
            else:
                for error in errors:
                    repeated.add(record.row, describe_error(error))
            total += 1
    counts = {"total": total, "valid": total - rejected, "rejected": rejected}
    if as_json:
        print("], " + json.dumps(counts)[1:])
    else:
        repeated.print()
        print(f"Dry run: {total - rejected} of {total} records would be accepted")
    return 1 if rejected else 0


def _chunks(records: Iterable[PreparedRecord], size: int) -> Iterator[list[PreparedRecord]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _batch_reasons(store: Store, batch_id: str) -> dict[int, str]:
    """Row -> why it did not reach DHIS2, for the batch's rejected and failed records."""
    from dhims2.queue import store as states
    from dhims2.sheets.preparation import reason_text

    return {
        record.row: reason_text(record.errors)
        for record in store.iter_batch_records(batch_id)
        if record.state in (states.REJECTED, states.FAILED)
    }


def _export(
    path: Path, sheet: str | None, reasons: dict[int, str], export_invalid: Path | None
) -> None:
    from dhims2.sheets.preparation import write_invalid_rows
    from dhims2.sheets.source import InputError

    if export_invalid is None:
        return
    try:
        written = write_invalid_rows(path, reasons, export_invalid, sheet=sheet)
    except (OSError, InputError) as error:
        # The upload itself is done: its outcome, not this file, decides the exit status.
        reason = error.strerror if isinstance(error, OSError) else str(error)
        print(f"could not write --export-invalid {export_invalid}: {reason}", file=sys.stderr)
        return
    print(
        f"{written} rows not uploaded, with the reasons, are in {export_invalid}", file=sys.stderr
    )
