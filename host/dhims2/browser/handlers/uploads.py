"""Message types that reach DHIS2 or the upload store: connection, program, upload, its dry
run with the templates it may use, and batches.

Handlers stay thin: they turn a request into records, queue them in the store and wake the
background sender, whose pushed `record.state`, `batch.progress`, `job.progress` and
`sender.state` updates carry the rest. Heavy modules are imported on first use so the host's
hello stays fast.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dhims2.browser.dispatch import HostContext, Message, register
from dhims2.browser.protocol import PAGE_BUDGET_BYTES, ProtocolError, paginate

if TYPE_CHECKING:
    from dhims2.browser.sender import BackgroundSender
    from dhims2.dhis2.client import Dhis2Client
    from dhims2.forms.mapping import PreparedRecord
    from dhims2.queue.store import Store
    from dhims2.sheets.preparation import RecordPreparer
    from dhims2.sheets.source import RecordSource
    from dhims2.sheets.templates import Template
    from dhims2.workspace.connection import FormContext

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
JOBS_SHOWN = 50
MESSAGES_SHOWN = 15
SENDER_STOP_SECONDS = 2.0
FORM_ROW = 1
SHEET_COPY_PREFIX = ".sheet-"
# An export of invalid rows rides in a `validate` reply beside a page of rows, under the 1 MiB
# a reply may hold; a longer one is for the command line.
MAX_EXPORT_BASE64 = 700_000
TITLE_LENGTH = 80


@dataclass
class Uploads:
    """The host's long-lived upload state: the store, the sender and the browser's session."""

    store: Store
    sender: BackgroundSender
    session_cookie: str | None = None


_uploads_lock = threading.Lock()


def uploads(context: HostContext) -> Uploads:
    """Opens the store and starts the sender on first use; pending work resumes from then on."""
    with _uploads_lock:
        existing = context.services.get("uploads")
        if existing is not None:
            return existing
        from dhims2.browser.sender import BackgroundSender
        from dhims2.queue.recovery import open_recovering
        from dhims2.queue.service import UploadSettings
        from dhims2.queue.store import STORE_FILE_NAME
        from dhims2.workspace.config import data_dir
        from dhims2.workspace.connection import host_client

        _remove_stale_sheet_copies(data_dir())
        store = open_recovering(data_dir() / STORE_FILE_NAME, log.warning)
        state: Uploads

        def client_factory() -> Dhis2Client:
            return host_client(context.config, state.session_cookie)

        settings = UploadSettings(batch_size=context.config.batch_size)
        sender = BackgroundSender(
            store,
            client_factory,
            context.push,
            settings=settings,
            retention_days=context.config.retention_days,
        )
        state = Uploads(store=store, sender=sender)
        context.services["uploads"] = state
        context.on_shutdown(lambda: _close(state))
        sender.start()
        return state


def _remove_stale_sheet_copies(folder: Path) -> None:
    """A host killed while reading a sheet leaves its private copy behind: delete it now."""
    for leftover in folder.glob(f"{SHEET_COPY_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _close(state: Uploads) -> None:
    state.sender.stop(SENDER_STOP_SECONDS)
    state.store.close()


def _remember_session(state: Uploads, message: Message) -> None:
    cookie = message.get("session_cookie")
    if cookie and cookie != state.session_cookie:
        state.session_cookie = cookie
        state.sender.wake()


def _client(context: HostContext, state: Uploads) -> Dhis2Client:
    from dhims2.workspace.connection import INTERACTIVE_RETRY, host_client

    return host_client(context.config, state.session_cookie, retry=INTERACTIVE_RETRY)


@register("check_connection")
def check_connection(message: Message, context: HostContext) -> dict[str, Any]:
    """Server reachable, its version, who we are signed in as and where we may capture."""
    state = uploads(context)
    _remember_session(state, message)
    with _client(context, state) as client:
        info = client.server_info()
        user = client.current_user()
    state.sender.wake()
    return {
        "server": context.config.server,
        "version": info.version_text,
        "user": {"id": user.id, "username": user.username},
        "org_units": sorted(user.org_unit_ids),
        "auth": context.config.auth,
        "sender": state.sender.state,
        "pending": state.store.pending_count(),
    }


@register("get_program")
def get_program(message: Message, context: HostContext) -> dict[str, Any]:
    """The form's metadata for the popup; answered from the cache when DHIS2 is unreachable."""
    state = uploads(context)
    form = _form_context(context, state, message.get("program"), message.get("stage"))
    return {
        "program": form.form.to_json(),
        "from_cache": form.from_cache,
        "org_units": [{"id": uid, "name": name} for uid, name in form.facilities],
    }


