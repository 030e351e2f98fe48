"""How a batch's outcome is shown on the command line: one JSON object, or a human summary."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from dhims2.queue.store import (
    FAILED,
    READ,
    READING,
    READING_STOPPED,
    REJECTED,
    BatchSummary,
    Store,
)

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
        "reading": counts["reading"],
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
    repeated = RepeatedErrors()
    for record in store.iter_batch_records(batch_id):
        if record.state in (REJECTED, FAILED):
            for error in record.errors:
                repeated.add(record.row, f"{record.state}: {describe_error(error)}")
    repeated.print(out)
    if counts["pending"]:
        print(
            f"  {counts['pending']} records are still with DHIS2 or waiting to be sent;"
            f" `dhims2 status {summary.id} --follow` follows them to the end",
            file=out,
        )
    if summary.reading == READING_STOPPED:
        print(
            f"  {summary.source} was not read to the end (the upload was stopped): upload it"
            " again for the rest; the records already sent are updated, not created twice",
            file=out,
        )
    if counts["failed"]:
        print(
            f"  {counts['failed']} records failed to reach DHIS2;"
            f" `dhims2 retry {summary.id}` sends them again",
            file=out,
        )


class RepeatedErrors:
    """The errors of many rows, each told once: the same error on several rows is one line with
    the number of rows and the first of them, so a fault of every row does not fill the screen.
    (`--json` keeps every error of every row.)"""

    FIRST_ROWS = 5

    def __init__(self) -> None:
        self._rows: dict[str, list[int]] = {}
        self._counts: dict[str, int] = {}

    def add(self, row: int, text: str) -> None:
        rows = self._rows.setdefault(text, [])
        if len(rows) < self.FIRST_ROWS:
            rows.append(row)
        self._counts[text] = self._counts.get(text, 0) + 1

    def print(self, out: TextIO = sys.stdout) -> None:
        for text, rows in self._rows.items():
            count = self._counts[text]
            if count == 1:
                print(f"  row {rows[0]}: {text}", file=out)
                continue
            first = ", ".join(map(str, rows)) + (", ..." if count > len(rows) else "")
            print(f"  {count} rows ({first}): {text}", file=out)


def describe_error(error: dict[str, Any]) -> str:
    where = error.get("field") or error.get("dataElement")
    value = error.get("value")
    prefix = f"{where}" + (f" = {value!r}" if value not in (None, "") else "") if where else ""
    code = error.get("code") or ""
    message = error.get("message") or ""
    return f"{prefix}: {message} [{code}]" if prefix else f"{message} [{code}]"


def exit_status(summary: BatchSummary) -> int:
    """0 when every record of the file reached DHIS2 (created or updated), else 1."""
    unfinished = summary.pending + sum(summary.counts.get(state, 0) for state in (REJECTED, FAILED))
    return 0 if unfinished == 0 and summary.reading == READ else 1


class ProgressLine:
    """Progress for a person watching: on a terminal, one line redrawn in place; otherwise (a
    log, a scheduled task) a line to stderr every INTERVAL seconds at most, so a long upload is
    never silent and a log is never flooded. Fed while the file is read and validated
    (`reading`), then by the service's batch.progress messages."""

    WIDTH = 30
    INTERVAL = 5.0  # seconds between lines when stderr is no terminal
    REDRAW_INTERVAL = 0.1  # seconds between redraws on a terminal

    def __init__(self, batch_id: str | None = None, out: TextIO = sys.stderr) -> None:
        self.batch_id = batch_id
        self.out = out
        self.terminal = out.isatty()
        self._last_line_at: float | None = None
        self._latest: str | None = None
        self._drawn = False
        self._lock = threading.Lock()

    def reading(self, source_name: str, rows: int) -> None:
        counted = f": {rows} rows so far" if rows else " ..."
        self._show(f"Reading and checking {source_name}{counted}", first=rows == 0)

    def __call__(self, message: dict[str, Any]) -> None:
        if message.get("type") == "jobs.sized":
            self._say(job_size_text(message))
            return
        if message.get("type") != "batch.progress":
            return
        if self.batch_id is not None and message.get("batch") != self.batch_id:
            return
        total = message["total"] or 1
        done = total - message["pending"]
        filled = self.WIDTH * done // total
        bar = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] " if self.terminal else "Uploading: "
        still_reading = "  (reading the file)" if message.get("reading") == READING else ""
        self._show(
            f"{bar}{done}/{message['total']}"
            f"  created {message['created']}  updated {message['updated']}"
            f"  rejected {message['rejected']}  failed {message['failed']}{still_reading} ",
            first=not self._drawn,
        )
        self._drawn = True

    def finish(self) -> None:
        if self.terminal and self._latest is not None:
            self.out.write(f"\r{self._latest}\x1b[K\n")  # the last state, even if not drawn yet
            self.out.flush()

    def _say(self, text: str) -> None:
        """A line of its own that the progress line does not overwrite."""
        self.out.write(f"\r{text}\x1b[K\n" if self.terminal else text + "\n")
        self.out.flush()

    def _show(self, text: str, *, first: bool = False) -> None:
        # Told from the thread that stores a file's records as well as from the sending one.
        with self._lock:
            self._show_now(text, first=first)

    def _show_now(self, text: str, *, first: bool) -> None:
        self._latest = text
        now = time.monotonic()
        interval = self.REDRAW_INTERVAL if self.terminal else self.INTERVAL
        last = self._last_line_at
        if not first and last is not None and now - last < interval:
            return
        self.out.write(f"\r{text}\x1b[K" if self.terminal else text.rstrip() + "\n")
        self._last_line_at = now
        self.out.flush()


def job_size_text(sized: dict[str, Any]) -> str:
    """The job size the service chose (a `jobs.sized` message), and why, in one line."""
    size = sized["size"]
    if sized["how"] == "configured":
        return f"Jobs of {size} events (the configured batch size)"
    if sized["how"] == "probing":
        return f"Jobs of {size} events (measuring the server's job costs)"
    return (
        f"Jobs of {size} events (sized to the server: {sized['seconds_per_job']:.2f} s per job"
        f" + {sized['seconds_per_event'] * 1000:.1f} ms per event)"
    )
