"""How a batch's outcome is shown on the command line: one JSON object, or a human summary."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from dhims2.queue.store import FAILED, REJECTED, BatchSummary, Store

ERROR_KEYS = ("code", "dataElement", "field", "value", "message")


def print_batch(store: Store, batch_id: str, *, as_json: bool, out: TextIO = sys.stdout) -> None:
    """The batch's outcome as one JSON object (`--json`) or as a summary for people."""
    if as_json:
        write_batch_json(store, batch_id, out)
    else:
        print_summary(store, batch_id, out)


def write_batch_json(store: Store, batch_id: str, out: TextIO = sys.stdout) -> None:
    """The `--json` shape: counts plus every record with its state and errors.

    Written record by record, so a batch of any size is printed in bounded memory.
    """
    counts = store.batch(batch_id).to_json()
    head = {
        "batch": batch_id,
        **{key: counts[key] for key in ("total", "created", "updated", "rejected", "failed")},
        "pending": counts["pending"],
    }
    out.write(json.dumps(head)[:-1] + ', "records": [')
    for index, record in enumerate(store.iter_batch_records(batch_id)):
        entry = {
            "row": record.row,
            "event": record.event_uid,
            "state": record.state,
            "errors": [{key: error.get(key) for key in ERROR_KEYS} for error in record.errors],
        }
        out.write((", " if index else "") + json.dumps(entry))
    out.write("]}\n")


def print_summary(store: Store, batch_id: str, out: TextIO = sys.stdout) -> None:
    summary = store.batch(batch_id)
    counts = summary.to_json()
    print(f"Batch {summary.id}: {summary.total} records from {summary.source}", file=out)
    print(
        "  "
        + ", ".join(f"{counts[key]} {key}" for key in ("created", "updated", "rejected"))
        + f", {counts['failed']} failed, {counts['pending']} pending",
        file=out,
    )
    for record in store.iter_batch_records(batch_id):
        if record.state in (REJECTED, FAILED):
            for error in record.errors:
                print(f"  row {record.row}: {record.state}: {describe_error(error)}", file=out)
    if counts["pending"]:
        print(
            f"  {counts['pending']} records are still with DHIS2 or waiting to be sent;"
            f" `dhims2 status {summary.id} --follow` follows them to the end",
            file=out,
        )


def describe_error(error: dict[str, Any]) -> str:
    where = error.get("field") or error.get("dataElement")
    value = error.get("value")
    prefix = f"{where}" + (f" = {value!r}" if value not in (None, "") else "") if where else ""
    code = error.get("code") or ""
    message = error.get("message") or ""
    return f"{prefix}: {message} [{code}]" if prefix else f"{message} [{code}]"


def exit_status(summary: BatchSummary) -> int:
    """0 when every record reached DHIS2 (created or updated), else 1."""
    unfinished = summary.pending + sum(summary.counts.get(state, 0) for state in (REJECTED, FAILED))
    return 0 if unfinished == 0 else 1


class ProgressLine:
    """A one-line progress bar on a terminal, fed by the service's batch.progress messages."""

    WIDTH = 30

    def __init__(self, batch_id: str | None = None, out: TextIO = sys.stderr) -> None:
        self.batch_id = batch_id
        self.out = out
        self.enabled = out.isatty()

    def __call__(self, message: dict[str, Any]) -> None:
        if not self.enabled or message.get("type") != "batch.progress":
            return
        if self.batch_id is not None and message.get("batch") != self.batch_id:
            return
        total = message["total"] or 1
        done = total - message["pending"]
        filled = self.WIDTH * done // total
        self.out.write(
            f"\r[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{message['total']}"
            f"  created {message['created']}  updated {message['updated']}"
            f"  rejected {message['rejected']}  failed {message['failed']} "
        )
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self.out.write("\n")
            self.out.flush()