@register("upload")
def upload(message: Message, context: HostContext) -> dict[str, Any]:
    """Validates and queues the records, then returns; the sender takes them to DHIS2."""
    from dhims2.queue.service import UploadService

    with _read_request(message, context) as (state, request), _client(context, state) as client:
        service = UploadService(state.store, client, listener=context.push)
        batch_id = service.queue(
            request.prepared, program=request.program, stage=request.stage, source=request.source
        )
    state.sender.wake()
    summary = state.store.batch(batch_id)
    records, next_page = _records_page(state.store, summary, 0, DEFAULT_PAGE_SIZE)
    return {"batch": summary.to_json(), "records": records, "next_page": next_page}


@register("validate")
def validate(message: Message, context: HostContext) -> dict[str, Any]:
    """A dry run: the same checks as `upload`, nothing stored and nothing sent.

    For a sheet the reply also names the workbook's sheets, and with `export` it carries the
    invalid rows as CSV with their reasons, written as `dhims2 upload --export-invalid` does.
    """
    from dhims2.queue.service import error_json

    if message.get("export") and "sheet" not in message:
        raise ProtocolError(
            "INVALID_MESSAGE",
            "export: only the invalid rows of a sheet can be exported",
            {"field": "export", "rule": "sheet"},
        )
    total = 0
    invalid = []
    with _read_request(message, context) as (_state, request):
        for record in request.prepared:
            total += 1
            if not record.ok:
                invalid.append(
                    {"row": record.row, "errors": [error_json(error) for error in record.errors]}
                )
        export = _invalid_rows_export(message, request, invalid) if message.get("export") else None
    budget = PAGE_BUDGET_BYTES - (len(export["content_base64"]) if export else 0)
    page = paginate(
        invalid,
        page=message.get("page", 0),
        page_size=message.get("page_size", DEFAULT_PAGE_SIZE),
        budget_bytes=budget,
    )
    reply: dict[str, Any] = {
        "total": total,
        "valid": total - len(invalid),
        "rejected": len(invalid),
        "records": page.items,
        "next_page": page.next_page,
    }
    if "sheet" in message:
        reply.update(sheet=request.sheet, sheets=list(request.sheets))
    if export is not None:
        reply["export"] = export
    return reply


@register("list_templates")
def list_templates(message: Message, context: HostContext) -> dict[str, Any]:
    """The mapping templates shipped with the host, for the popup's choice of column layout."""
    from dhims2.sheets.templates import load_template, shipped_templates

    listed = []
    for name in shipped_templates():
        template = load_template(name)
        title = _template_title(template)
        listed.append({"name": name, "title": title, "description": template.description})
    return {"templates": listed}


def _template_title(template: Template) -> str:
    """A template's name for a choice list: its description's first clause ("The DHIMS2
    In-Patient Morbidity and Mortality sheet: ..."), else its name."""
    first_clause = re.split(r"[:;]|\.(?:\s|$)", template.description, maxsplit=1)[0].strip()
    if len(first_clause) > TITLE_LENGTH:
        first_clause = first_clause[: TITLE_LENGTH - 1].rstrip() + "…"
    return first_clause or template.name


