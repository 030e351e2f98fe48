"""Following many asynchronous tracker import jobs, from one thread, to DHIS2's real outcome.

What a job's answers mean is in docs/dhis2-tracker-api.md: a notification list, newest first,
finished when any entry has `completed: true`; `[]` while queued and once the server has
forgotten the job; a report that may lag behind the completed notification or never come, and
that may exist while the completed notification was dropped.

One tracker import runs at a time for the whole server, all users, and queued jobs survive a
restart: silence from a job never seen running is not evidence that it is lost, however long it
lasts. Such a job is followed cheaply (polls backing off to `max_poll`) until it runs, until its
report appears, or until `on_silence` says it need not be waited for.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.errors import Dhis2Error, InvalidInput
from dhims2.dhis2.uids import is_uid

logger = logging.getLogger(__name__)

COMPLETED = "completed"
FAILED = "failed"
FORGOTTEN = "forgotten"
RUNNING = "running"

BACKOFF_FACTOR = 1.5
RUNNING_MAX_POLL = 1.0
# DHIS2 starts queued jobs from a loop that runs every 20 s (JobScheduler.LOOP_SECONDS): polling
# a queued job more often than that only adds load to a shared server.
QUEUED_MAX_POLL = 20.0
# The follower's patience, by default: how long a report may lag its completed notification, a
# job may stay silent before its events are read back, and a running job's notifications may
# stand still before its report is asked for.
REPORT_GRACE = 30.0
FORGET_AFTER = 600.0
REPORT_AFTER_SILENCE = 60.0
# A job that ended with an exception never gets a report; this many 404s after its ERROR
# completion (spread over a few growing poll intervals) tell it apart from a report that is late.
REPORT_MISSES_BEFORE_FAILED = 5

ProgressCallback = Callable[[str, list[str]], None]
# (job id, seconds waited so far) for a job that DHIS2 has not started yet
QueuedCallback = Callable[[str, float], None]
# (job id, seconds of silence) -> True when the caller found the job's outcome some other way
SilenceCallback = Callable[[str, float], bool]


@dataclass
class JobOutcome:
    job_id: str
    state: str
    report: dict | None
    messages: list[str]
    error: str | None
    # How long DHIS2 spent running the job, from its own notification times; None if unknown.
    busy_seconds: float | None = None


@dataclass
class _TrackedJob:
    job_id: str
    submitted_at: float
    interval: float
    next_poll_at: float
    messages: list[str] = field(default_factory=list)
    started: bool = False
    changed_at: float = 0.0
    report_checked_at: float = 0.0
    completed_at: float | None = None
    report_misses: int = 0
    busy_seconds: float | None = None

    def outcome(
        self, state: str, report: dict | None = None, error: str | None = None
    ) -> JobOutcome:
        return JobOutcome(self.job_id, state, report, list(self.messages), error, self.busy_seconds)


class JobFollower:
    """Polls every job on its own schedule and yields each outcome as soon as it is known."""

    def __init__(
        self,
        client: Dhis2Client,
        *,
        first_poll: float = 0.2,
        max_poll: float = QUEUED_MAX_POLL,
        report_grace: float = REPORT_GRACE,
        forget_after: float = FORGET_AFTER,
        report_after_silence: float = REPORT_AFTER_SILENCE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value in (
            ("first_poll", first_poll),
            ("max_poll", max_poll),
            ("report_grace", report_grace),
            ("forget_after", forget_after),
            ("report_after_silence", report_after_silence),
        ):
            if not _is_seconds(value) or value <= 0:
                raise InvalidInput(f"{name} must be a positive number of seconds")
        if max_poll < first_poll:
            raise InvalidInput("max_poll must not be shorter than first_poll")
        self._client = client
        self._first_poll = float(first_poll)
        self._max_poll = float(max_poll)
        self._report_grace = float(report_grace)
        self._forget_after = float(forget_after)
        self._report_after_silence = float(report_after_silence)
        self._clock = clock
        self._sleep = sleep

    def follow(
        self,
        jobs: Sequence[tuple[str, float]],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_queued: QueuedCallback | None = None,
        on_silence: SilenceCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[JobOutcome]:
        """Yield one outcome per job: each as soon as it is known, the rest as "running" once
        `timeout` seconds have passed.

        `jobs` are (job id, submitted_at) pairs in submission order; submitted_at is on this
        follower's clock (time.monotonic by default; pass the current time for jobs restored
        after a restart). `on_progress(job_id, messages)` hears each change of a job's server
        messages, oldest first. `on_queued(job_id, waited)` hears each poll of a job DHIS2 has not
        started yet. A job never seen running is given up ("forgotten") only when
        `on_silence(job_id, silent_for)`, asked after each `forget_after` seconds of silence,
        returns True. Setting `stop` ends the follow at once, like a timeout: the remaining jobs
        are yielded as "running". NotSignedIn and other non-transient errors propagate.
        """
        if timeout is not None and (not _is_seconds(timeout) or timeout < 0):
            raise InvalidInput("timeout must be a number of seconds >= 0, or None")
        tracked = self._tracked(jobs)
        return self._follow(tracked, timeout, _Callbacks(on_progress, on_queued, on_silence), stop)

    def _tracked(self, jobs: Sequence[tuple[str, float]]) -> list[_TrackedJob]:
        if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
            raise InvalidInput("jobs must be a list of (job id, submitted_at) pairs")
        now = self._clock()
        tracked: list[_TrackedJob] = []
        seen: set[str] = set()
        for position, pair in enumerate(jobs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InvalidInput(f"jobs[{position}] is not a (job id, submitted_at) pair")
            job_id, submitted_at = pair
            if not is_uid(job_id):
                raise InvalidInput(f"jobs[{position}]: the job id is not a DHIS2 UID")
            if not _is_seconds(submitted_at):
                raise InvalidInput(f"jobs[{position}]: submitted_at is not a number")
            if job_id in seen:
                raise InvalidInput(f"jobs[{position}]: job {job_id} is listed twice")
            seen.add(job_id)
            # A submission time ahead of our clock (another clock's value) must not stall polling.
            submitted_at = min(float(submitted_at), now)
            tracked.append(
                _TrackedJob(
                    job_id=job_id,
                    submitted_at=submitted_at,
                    interval=self._first_poll,
                    next_poll_at=submitted_at + self._first_poll,
                    changed_at=submitted_at,
                    report_checked_at=submitted_at,
                )
            )
        return tracked

    def _follow(
        self,
        pending: list[_TrackedJob],
        timeout: float | None,
        callbacks: _Callbacks,
        stop: threading.Event | None,
    ) -> Iterator[JobOutcome]:
        deadline = None if timeout is None else self._clock() + timeout
        while pending:
            now = self._clock()
            if (deadline is not None and now >= deadline) or (stop is not None and stop.is_set()):
                break
            for job in pending:
                # Only a clock that stepped back can leave a poll further away than its interval.
                job.next_poll_at = min(job.next_poll_at, now + job.interval)
            due = [job for job in pending if job.next_poll_at <= now]
            if not due:
                wake_at = min(job.next_poll_at for job in pending)
                if deadline is not None:
                    wake_at = min(wake_at, deadline)
                pause = max(0.0, wake_at - now)
                if stop is not None:
                    stop.wait(pause)
                else:
                    self._sleep(pause)
                continue
            for job in due:
                outcome = self._poll(job, callbacks)
                if outcome is not None:
                    pending.remove(job)
                    logger.info("job %s: %s", job.job_id, outcome.state)
                    yield outcome
        for job in pending:
            yield job.outcome(RUNNING)

    def _poll(self, job: _TrackedJob, callbacks: _Callbacks) -> JobOutcome | None:
        now = self._clock()
        try:
            notifications = self._client.job_notifications(job.job_id)
        except Dhis2Error as error:
            self._after_error(job, now, error)
            return None
        if not notifications:
            return self._settle_silent(job, now, callbacks)
        messages = [entry["message"] for entry in reversed(notifications)]
        changed = messages != job.messages
        job.messages = messages
        job.started = True
        if changed:
            job.changed_at = now
            if callbacks.on_progress is not None:
                callbacks.on_progress(job.job_id, list(messages))
        final = next((entry for entry in notifications if entry["completed"]), None)
        if final is not None:
            job.busy_seconds = server_busy_seconds(notifications)
            return self._settle_completed(job, now, final, changed)
        if self._report_is_due(job, now):
            # From 2.41.4 the notifier drops notifications when its queue is full, the completed
            # one included, while the report is still stored (DefaultNotifier).
            outcome = self._completed_if_reported(job, now)
            if outcome is not None:
                return outcome
        self._schedule(job, now, changed)
        return None

    def _report_is_due(self, job: _TrackedJob, now: float) -> bool:
        silence = self._report_after_silence
        return now - job.changed_at >= silence and now - job.report_checked_at >= silence

    def _completed_if_reported(self, job: _TrackedJob, now: float) -> JobOutcome | None:
        job.report_checked_at = now
        try:
            report = self._client.job_report(job.job_id)
        except Dhis2Error as error:
            self._after_error(job, now, error)
            return None
        return job.outcome(COMPLETED, report) if report is not None else None

    def _settle_completed(
        self, job: _TrackedJob, now: float, final: dict, changed: bool
    ) -> JobOutcome | None:
        if job.completed_at is None:
            job.completed_at = now
        try:
            report = self._client.job_report(job.job_id)
        except Dhis2Error as error:
            self._after_error(job, now, error)
            return None
        if report is not None:
            return job.outcome(COMPLETED, report)
        if final["level"] == "ERROR":
            job.report_misses += 1
            if job.report_misses >= REPORT_MISSES_BEFORE_FAILED:
                return job.outcome(FAILED, error=final["message"])
        elif now - job.completed_at >= self._report_grace:
            return job.outcome(FORGOTTEN)
        self._schedule(job, now, changed)
        return None

    def _settle_silent(
        self, job: _TrackedJob, now: float, callbacks: _Callbacks
    ) -> JobOutcome | None:
        """An empty notification list: still queued, or forgotten by the server."""
        if job.started:
            # Seen running, now unknown: the server restarted (notifications live in memory) or
            # evicted the job. Only its report can still tell the outcome.
            try:
                report = self._client.job_report(job.job_id)
            except Dhis2Error as error:
                self._after_error(job, now, error)
                return None
            return job.outcome(COMPLETED if report is not None else FORGOTTEN, report)
        # Never seen running: waiting behind other users' imports, perhaps for a long time, or
        # finished while its traces were lost. Neither is evidence that it will not run.
        if callbacks.on_queued is not None:
            callbacks.on_queued(job.job_id, now - job.submitted_at)
        if now - job.report_checked_at >= self._forget_after:
            outcome = self._completed_if_reported(job, now)
            if outcome is not None:
                return outcome
            silent_for = now - job.submitted_at
            if callbacks.on_silence is not None and callbacks.on_silence(job.job_id, silent_for):
                return job.outcome(FORGOTTEN)
        self._schedule(job, now, changed=False)
        return None

    def _after_error(self, job: _TrackedJob, now: float, error: Dhis2Error) -> None:
        """Transient errors only delay this job's next poll; any other error ends the follow."""
        if not error.retryable:
            raise error
        logger.info("job %s: polling failed (%s); polling again later", job.job_id, error.code)
        self._schedule(job, now, changed=False)

    def _schedule(self, job: _TrackedJob, now: float, changed: bool) -> None:
        # A running job can finish any moment and the clerk is watching: it is never left more
        # than RUNNING_MAX_POLL unpolled. Only jobs still waiting in the queue back off further.
        ceiling = min(self._max_poll, RUNNING_MAX_POLL) if job.started else self._max_poll
        if changed:
            job.interval = self._first_poll
        else:
            job.interval = min(job.interval * BACKOFF_FACTOR, ceiling)
        job.next_poll_at = now + job.interval


@dataclass(frozen=True)
class _Callbacks:
    on_progress: ProgressCallback | None
    on_queued: QueuedCallback | None
    on_silence: SilenceCallback | None


def server_busy_seconds(notifications: list[dict]) -> float | None:
    """Seconds from a job's first notification to its completed one, on DHIS2's own clock.

    Every notification carries its `time` (Notification.getTime), written as ISO-8601 without a
    zone (WriteDateStdSerializer: DateUtils.toIso8601NoTz). None when the times are missing or
    unreadable: the job then teaches nothing about the server's costs."""
    try:
        times = [(datetime.fromisoformat(e["time"]), e["completed"]) for e in notifications]
        seconds = (
            max(at for at, completed in times if completed) - min(at for at, _ in times)
        ).total_seconds()
    except (KeyError, TypeError, ValueError):  # no time, an unreadable one, or none completed
        return None
    return seconds if seconds >= 0 else None


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
