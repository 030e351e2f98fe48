"""Upload batches: queue prepared records, send them as tracker imports, follow the jobs, resume.

Data flows one way: prepared records -> store (queued) -> DHIS2 client (jobs) -> store (outcome).
Every transition is committed before the network call that depends on it, and event UIDs are
fixed at queue time, so any re-send after a crash or a lost answer is an update, never a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.errors import Dhis2Error, RequestRejected, ServerError
from dhims2.dhis2.uids import is_uid, new_uid
from dhims2.forms.duplicates import duplicate_error
from dhims2.forms.mapping import PreparedRecord
from dhims2.forms.metadata import IDENTITY_DATA_ELEMENTS
from dhims2.forms.text import invalid_text_errors
from dhims2.queue import store as states
from dhims2.queue.batch_sizing import READING_BACKLOG, BatchSizer, JobCostFile
from dhims2.queue.feed import FEED_WAIT, STORE_CHUNK, BatchFeed
from dhims2.queue.jobs import JobFollower, JobOutcome
from dhims2.queue.runlock import LockHeld, RunLock
from dhims2.queue.server_match import events_on_server
from dhims2.queue.store import NewRecord, Store, StoredRecord, UnknownBatch

log = logging.getLogger(__name__)

# Rules DHIS2 applies only when updating an event (BlockEntryFormAfterCompletionValidator,
# DateValidator, ExistenceValidator). On an event whose UID we minted and no earlier upload
# imported, they mean a first send we never heard back from has already created it.
UPDATE_ONLY_RULES = frozenset({"E1326", "E1043", "E1082"})
_E1302_VALUE = re.compile(r"but the value `(.*)` is not\.")

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class UploadSettings:
    # Events per job; None: sized to the server's measured job costs (queue.batch_sizing).
    batch_size: int | None = None
    # DHIS2 runs one tracker import at a time; a few queued behind it keep the server busy
    # without flooding a shared national server's queue.
    max_jobs_in_flight: int = 3
    # A record is failed after this many sends whose job failed, or that DHIS2 was seen running
    # and then lost without its events: one re-send at most, as every send adds to the one
    # import queue a whole national server shares.
    max_sends: int = 2


class UploadService:
    """Sends queued records to one DHIS2 server and records each one's outcome."""

    def __init__(
        self,
        store: Store,
        client: Dhis2Client,
        *,
        settings: UploadSettings | None = None,
        follower: JobFollower | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.server = client.base_url
        self.settings = settings or UploadSettings()
        # Job submission times are stored as wall-clock times, so follow on the same clock.
        self.follower = follower or JobFollower(client, clock=time.time)
        self._listener = listener
        self._identity_key = store.install_secret("identity-key")
        self._job_costs = JobCostFile(store.path.parent)
        self._sizer = BatchSizer(self.settings.batch_size, *self._job_costs.load(self.server))
        self._reported_size: dict[str, Any] | None = None
        # Jobs sent by this run: (events, seconds spent sending), until their outcome is recorded.
        self._sent_jobs: dict[str, tuple[int, float]] = {}
        # Events found on the server before their first send: their outcome is "updated".
        self._found_on_server: set[str] = set()

    # -- queueing ----------------------------------------------------------------------------

    def queue(
        self,
        records: Iterable[PreparedRecord],
        *,
        program: str,
        stage: str,
        source: str,
    ) -> str:
        """Stores a batch in one transaction; valid records are queued with their event UID,
        invalid ones rejected."""
        first_rows = FirstRows()
        new_records = (self._new_record(record, program, first_rows) for record in records)
        batch_id = self.store.create_batch(
            server=self.server, program=program, stage=stage, source=source, records=new_records
        )
        self._emit_progress(batch_id)
        return batch_id

    def queue_and_send(
        self,
        records: Iterable[PreparedRecord],
        *,
        program: str,
        stage: str,
        source: str,
        wait: bool = True,
        timeout: float | None = None,
        on_batch: Callable[[str], None] | None = None,
    ) -> str:
        """Stores the records chunk by chunk from a thread of their own while sending what is
        stored, so the first job leaves while the rest of the file is still read.

        Each chunk is committed, event UIDs included, before any of it can be claimed. The run
        lock is held from before the batch is opened until its reading ends, so a batch found
        'reading' by a process holding the lock was left by a process that died. Raises
        `LockHeld` before reading anything; a reading error (the file's own) once sending has
        stopped, with the batch's queued records cancelled; `on_batch` hears the batch id.
        """
        with RunLock(self.store.path.with_suffix(".lock")):
            self.store.stop_abandoned_reading()
            batch_id = self.store.open_batch(
                server=self.server, program=program, stage=stage, source=source
            )
            if on_batch is not None:
                on_batch(batch_id)
            feed = BatchFeed(
                self.store, batch_id, self._chunks(records, program, batch_id), self._emit_progress
            )
            feed.start()
            try:
                self._run_locked(wait=wait, timeout=timeout, stop=feed.failed, feed=feed)
            except KeyboardInterrupt:
                feed.stop()
                raise
            finally:
                # A server that cannot be reached still gets the whole file queued for later.
                feed.join()
            if feed.error is not None:
                self.store.cancel_queued(batch_id)
                self._emit_progress(batch_id)
                raise feed.error
        return batch_id

    def _chunks(
        self, records: Iterable[PreparedRecord], program: str, batch_id: str
    ) -> Iterator[list[NewRecord]]:
        """The records as stored, a chunk at a time: one job's worth first so that the first
        send comes soon, then whole jobs' worth of about STORE_CHUNK records, so that fewer
        commits wait on the disk and no job leaves part-filled while the file is read."""
        first_rows = FirstRows(
            lambda identity: self.store.first_row_with_identity(batch_id, identity)
        )
        iterator = iter(records)
        job = size = self._sizer.next_size(READING_BACKLOG)
        while chunk := list(itertools.islice(iterator, size)):
            yield [self._new_record(record, program, first_rows) for record in chunk]
            # Resumed only once the chunk is committed: its rows are in the store's index now.
            first_rows.forget_unstored()
            size = job * max(1, STORE_CHUNK // job)

    def _new_record(self, record: PreparedRecord, program: str, first_rows: FirstRows) -> NewRecord:
        event = dict(record.event)
        identity_elements = IDENTITY_DATA_ELEMENTS.get(program)
        identity = self._identity(event, identity_elements)
        errors = [error_json(error) for error in record.errors]
        if not errors:
            errors = [error_json(e) for e in invalid_text_errors(event, record.fields)]
        if not errors and identity is not None:
            first_row = first_rows.earlier(identity, record.row)
            if first_row is not None:
                doubled = duplicate_error(event, record.fields, first_row, identity_elements or ())
                errors.append(error_json(doubled))
        if errors:
            event.setdefault("event", new_uid())
            return NewRecord(record.row, event, record.fields, None, states.REJECTED, errors)
        if not is_uid(event.get("event")):
            known = identity and self.store.event_uid_for_identity(self.server, identity)
            event["event"] = known or new_uid()
        return NewRecord(record.row, event, record.fields, identity)

    def _identity(self, event: dict[str, Any], elements: tuple[str, ...] | None) -> str | None:
        """A keyed hash of the record's natural key: dedupes without storing who the patient is."""
        if is_uid(event.get("event")):
            key: Any = ["event", event["event"]]
        else:
            values = {item["dataElement"]: item["value"] for item in event.get("dataValues", [])}
            if elements:
                if any(not values.get(uid) for uid in elements):
                    return None
                key = [event.get("program"), event.get("orgUnit"), [values[u] for u in elements]]
            else:
                # Without a known natural key only an identical record is the same record.
                key = [event.get("program"), event.get("orgUnit"), event.get("occurredAt"), values]
        message = json.dumps(key, sort_keys=True).encode()
        return hmac.new(self._identity_key, message, hashlib.sha256).hexdigest()

    # -- sending and following ---------------------------------------------------------------

    def run(
        self,
        *,
        wait: bool = True,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Sends every queued record and follows every open job of this server.

        With `wait`, returns when nothing is pending, at `timeout`, or when `stop` is set; jobs
        still running then stay 'importing' and are followed by the next run. Without `wait`,
        returns once every queued record has been handed to DHIS2. Raises `LockHeld` when
        another process is sending from the same data folder, and the client's `Dhis2Error`s
        when the server cannot be used (records then stay queued for the next run).
        """
        with RunLock(self.store.path.with_suffix(".lock")):
            self.store.stop_abandoned_reading()
            self._run_locked(wait=wait, timeout=timeout, stop=stop, feed=None)

    def _run_locked(
        self,
        *,
        wait: bool,
        timeout: float | None,
        stop: threading.Event | None,
        feed: BatchFeed | None,
    ) -> None:
        """`run` under the run lock; with a `feed`, also until its file is read and stored."""
        self.store.recover_interrupted_sends(self.server)
        if not self.client.supports_tracker_import():
            self._run_legacy(stop, feed)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (stop and stop.is_set()):
            # Both before claiming: a chunk stored after the claim sets `arrived` again, and a
            # feed seen done here had committed every chunk before the claim.
            reading = feed is not None and feed.reading()
            if feed is not None:
                feed.arrived.clear()
            in_flight = self.store.pending_jobs(self.server)
            room = self.settings.max_jobs_in_flight - len(in_flight) if wait else None
            if self._submit_queued(room, stop, reading):
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            if in_flight and wait:
                # While the file is read, a newly stored chunk ends the wait to fill a free slot.
                wake = feed.arrived if feed is not None and reading and room else stop
                self._follow_until_one_finishes(in_flight, remaining, wake)
            elif feed is not None and reading:
                feed.arrived.wait(FEED_WAIT if remaining is None else min(remaining, FEED_WAIT))
            else:
                return

    def _submit_queued(self, room: int | None, stop: threading.Event | None, reading: bool) -> bool:
        """Submits jobs while there is room; True if at least one was submitted."""
        submitted = False
        while room is None or room > 0:
            if stop and stop.is_set():
                break
            job = self._next_job(reading)
            if job is None:
                break
            size, remaining = job
            records = self.store.claim_for_sending(self.server, size)
            if not records:
                break
            self._report_batch_size(remaining)
            self._submit(records)
            submitted = True
            if room is not None:
                room -= 1
        return submitted

    def _next_job(self, reading: bool) -> tuple[int, int] | None:
        """(events, records left to send) of the next job; None while a file is still read and
        less than a whole job of it is stored, so that reading ahead never leaves a short job."""
        pending = self.store.pending_count(self.server)
        # How much of a file being read is still to come is unknown: size for a long backlog.
        remaining = max(pending, READING_BACKLOG) if reading else pending
        size = self._sizer.next_size(remaining)
        if reading and pending < size:
            return None
        return size, remaining

    def _adopt_events_on_server(self, records: list[StoredRecord]) -> list[StoredRecord]:
        """Records never handed to DHIS2 yet take the UID of the server's event for the same
        admission, so a new store or another spelling of the address updates, never doubles."""
        first_sends = [record for record in records if record.job_id is None and record.event]
        if not first_sends:
            return records
        program = str(first_sends[0].payload.get("program"))
        try:
            found = events_on_server(self.client, program, first_sends)
        except RequestRejected as error:
            # A server that refuses the lookup still gets the records: the local store's
            # memory of earlier uploads is then the only guard against duplicates.
            log.warning("DHIS2 refused the duplicate lookup (%s); sending without it", error.code)
            return records
        self.store.adopt_event_uids(found)
        self._found_on_server.update(found.values())
        return [
            replace(
                record,
                event_uid=found[record.id],
                event={**record.payload, "event": found[record.id]},
            )
            if record.id in found
            else record
            for record in records
        ]

    def _without_unsendable(self, records: list[StoredRecord]) -> list[StoredRecord]:
        """Records whose values have no UTF-8 form are rejected for good; the others go on.

        Validation refuses such text; this catches records queued before it did, so that one
        of them can never hold back the records after it.
        """
        sendable, unsendable = [], []
        for record in records:
            try:
                json.dumps(record.payload, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                unsendable.append(record)
            else:
                sendable.append(record)
        if unsendable:
            self.store.finish_records(
                {
                    record.id: (
                        states.REJECTED,
                        [error_json(e) for e in invalid_text_errors(record.payload, record.fields)],
                    )
                    for record in unsendable
                }
            )
            self._emit_results(
                unsendable, {record.id: (states.REJECTED, []) for record in unsendable}
            )
        return sendable

    def _submit(self, records: list[StoredRecord]) -> None:
        records = self._without_unsendable(records)
        if not records:
            return
        record_ids = [record.id for record in records]
        submitted_at = time.time()
        try:
            records = self._adopt_events_on_server(records)
            job_id = self.client.submit_import([record.payload for record in records])
        except RequestRejected as error:
            self._after_refusal(records, error)
            return
        except BaseException:
            self.store.requeue(record_ids)
            raise
        self.store.record_job(
            job_id=job_id, server=self.server, record_ids=record_ids, submitted_at=submitted_at
        )
        log.info("job %s accepted for %d records", job_id, len(records))
        self._sizer.sent(len(records))
        self._sent_jobs[job_id] = (len(records), time.time() - submitted_at)
        self._emit_records(records, states.IMPORTING, job_id=job_id)

    def _after_refusal(self, records: list[StoredRecord], error: RequestRejected) -> None:
        """A 4xx to the submission. Only DHIS2's own verdict on the payload fails the records:
        sending the same bytes again cannot succeed. A body too large for a proxy (413) is split;
        the scheduler's 409 and a proxy's or firewall's web page are no verdict on the records,
        which wait for the next run."""
        if error.status == 413 and len(records) > 1:
            half = len(records) // 2
            self._sizer.refused_as_too_large(len(records))
            log.info("a job of %d records was too large; sending halves", len(records))
            self._submit(records[:half])
            self._submit(records[half:])
            return
        if error.status == 413:
            message = "this record alone is larger than the server accepts (HTTP 413)"
            self._finish_records(records, states.FAILED, _failure(error.code, message))
            return
        if error.from_dhis2 and error.status != 409:
            self._finish_records(records, states.FAILED, _failure(error.code, str(error)))
            return
        self.store.unclaim([record.id for record in records])
        who = "DHIS2's job scheduler" if error.from_dhis2 else "a proxy or firewall before DHIS2"
        raise ServerError(
            f"{who} did not take the upload (HTTP {error.status}); the records stay queued on"
            " this computer and are sent again shortly",
            status=error.status,
        ) from error

    def _follow_until_one_finishes(
        self, jobs: list[states.StoredJob], timeout: float | None, stop: threading.Event | None
    ) -> None:
        def on_progress(job_id: str, messages: list[str]) -> None:
            self.store.set_job_messages(job_id, messages)
            self._emit({"type": "job.progress", "job": job_id, "messages": messages})

        shown: dict[str, str] = {}

        def on_queued(job_id: str, waited: float) -> None:
            message = queue_wait_message(waited)
            if shown.get(job_id) != message:
                shown[job_id] = message
                on_progress(job_id, [message])

        outcomes = self.follower.follow(
            [(job.id, job.submitted_at) for job in jobs],
            timeout=timeout,
            on_progress=on_progress,
            on_queued=on_queued,
            on_silence=self._job_is_over_unseen,
            stop=stop,
        )
        for outcome in outcomes:
            if outcome.state == "running":
                continue
            applying = time.time()
            self._apply(outcome)
            self._learn_client_cost(outcome.job_id, time.time() - applying)
            # Return after the first finished job so its slot is refilled at once.
            return

    def _job_is_over_unseen(self, job_id: str, silent_for: float) -> bool:
        """For a job silent since it was sent: True when it can no longer bring its events.

        Either DHIS2 already holds them all (it ran while its notifications and report were
        lost), or the scheduler's row says the job is neither queued nor running (housekeeping
        failed it after a restart cut it off) or is gone. Without that evidence it may still be
        queued: False."""
        records = self.store.job_records(job_id)
        held = self.client.stored_events([record.event_uid for record in records])
        if all(record.event_uid in held for record in records):
            return True
        try:
            configuration = self.client.job_configuration(job_id)
        except Dhis2Error as error:  # not allowed to read it, or unreachable: no evidence
            log.info(
                "job %s silent for %.0f s; its status is unknown (%s)",
                job_id,
                silent_for,
                error.code,
            )
            return False
        status = configuration.get("jobStatus") if configuration else "GONE"
        log.info("job %s silent for %.0f s; DHIS2 says %s", job_id, silent_for, status)
        return status not in ("SCHEDULED", "RUNNING")

    def _apply(self, outcome: JobOutcome) -> None:
        records = self.store.job_records(outcome.job_id)
        if outcome.state == "completed" and outcome.busy_seconds is not None:
            self._sizer.finished(len(records), outcome.busy_seconds)
        if outcome.state == "completed" and outcome.report is not None:
            results = self._results_from_report(records, outcome.report)
        elif outcome.state == "forgotten":
            results = self._results_from_read_back(records)
        else:
            reason = outcome.error or "DHIS2 no longer knows this import job"
            results = {
                record.id: self._resend_or_fail(record, "JOB_FAILED", reason) for record in records
            }
        self.store.finish_job(
            outcome.job_id,
            state=outcome.state,
            messages=outcome.messages,
            error=outcome.error,
            outcomes=results,
        )
        log.info("job %s finished: %s", outcome.job_id, outcome.state)
        self._emit_results(records, results)

    def _results_from_read_back(
        self, records: list[StoredRecord]
    ) -> dict[int, tuple[str, list[dict[str, Any]]]]:
        """A job DHIS2 lost track of: the events it holds now are the outcome. The others are
        sent once more, as the job was seen running and is gone (or ended without a report)."""
        held = self.client.stored_events([record.event_uid for record in records])
        already_imported = self.store.imported_event_uids(self.server, list(held))
        results: dict[int, tuple[str, list[dict[str, Any]]]] = {}
        for record in records:
            if record.event_uid in held:
                imported = (
                    states.UPDATED if record.event_uid in already_imported else states.CREATED
                )
                results[record.id] = (imported, [])
            else:
                reason = "DHIS2 lost the import job and does not hold this record"
                results[record.id] = self._resend_or_fail(record, "JOB_LOST", reason)
        return results

    def _results_from_report(
        self, records: list[StoredRecord], report: dict[str, Any]
    ) -> dict[int, tuple[str, list[dict[str, Any]]]]:
        errors_by_event = _error_reports_by_event(report)
        uploaded_before = self.store.imported_event_uids(
            self.server, [r.event_uid for r in records]
        )
        already_imported = self._found_on_server | uploaded_before
        saved = _saved_event_uids(report)
        # The pre-send lookup also finds an event a lost answer left on the server: only our
        # own earlier uploads rule out an unanswered send.
        imported_earlier = self._imported_by_an_unanswered_send(
            [r for r in records if r.event_uid not in uploaded_before], errors_by_event
        )
        results: dict[int, tuple[str, list[dict[str, Any]]]] = {}
        for record in records:
            reports = errors_by_event.get(record.event_uid)
            if record.id in imported_earlier:
                results[record.id] = (states.CREATED, [])
            elif reports:
                results[record.id] = (
                    states.REJECTED,
                    [rejection(record.event, record.fields, r) for r in reports],
                )
            elif report.get("status") != "OK":
                # The whole payload was refused without a reason for this event (atomic mode).
                results[record.id] = self._resend_or_fail(
                    record, "IMPORT_ERROR", "DHIS2 refused the import this record was part of"
                )
            elif saved is not None and record.event_uid not in saved:
                # Saving failed on the server: with atomicMode=OBJECT DHIS2 only counts it as
                # ignored, with no error report (AbstractTrackerPersister).
                results[record.id] = self._resend_or_fail(
                    record, "NOT_SAVED", "DHIS2 did not save this record and gave no reason"
                )
            elif record.event_uid in already_imported:
                # "Updated" means DHIS2 held the event from an earlier upload. DHIS2's own
                # counts cannot say it: a send repeated after a lost answer is an update there.
                results[record.id] = (states.UPDATED, [])
            else:
                results[record.id] = (states.CREATED, [])
        return results

    def _imported_by_an_unanswered_send(
        self, records: list[StoredRecord], errors_by_event: dict[str, list[dict[str, Any]]]
    ) -> set[int]:
        """Records refused only by update-only rules although no upload of ours had imported
        their events: an earlier send whose answer was lost did. Confirmed by reading the event
        back with our values; a deleted one (E1082) cannot be read, and its UID is ours alone."""
        suspects = [
            record
            for record in records
            if (codes := {r.get("errorCode") for r in errors_by_event.get(record.event_uid, [])})
            and codes <= UPDATE_ONLY_RULES
        ]
        if not suspects:
            return set()
        held = self.client.stored_events(
            [r.event_uid for r in suspects if r.event_uid in _readable(errors_by_event)]
        )
        confirmed = set()
        for record in suspects:
            codes = {r.get("errorCode") for r in errors_by_event[record.event_uid]}
            if codes == {"E1082"} or _holds_values(held.get(record.event_uid), record.event):
                confirmed.add(record.id)
        return confirmed

    def _resend_or_fail(
        self, record: StoredRecord, code: str, reason: str
    ) -> tuple[str, list[dict[str, Any]]]:
        if record.sends < self.settings.max_sends:
            return (states.QUEUED, [])
        return (states.FAILED, _failure(code, f"{reason} (tried {record.sends} times)"))

    def _run_legacy(self, stop: threading.Event | None, feed: BatchFeed | None) -> None:
        """Servers before 2.36 have only the synchronous /api/events import."""
        while not (stop and stop.is_set()):
            reading = feed is not None and feed.reading()
            if feed is not None:
                feed.arrived.clear()
            job = self._next_job(reading)
            claimed = self.store.claim_for_sending(self.server, job[0]) if job else []
            if not claimed and feed is not None and reading:
                feed.arrived.wait(FEED_WAIT)
                continue
            if not job or not claimed:
                return
            self._report_batch_size(job[1])
            records = self._without_unsendable(claimed)
            if not records:
                continue
            try:
                records = self._adopt_events_on_server(records)
                report = self.client.import_legacy_events([record.payload for record in records])
            except BaseException:
                self.store.requeue([record.id for record in records])
                raise
            results = self._results_from_report(records, report)
            self.store.finish_records(results)
            self._emit_results(records, results)

    def _finish_records(
        self, records: list[StoredRecord], state: str, errors: list[dict[str, Any]]
    ) -> None:
        results = {record.id: (state, errors) for record in records}
        self.store.finish_records(results)
        self._emit_results(records, results)

    def _learn_client_cost(self, job_id: str, recording_seconds: float) -> None:
        """Keeps what handling a job sent by this run cost, and every measurement so far."""
        sent = self._sent_jobs.pop(job_id, None)
        if sent is not None:
            events, sending_seconds = sent
            self._sizer.handled(events, sending_seconds + recording_seconds)
        self._job_costs.save(self.server, self._sizer)

    def _report_batch_size(self, remaining: int) -> None:
        """Tells the listener how the job about to be sent was sized, when that changed."""
        choice = self._sizer.describe(remaining)
        if choice != self._reported_size:
            self._reported_size = choice
            log.info("jobs of %d events (%s)", choice["size"], choice["how"])
            self._emit({"type": "jobs.sized", **choice})

    # -- notifications -----------------------------------------------------------------------

    def _emit(self, message: dict[str, Any]) -> None:
        if self._listener is not None:
            self._listener(message)

    def _emit_results(
        self, records: list[StoredRecord], results: dict[int, tuple[str, list[dict[str, Any]]]]
    ) -> None:
        by_state: dict[str, list[StoredRecord]] = {}
        for record in records:
            by_state.setdefault(results[record.id][0], []).append(record)
        for state, group in by_state.items():
            self._emit_records(group, state, errors={r.id: results[r.id][1] for r in group})

    def _emit_records(
        self,
        records: list[StoredRecord],
        state: str,
        *,
        job_id: str | None = None,
        errors: dict[int, list[dict[str, Any]]] | None = None,
    ) -> None:
        if self._listener is None:
            return
        for record in records:
            self._emit(
                {
                    "type": "record.state",
                    "batch": record.batch_id,
                    "row": record.row,
                    "event": record.event_uid,
                    "state": state,
                    "job": job_id or record.job_id,
                    "errors": (errors or {}).get(record.id, []),
                }
            )
        for batch_id in sorted({record.batch_id for record in records}):
            self._emit_progress(batch_id)

    def _emit_progress(self, batch_id: str) -> None:
        if self._listener is None:
            return
        try:
            summary = self.store.batch(batch_id)
        except UnknownBatch:  # forgotten meanwhile: nothing left to report
            return
        self._emit({"type": "batch.progress", **summary.to_json()})


def queue_wait_message(waited: float) -> str:
    minutes = int(max(0.0, waited) // 60)
    span = "less than a minute" if minutes < 1 else f"{minutes} min"
    return f"waiting in DHIS2's queue for {span} (one import runs at a time for all users)"


def _saved_event_uids(report: dict[str, Any]) -> set[str] | None:
    """UIDs of the events DHIS2 created or updated: the EVENT object reports, which 2.41 keeps in
    every reportMode (DefaultTrackerImportService.buildImportReport). None when the report has
    none to show (a server that leaves them out, or the legacy API)."""
    bundle = report.get("bundleReport")
    type_reports = bundle.get("typeReportMap") if isinstance(bundle, dict) else None
    event_report = type_reports.get("EVENT") if isinstance(type_reports, dict) else None
    objects = event_report.get("objectReports") if isinstance(event_report, dict) else None
    if not isinstance(objects, list):
        return None
    return {item["uid"] for item in objects if isinstance(item, dict) and "uid" in item}


def _readable(errors_by_event: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Events that still exist in DHIS2 according to their errors (not deleted: E1082)."""
    return {
        uid
        for uid, reports in errors_by_event.items()
        if all(r.get("errorCode") != "E1082" for r in reports)
    }


def _holds_values(stored: dict[str, Any] | None, sent: dict[str, Any] | None) -> bool:
    if stored is None or sent is None:
        return False
    held = {item.get("dataElement"): item.get("value") for item in stored.get("dataValues", [])}
    return all(
        held.get(item["dataElement"]) == item["value"]
        for item in sent.get("dataValues", [])
        if item.get("value") not in (None, "")
    )


def _error_reports_by_event(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    validation = report.get("validationReport")
    reports = validation.get("errorReports") if isinstance(validation, dict) else None
    by_event: dict[str, list[dict[str, Any]]] = {}
    for error_report in reports if isinstance(reports, list) else []:
        if isinstance(error_report, dict) and isinstance(error_report.get("uid"), str):
            by_event.setdefault(error_report["uid"], []).append(error_report)
    return by_event


class FirstRows:
    """The first row of each identity in a batch, to refuse later rows that double it: rows not
    yet stored are held here, stored ones are found through the store's identity index, so a
    file of any length is checked in bounded memory."""

    def __init__(self, stored: Callable[[str], int | None] | None = None) -> None:
        self._stored = stored
        self._unstored: dict[str, int] = {}

    def earlier(self, identity: str, row: int) -> int | None:
        """The row this identity first appeared on, or None (and `row` is now its first)."""
        first = self._unstored.get(identity)
        if first is None and self._stored is not None:
            first = self._stored(identity)
        if first is None:
            self._unstored[identity] = row
        return first

    def forget_unstored(self) -> None:
        """The rows held so far are stored: the store's index answers for them from now on."""
        if self._stored is not None:
            self._unstored.clear()


@dataclass(frozen=True)
class Interruption:
    """Why a run stopped before the queue was empty; the records wait safely for the next run."""

    code: str
    message: str
    exit_status: int

    def __str__(self) -> str:
        return self.message


def run_service(
    service: UploadService, *, wait: bool = True, timeout: float | None = None
) -> Interruption | None:
    """Runs the service, turning the ways a run can stop early into a message for the user."""
    return interrupted(lambda: service.run(wait=wait, timeout=timeout))


def interrupted(run: Callable[[], object]) -> Interruption | None:
    """Runs `run` (a service's run or queue_and_send); the ways it can stop early, as a message."""
    try:
        run()
    except LockHeld:
        return Interruption(
            "BUSY",
            "another dhims2 process is already sending from this computer;"
            " it sends these records too",
            1,
        )
    except Dhis2Error as error:
        return Interruption(
            error.code,
            f"{error.message}. Nothing is lost: the records are saved on this computer and are"
            " sent by the next `dhims2 status --follow` or upload",
            3,
        )
    return None


def validate_with_server(
    client: Dhis2Client, records: list[PreparedRecord]
) -> dict[int, list[dict[str, Any]]]:
    """DHIS2's own verdict on records (importMode=VALIDATE): errors by row, nothing stored."""
    if not records or not client.supports_tracker_import():
        return {}
    by_uid: dict[str, PreparedRecord] = {}
    events: list[dict[str, Any]] = []
    for record in records:
        event = dict(record.event)
        if not is_uid(event.get("event")):
            event["event"] = new_uid()
        by_uid[event["event"]] = record
        events.append(event)
    report = client.import_now(events, import_mode="VALIDATE")
    errors: dict[int, list[dict[str, Any]]] = {}
    for uid, reports in _error_reports_by_event(report).items():
        sent = by_uid.get(uid)
        if sent is not None:
            errors.setdefault(sent.row, []).extend(
                rejection(sent.event, sent.fields, item) for item in reports
            )
    return errors


def rejection(
    event: dict[str, Any] | None, fields: dict[str, str], error_report: dict[str, Any]
) -> dict[str, Any]:
    """DHIS2's reason, placed next to the field it concerns when its args name a data element."""
    raw_args = error_report.get("args")
    args: list[Any] = raw_args if isinstance(raw_args, list) else []
    values = {
        item.get("dataElement"): item.get("value") for item in (event or {}).get("dataValues", [])
    }
    data_element = next((arg for arg in args if arg in fields), None)
    if data_element is None:
        # Some reports name only the value (E1125: value, option set): find who sent it.
        data_element = next(
            (uid for arg in args for uid, value in values.items() if value == arg and uid), None
        )
    message = str(error_report.get("message", ""))
    if data_element is None:
        data_element = next((uid for uid in fields if uid in message), None)
    if data_element is None:
        # From 2.41.9 E1302 names only the value type and quotes the value in a sentence
        # (ValidationUtils.validateValueType): find who sent that value.
        quoted = _E1302_VALUE.search(message)
        data_element = next(
            (uid for uid, value in values.items() if quoted and value == quoted.group(1) and uid),
            None,
        )
    return {
        "code": str(error_report.get("errorCode", "")),
        "message": str(error_report.get("message", "")),
        "dataElement": data_element,
        "field": fields.get(data_element) if data_element else None,
        "value": values.get(data_element) if data_element else None,
        "source": "dhis2",
    }


def error_json(error: Any) -> dict[str, Any]:
    """A local validation error in the same shape as DHIS2's rejections."""
    return {
        "code": error.code,
        "message": error.message,
        "dataElement": error.data_element,
        "field": error.field,
        "value": error.value,
        "source": "local",
    }


def _failure(code: str, message: str) -> list[dict[str, Any]]:
    return [
        {
            "code": code,
            "message": message,
            "dataElement": None,
            "field": None,
            "value": None,
            "source": "dhims2",
        }
    ]
