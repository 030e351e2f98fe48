"""Asynchronous tracker imports: one worker runs jobs one at a time for all users, as DHIS2 2.41
does, posting notifications as it goes and keeping each job's report in memory.

What DHIS2 does and where (docs/dhis2-tracker-api.md, "The import queue"): queued jobs live in the
database and survive a restart; notifications and reports live in memory and do not; a job that
was running when the server stopped stays RUNNING and blocks every tracker import until
housekeeping fails it; the next job to start is not always the oldest.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dhims2.dhis2.uids import new_uid
from dhims2.sandbox.importer import ImportOptions, ImportOutcome, completion_message
from dhims2.sandbox.knobs import Dice, Knobs
from dhims2.sandbox.store import Event
from dhims2.sandbox.version import ServerVersion

RunImport = Callable[[list[Event], ImportOptions, str], ImportOutcome]

MAX_REMEMBERED_JOBS = 500  # DHIS2 evicts notifications and reports beyond this
STAGES_BEFORE_PROCESSING = (
    "Tracker import started",
    "Loading file resource",
    "Loading file content",
    "Running PreHeat",
    "Calculating Payload Size",
    "Running PreProcess",
    "Running Validation",
)
STAGES_AFTER_PROCESSING = (
    "Running Rule Engine",
    "Running Rule Engine Validation",
    "Commit Transaction",
    "PostCommit",
)
FAILURE_REASON = "Unable to acquire JDBC Connection (sandbox job_failure_rate)"


@dataclass(eq=False)
class Job:
    uid: str
    events: list[Event]
    options: ImportOptions
    username: str
    submitted_at: float  # time.monotonic()
    notifications: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    report: dict[str, Any] | None = None
    report_visible_at: float = 0.0
    busy_seconds: float | None = None  # another user's job: holds the queue, imports nothing
    # the jobconfiguration row's jobStatus and lastExecutedStatus: kept across restarts
    status: str = "SCHEDULED"
    last_executed_status: str = "NOT_STARTED"


class JobRunner:
    def __init__(
        self, run_import: RunImport, knobs: Knobs, dice: Dice, version: ServerVersion
    ) -> None:
        self._run_import = run_import
        self._knobs = knobs
        self._dice = dice
        self._version = version
        self._condition = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._blocked_until = 0.0  # a job left RUNNING by a restart holds the queue until then
        self._stuck: Job | None = None
        self._generation = 0  # bumped by restart(): work of an older generation is dropped
        self._stopping = False
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="dhis2-sandbox-jobs", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._worker is not None:
            self._worker.join()

    def submit(self, events: list[Event], options: ImportOptions, username: str) -> str:
        job = Job(new_uid(), events, options, username, time.monotonic())
        with self._condition:
            self._jobs[job.uid] = job
            self._queue.append(job)
            self._forget_oldest_finished()
            self._condition.notify_all()
        return job.uid

    def submit_other_users_job(self, seconds: float) -> str:
        """Another user's import, queued like ours: it holds the single worker for `seconds`."""
        job = Job(new_uid(), [], ImportOptions(), "another-user", time.monotonic())
        job.busy_seconds = max(0.0, seconds)
        with self._condition:
            self._jobs[job.uid] = job
            self._queue.append(job)
            self._condition.notify_all()
        return job.uid

    def notifications(self, job_uid: str) -> list[dict[str, Any]]:
        """Newest first; [] for an unknown job and for one still waiting in the queue."""
        with self._condition:
            job = self._jobs.get(job_uid)
            return [dict(item) for item in reversed(job.notifications)] if job else []

    def report(self, job_uid: str) -> dict[str, Any] | None:
        """None until the report exists (and, with report_delay, a while after completion)."""
        with self._condition:
            job = self._jobs.get(job_uid)
            if job is None or job.report is None or time.monotonic() < job.report_visible_at:
                return None
            return job.report

    def job_configuration(self, job_uid: str) -> dict[str, str] | None:
        """The job's jobconfiguration row as GET /api/jobConfigurations/{uid} shows it; None once
        forgotten. Housekeeping fails a job left RUNNING by a restart once its time is up
        (HibernateJobConfigurationStore: lastexecutedstatus FAILED, enabled false)."""
        with self._condition:
            job = self._jobs.get(job_uid)
            if job is None:
                return None
            if job is self._stuck and time.monotonic() >= self._blocked_until:
                job.status, job.last_executed_status = "DISABLED", "FAILED"
            return {
                "id": job.uid,
                "jobType": "TRACKER_IMPORT_JOB",
                "jobStatus": job.status,
                "lastExecutedStatus": job.last_executed_status,
            }

    def restart(self) -> None:
        """What a server restart does: queued jobs stay queued (they are database rows), every
        notification and report vanishes (they are in memory), and the job that was running is
        left RUNNING, holding the queue for `stuck_job_seconds` until housekeeping fails it."""
        with self._condition:
            self._generation += 1
            if self._running is not None:
                self._blocked_until = time.monotonic() + max(0.0, self._knobs.stuck_job_seconds)
                self._stuck = self._running
            for job in self._jobs.values():
                job.notifications.clear()
                job.report = None
            self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._queue and self._running is None, timeout
            )

    def _work(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                job, generation = self._next_job(), self._generation
            starts_at = max(
                job.submitted_at + max(0.0, self._knobs.queue_delay), self._blocked_until
            )
            if not self._pause_until(starts_at, generation):
                continue
            with self._condition:
                if generation != self._generation or job not in self._queue:
                    continue
                self._queue.remove(job)
                self._running = job
                job.status = "RUNNING"
            try:
                self._process(job, generation)
            finally:
                with self._condition:
                    self._running = None
                    if job is not self._stuck:
                        job.status = "COMPLETED"
                        job.last_executed_status = "COMPLETED"
                    self._condition.notify_all()

    def _next_job(self) -> Job:
        """Usually the oldest; DHIS2 2.41 starts queued jobs from a per-node queue refilled
        every 20 s (JobScheduler.runIfDue), so a later job can start first."""
        if len(self._queue) > 1 and self._dice.chance(self._knobs.unordered_start_rate):
            return self._dice.choice(tuple(self._queue))
        return self._queue[0]

    def _pause_until(self, deadline: float, generation: int) -> bool:
        """Sleep until the deadline; False when a restart or stop cut the wait short."""
        with self._condition:
            while not self._stopping and generation == self._generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def _process(self, job: Job, generation: int) -> None:
        began = time.monotonic()
        if job.busy_seconds is not None:
            self._pause_until(began + job.busy_seconds, generation)
            return
        staged = self._version.reports_import_stages
        before = STAGES_BEFORE_PROCESSING if staged else (f"({job.username}) Import:Start",)
        for message in before:
            self._notify(job, message, generation)
        processing = self._knobs.processing_seconds(len(job.events))
        if not self._pause_until(time.monotonic() + processing, generation):
            return
        if self._dice.chance(self._knobs.job_failure_rate):
            if staged:
                # The failing stage reports the exception first, then the process fails
                # (NotifierJobProgress.failedStage, then failedProcess "Process failed: ...").
                self._notify(job, FAILURE_REASON, generation, level="ERROR")
                self._notify(
                    job,
                    f"Process failed: {FAILURE_REASON}",
                    generation,
                    level="ERROR",
                    completed=True,
                )
            else:
                self._notify(
                    job, f"({job.username}) Import:Error", generation, level="ERROR", completed=True
                )
            return
        with self._condition:
            # Holding the lock across the commit keeps a concurrent restart() from landing mid-way.
            if generation != self._generation:
                return
            outcome = self._run_import(job.events, job.options, job.username)
        for message in STAGES_AFTER_PROCESSING if staged else ():
            self._notify(job, message, generation)
        if staged:
            level = "ERROR" if outcome.status == "ERROR" else "INFO"
            self._finish(job, completion_message(outcome.report), level, outcome.report, generation)
        else:
            took = time.monotonic() - began
            message = f"({job.username}) Import:Done took {took:.2f} sec."
            self._finish(job, message, "INFO", outcome.report, generation)

    def _finish(
        self, job: Job, message: str, level: str, report: dict[str, Any], generation: int
    ) -> None:
        """The completed notification and the report appear together (unless report_delay).

        From 2.41.4 the notifier drops a notification when its queue is full, while the report
        is still stored (DefaultNotifier: pushToStore.offer with a timeout): lost_completion_rate.
        """
        with self._condition:
            if generation != self._generation:
                return  # a restart took the job's memory: neither report nor notification
            job.report = report
            job.report_visible_at = time.monotonic() + max(0.0, self._knobs.report_delay)
            if not self._dice.chance(self._knobs.lost_completion_rate):
                self._notify(job, message, generation, level=level, completed=True)

    def _notify(
        self,
        job: Job,
        message: str,
        generation: int,
        *,
        level: str = "INFO",
        completed: bool = False,
    ) -> None:
        """Adds a notification, unless a restart since `generation` took the job's memory."""
        uid = new_uid()
        notification = {
            "uid": uid,
            "level": level,
            "category": "TRACKER_IMPORT_JOB",
            "time": datetime.now().isoformat(timespec="milliseconds"),
            "message": message,
            "completed": completed,
            "id": uid,
        }
        with self._condition:  # re-entrant from _finish: Condition wraps an RLock
            if generation == self._generation:
                job.notifications.append(notification)

    def _forget_oldest_finished(self) -> None:
        while len(self._jobs) > MAX_REMEMBERED_JOBS:
            oldest = next(
                (
                    uid
                    for uid, job in self._jobs.items()
                    if job is not self._running and job not in self._queue
                ),
                None,
            )
            if oldest is None:
                return
            del self._jobs[oldest]