def _invalid_rows_export(
    message: Message, request: _Request, invalid: list[dict[str, Any]]
) -> dict[str, Any]:
    """The sheet's invalid rows as CSV with a reason column, from a private folder deleted after;
    MESSAGE_TOO_LARGE, naming the command that writes the file instead, when it would not fit."""
    from dhims2.sheets.preparation import reason_text, write_invalid_rows
    from dhims2.workspace.config import data_dir

    assert request.file is not None
    reasons = {item["row"]: reason_text(item["errors"]) for item in invalid}
    with tempfile.TemporaryDirectory(dir=data_dir(), prefix=".export-") as folder:
        out_path = Path(folder) / "invalid.csv"
        rows = write_invalid_rows(request.file, reasons, out_path, sheet=request.sheet)
        size = out_path.stat().st_size
        # base64 writes 4 characters for every 3 bytes, and for a last group of 1 or 2.
        if 4 * -(-size // 3) > MAX_EXPORT_BASE64:
            command = _dry_run_command(message["sheet"], request.sheet)
            raise ProtocolError(
                "MESSAGE_TOO_LARGE",
                f"the {rows} invalid rows are too many to hand to the browser; write them to a "
                f"file on this computer with: {command}",
                {"rows": rows, "bytes": size, "command": command},
            )
        content = out_path.read_bytes()
    return {
        "name": f"{Path(request.source).stem}-invalid-rows.csv",
        "content_base64": base64.b64encode(content).decode("ascii"),
        "rows": rows,
    }


def _dry_run_command(sheet: dict[str, Any], sheet_read: str | None) -> str:
    """The `dhims2` command that checks the same file the same way and exports its invalid rows."""
    words = ["dhims2", "upload", shlex.quote(Path(sheet["name"]).name)]
    template = sheet.get("template")
    if isinstance(template, str):
        words += ["--template", shlex.quote(template)]
    elif template is not None:
        words += ["--template", "TEMPLATE.json"]
    if sheet_read is not None:
        words += ["--sheet", shlex.quote(sheet_read)]
    return " ".join([*words, "--dry-run", "--export-invalid", "invalid-rows.csv"])


@register("list_batches")
def list_batches(message: Message, context: HostContext) -> dict[str, Any]:
    store = uploads(context).store
    offset = message.get("page", 0)
    page_size = message.get("page_size", DEFAULT_PAGE_SIZE)
    # One more than asked says whether a next page exists without counting every batch.
    batches = [b.to_json() for b in store.list_batches(offset=offset, limit=page_size + 1)]
    page = paginate(batches[:page_size], page_size=page_size)
    more = len(batches) > page_size or page.next_page is not None
    next_page = offset + len(page.items) if more else None
    return {
        "batches": page.items,
        "next_page": next_page,
        "total": store.batch_count(),
        "sender": uploads(context).sender.state,
    }


@register("get_batch")
def get_batch(message: Message, context: HostContext) -> dict[str, Any]:
    """A batch's counts, its DHIS2 jobs with the server's own messages, and a page of records."""
    store = uploads(context).store
    summary = store.batch(message["batch"])
    offset = message.get("page", 0)
    page_size = message.get("page_size", DEFAULT_PAGE_SIZE)
    records, next_page = _records_page(store, summary, offset, page_size)
    jobs = store.batch_jobs(summary.id)
    # The latest jobs and their last messages always fit in a reply, however big the batch.
    shown_jobs = [
        {
            "id": job.id,
            "state": job.state,
            "messages": job.messages[-MESSAGES_SHOWN:],
            "error": job.error,
        }
        for job in jobs[-JOBS_SHOWN:]
    ]
    return {
        "batch": summary.to_json(),
        "jobs": shown_jobs,
        "jobs_total": len(jobs),
        "records": records,
        "next_page": next_page,
    }


@register("get_patients")
def get_patients(message: Message, context: HostContext) -> dict[str, Any]:
    """Which admission each record of a page of a batch is: its patient number and admission
    date, read from the values this computer keeps (null once they are purged).

    The popup asks while a batch is open and keeps nothing: patient data stays in the store.
    """
    from dhims2.forms.metadata import IDENTITY_DATA_ELEMENTS

    store = uploads(context).store
    summary = store.batch(message["batch"])
    offset = message.get("page", 0)
    page_size = message.get("page_size", DEFAULT_PAGE_SIZE)
    # Programs without a known natural key have no patient number to show.
    identity = IDENTITY_DATA_ELEMENTS.get(summary.program, (None, None))
    patient_element, admission_element = identity[0], identity[-1]
    records = []
    for record in store.batch_records(summary.id, offset=offset, limit=page_size):
        values = {
            item.get("dataElement"): item.get("value")
            for item in (record.event or {}).get("dataValues", [])
        }
        records.append(
            {
                "row": record.row,
                "patient_number": values.get(patient_element),
                "admission_date": values.get(admission_element),
            }
        )
    following = offset + len(records)
    return {"records": records, "next_page": following if following < summary.total else None}


@register("retry")
def retry(message: Message, context: HostContext) -> dict[str, Any]:
    state = uploads(context)
    state.store.batch(message["batch"])  # raises UnknownBatch (NOT_FOUND)
    requeued = state.store.retry_failed(message["batch"])
    state.sender.wake()
    return {"requeued": requeued, "batch": state.store.batch(message["batch"]).to_json()}


@register("cancel")
def cancel(message: Message, context: HostContext) -> dict[str, Any]:
    state = uploads(context)
    state.store.batch(message["batch"])  # raises UnknownBatch (NOT_FOUND)
    cancelled = state.store.cancel_queued(message["batch"])
    return {"cancelled": cancelled, "batch": state.store.batch(message["batch"]).to_json()}


@register("forget")
def forget(message: Message, context: HostContext) -> dict[str, Any]:
    """Deletes local copies: a whole finished batch, or the values of records DHIS2 accepted."""
    store = uploads(context).store
    if "batch" in message:
        summary = store.batch(message["batch"])
        if summary.pending:
            raise ProtocolError(
                "BUSY",
                "this batch still has records on their way to DHIS2; cancel or wait for them",
                {"batch": summary.id, "pending": summary.pending},
            )
        return {"forgotten": store.forget_batch(summary.id)}
    try:
        before = datetime.fromisoformat(message["uploaded_before"].replace("Z", "+00:00"))
        cutoff = before.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ProtocolError(
            "INVALID_MESSAGE",
            "uploaded_before is not a moment in time (use e.g. 2025-03-14T00:00:00Z)",
            {"field": "uploaded_before"},
        ) from None
    return {"forgotten": store.purge_payloads(finished_before=cutoff)}


@dataclass(frozen=True)
class _Request:
    program: str
    stage: str
    source: str
    prepared: Iterator[PreparedRecord]
    # A sheet's file, kept until the request ends so its rows can be read again for an export;
    # the workbook sheet being read, and all of the workbook's sheets.
    file: Path | None = None
    sheet: str | None = None
    sheets: tuple[str, ...] = ()


@contextmanager
def _read_request(message: Message, context: HostContext) -> Iterator[tuple[Uploads, _Request]]:
    """The records an `upload` or `validate` carries, prepared as they are read.

    Form, records and sheet all pass through the same column check, template and duplicate
    rules as `dhims2 upload`, so a row gets the same verdict in the browser as on the CLI.
    """
    from dhims2.sheets.preparation import ColumnError, prepared_records

    state = uploads(context)
    _remember_session(state, message)
    with _open_source(message, context) as (program, stage, source, file):
        form = _form_context(context, state, program, stage)
        try:
            prepared = prepared_records(source, _preparer(context, form, message))
        except ColumnError as error:
            # The workbook's sheets let the clerk pick another sheet when this one is not the table.
            columns = [{"field": e.field, "message": e.message} for e in error.errors]
            raise ProtocolError(
                "INVALID_RECORDS",
                str(error),
                {"columns": columns, "sheet": source.sheet, "sheets": list(source.sheets)},
            ) from None
        yield (
            state,
            _Request(program, stage, source.name, prepared, file, source.sheet, source.sheets),
        )


def _records_page(
    store: Store, summary: Any, offset: int, page_size: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of a batch's records that fits in a reply, and where the next page starts."""
    stored = store.batch_records(summary.id, offset=offset, limit=page_size)
    page = paginate([record.to_json() for record in stored], page_size=page_size)
    following = offset + len(page.items)
    return page.items, following if following < summary.total else None


def _form_context(
    context: HostContext, state: Uploads, program: str | None, stage: str | None
) -> FormContext:
    from dhims2.workspace.connection import load_form

    with _client(context, state) as client:
        return load_form(
            client, state.store, program or context.config.program, stage or context.config.stage
        )


@contextmanager
def _open_source(
    message: Message, context: HostContext
) -> Iterator[tuple[str, str, RecordSource, Path | None]]:
    """(program, stage, records, the sheet's file or None) from whichever input the request
    carries."""
    from dhims2.forms.records import SourceRecord
    from dhims2.sheets.reading import read_json
    from dhims2.sheets.source import RecordSource

    config = context.config
    if "sheet" in message:
        with _opened_sheet(message["sheet"]) as (source, file):
            yield config.program, config.stage, source, file
        return
    if "form" in message:
        form = message["form"]
        fields: dict[str, object] = {
            "orgUnit": form["orgUnit"],
            "occurredAt": form["occurredAt"],
            **form["values"],
        }
        if "event" in form:
            fields["event"] = form["event"]
        source = RecordSource("Capture form", list(fields), iter([SourceRecord(FORM_ROW, fields)]))
        yield form["program"], form["stage"], source, None
        return
    # The message is already in memory: read it twice (columns first, then records as they are
    # queued) rather than keep a second, prepared copy of every record.
    columns = list(
        dict.fromkeys(
            field
            for record in read_json(message["records"], source_name="records")
            for field in record.fields
        )
    )
    records = read_json(message["records"], source_name="records")
    yield config.program, config.stage, RecordSource("records", columns, records), None


@contextmanager
def _opened_sheet(sheet: dict[str, Any]) -> Iterator[tuple[RecordSource, Path]]:
    """An uploaded file read through the CLI's readers, from a private folder deleted after."""
    from dhims2.sheets.reading import open_records
    from dhims2.workspace.config import data_dir

    try:
        content = base64.b64decode(sheet["content_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "INVALID_MESSAGE", "sheet.content_base64 is not base64", {"field": "sheet"}
        ) from None
    # The folder keeps the user's file name, so errors name the file the clerk picked.
    folder = Path(tempfile.mkdtemp(dir=data_dir(), prefix=SHEET_COPY_PREFIX))
    path = folder / _file_name(sheet["name"])
    try:
        path.write_bytes(content)
        with open_records(path, sheet=sheet.get("sheet")) as source:
            yield source, path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _file_name(name: str) -> str:
    """The picked file's own name where the file system can hold it, else one with its type."""
    base = Path(name).name
    try:
        usable = base not in ("", ".", "..") and "\x00" not in base and bool(os.fsencode(base))
    except UnicodeEncodeError:
        usable = False
    if usable:
        return base
    suffix = Path(base).suffix
    return "sheet" + (suffix if suffix[1:].isascii() and suffix[1:].isalnum() else ".csv")


def _preparer(context: HostContext, form: FormContext, message: Message) -> RecordPreparer:
    """A Mapper, or the sheet's template bound to the form: a shipped one by name, or inline.

    A template is never read from a path the browser names: that would open any local file.
    """
    from dhims2.forms.mapping import Mapper, RecordDefaults
    from dhims2.forms.metadata import REPORT_DATE_DATA_ELEMENT
    from dhims2.sheets.templates import Template, TemplateError, load_template, shipped_templates

    defaults = RecordDefaults(
        org_unit=context.config.org_unit,
        report_date_from=REPORT_DATE_DATA_ELEMENT.get(form.form.program_uid),
    )
    reference = message.get("sheet", {}).get("template")
    if reference is None:
        return Mapper(form.form, defaults, form.capture_org_units)
    if not isinstance(reference, dict) and reference not in shipped_templates():
        raise ProtocolError(
            "INVALID_MESSAGE",
            f"no shipped template {reference!r}; send the template itself instead",
            {"field": "sheet.template"},
        )
    # A template that is malformed or does not fit this server's form is the request's fault.
    try:
        if isinstance(reference, dict):
            template = Template.from_json(reference, source_name="template")
        else:
            template = load_template(reference)
        return template.bind(form.form, defaults, form.capture_org_units)
    except TemplateError as error:
        raise ProtocolError("INVALID_MESSAGE", str(error), {"field": "sheet.template"}) from None
