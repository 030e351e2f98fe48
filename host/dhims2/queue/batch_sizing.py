"""How many events each import job carries: fitted to what the server's finished jobs cost.

A DHIS2 tracker job costs a fixed time (preheat, validation set-up, commit) plus a time per
event, and both differ from server to server. Job durations measured on the server's own clock
(queue.jobs.server_busy_seconds) are fitted to `fixed + per_event x events`. A job costs this
client too, on its one thread: the duplicate lookup and the POST (round trips, and the body over
the clinic's link), then reading the outcome and recording it; those times are fitted the same
way. Server and client work as a two-stage pipeline (jobs in flight keep DHIS2 running ours
back to back), so R events in jobs of n take about ceil(R / n) x the slower stage's time per
job, plus one job of the faster stage, which nothing overlaps: the first job is sent before
the server has work, or the last one runs after everything is sent. Few big jobs save fixed
costs; smaller ones start sooner and finish sooner after the bottleneck. The size chosen is
the smallest whose predicted time is within TOLERANCE of the best, for the records still to
send: smaller jobs keep progress visible, lose less when one fails and leave the shared import
queue sooner to other users.
Bounds: MIN_SIZE..MAX_SIZE events, a job never predicted to run longer than MAX_JOB_SECONDS,
nor shorter than MIN_JOB_SECONDS where a bigger one is allowed, and never larger than a size a
proxy refused (HTTP 413).

The costs are remembered per server in a small file beside the store, so an upload starts with
what the earlier ones measured. A configured batch size fixes the size instead (413 still halves
it): an administrator who asks for jobs of 50 events gets them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIN_SIZE = 10
MAX_SIZE = 1000  # as the configuration's batch_size (workspace.config.MAX_BATCH_SIZE)
FIRST_SIZE = 100  # before anything is known of the server
PROBE_LIMIT = 400  # the largest job sent before any job of the server has been measured
# A job running for minutes holds the one import queue a national server shares.
MAX_JOB_SECONDS = 30.0
# Following a job costs round trips that the fit does not see (polls, its report): a job that
# runs for less than the follower's longest poll interval (queue.jobs.RUNNING_MAX_POLL) is
# followed for longer than it runs.
MIN_JOB_SECONDS = 1.0
# How much slower than the best size a smaller size may be predicted to be.
TOLERANCE = 0.02
REMEMBERED_JOBS = 50
# The records taken to be still to come while a file is read (how many is not known until its
# end): many more than any job carries, so that jobs take the size best for a long backlog.
READING_BACKLOG = 100 * MAX_SIZE
COSTS_FILE_NAME = "job-costs.json"

Samples = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class JobCost:
    """The cost of one job of n events: `fixed_seconds + per_event_seconds x n`."""

    fixed_seconds: float
    per_event_seconds: float

    def seconds(self, events: int) -> float:
        return self.fixed_seconds + self.per_event_seconds * events


NOTHING = JobCost(0.0, 0.0)


def fit_job_cost(samples: Samples) -> JobCost | None:
    """Least-squares line through (events, seconds); None until two different sizes are known.

    Noise can tilt the line below zero: a cost is never negative."""
    if len({events for events, _ in samples}) < 2:
        return None
    count = len(samples)
    mean_n = sum(n for n, _ in samples) / count
    mean_t = sum(t for _, t in samples) / count
    spread = sum((n - mean_n) ** 2 for n, _ in samples)
    slope = sum((n - mean_n) * (t - mean_t) for n, t in samples) / spread
    per_event = max(0.0, slope)
    return JobCost(max(0.0, mean_t - per_event * mean_n), per_event)


def client_cost(samples: Samples) -> JobCost:
    """This client's cost of handling a job; with one size only, all of it counts as fixed."""
    fitted = fit_job_cost(samples)
    if fitted is not None:
        return fitted
    return JobCost(sum(t for _, t in samples) / len(samples), 0.0) if samples else NOTHING


def size_for(
    server: JobCost, client: JobCost = NOTHING, *, remaining: int, limit: int = MAX_SIZE
) -> int:
    """The smallest size predicted within TOLERANCE of the best for `remaining` events."""
    upper = min(limit, MAX_SIZE)
    if server.per_event_seconds > 0:
        longest = (MAX_JOB_SECONDS - server.fixed_seconds) / server.per_event_seconds
        upper = min(upper, math.floor(longest))
    remaining = max(1, remaining)
    upper = max(1, min(upper, remaining))  # a bigger job would carry the same records
    lower = min(MIN_SIZE, upper)
    if server.per_event_seconds > 0:
        shortest = math.ceil((MIN_JOB_SECONDS - server.fixed_seconds) / server.per_event_seconds)
        lower = min(max(lower, shortest), upper)

    def seconds(events: int) -> float:
        stages = sorted((server.seconds(events), client.seconds(events)))
        return math.ceil(remaining / events) * stages[1] + stages[0]

    sizes = range(lower, upper + 1)
    good_enough = min(seconds(events) for events in sizes) * (1 + TOLERANCE)
    return next(events for events in sizes if seconds(events) <= good_enough)


class BatchSizer:
    """The size of the next job for one server, and why; learns from each job it handles."""

    def __init__(
        self, fixed_size: int | None = None, jobs: Samples = (), handling: Samples = ()
    ) -> None:
        self.fixed_size = fixed_size
        self._jobs = list(jobs)[-REMEMBERED_JOBS:]  # (events, seconds the server ran the job)
        # (events, seconds this client spent sending the job and recording its outcome)
        self._handling = list(handling)[-REMEMBERED_JOBS:]
        self._limit = MAX_SIZE  # lowered when a proxy refuses a body as too large
        self._largest_sent = 0

    @property
    def jobs(self) -> list[tuple[int, float]]:
        return list(self._jobs)

    @property
    def handling(self) -> list[tuple[int, float]]:
        return list(self._handling)

    def next_size(self, remaining: int) -> int:
        """Events for the next job, `remaining` events being left to send."""
        if self.fixed_size is not None:
            return max(1, min(self.fixed_size, self._limit))
        cost = fit_job_cost(self._jobs)
        if cost is not None:
            client = client_cost(self._handling)
            return size_for(cost, client, remaining=remaining, limit=self._limit)
        # Until two sizes are measured, each job doubles the largest one sent, so that the fixed
        # and per-event costs can be told apart soon: at most PROBE_LIMIT blind, then never
        # beyond MAX_JOB_SECONDS as if all of a measured job's time were per event.
        size = 2 * self._largest_sent if self._largest_sent else FIRST_SIZE
        if not self._jobs:
            size = min(size, PROBE_LIMIT)
        else:
            events, seconds = self._jobs[-1]
            if seconds > 0:
                size = min(size, math.floor(MAX_JOB_SECONDS * events / seconds))
        return max(1, min(self._limit, MAX_SIZE, max(MIN_SIZE, size)))

    def sent(self, events: int) -> None:
        self._largest_sent = max(self._largest_sent, events)

    def finished(self, events: int, busy_seconds: float | None) -> None:
        """A job of `events` ran for `busy_seconds` on the server (None: not measured)."""
        if busy_seconds is None or events <= 0 or not math.isfinite(busy_seconds):
            return
        self._jobs = [*self._jobs, (events, busy_seconds)][-REMEMBERED_JOBS:]

    def handled(self, events: int, seconds: float) -> None:
        """Sending a job of `events` and recording its outcome took this client `seconds`."""
        if events > 0 and math.isfinite(seconds) and seconds >= 0:
            self._handling = [*self._handling, (events, seconds)][-REMEMBERED_JOBS:]

    def refused_as_too_large(self, events: int) -> None:
        """HTTP 413 for a job of `events`: from now on at most half of it."""
        self._limit = max(1, min(self._limit, events // 2))

    def describe(self, remaining: int) -> dict[str, Any]:
        """The choice as reported to the user: the size, how it was chosen, the fitted costs."""
        cost = None if self.fixed_size is not None else fit_job_cost(self._jobs)
        if self.fixed_size is not None:
            how = "configured"
        elif cost is not None:
            how = "measured"
        else:
            how = "probing"
        return {
            "size": self.next_size(remaining),
            "how": how,
            "seconds_per_job": None if cost is None else round(cost.fixed_seconds, 4),
            "seconds_per_event": None if cost is None else round(cost.per_event_seconds, 6),
        }


class JobCostFile:
    """What each server's jobs cost to run and to handle, kept between runs (no patient data)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / COSTS_FILE_NAME

    def load(self, server: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(jobs, handling) measured earlier for `server`; none for an unknown or damaged file."""
        entry = self._read().get(server)
        if not isinstance(entry, dict):
            return [], []
        return _samples(entry.get("jobs")), _samples(entry.get("handling"))

    def save(self, server: str, sizer: BatchSizer) -> None:
        everything = self._read()
        everything[server] = {
            "jobs": [list(sample) for sample in sizer.jobs],
            "handling": [list(sample) for sample in sizer.handling],
        }
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            partial.write_text(json.dumps(everything), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as error:
            # Only the next run's first sizes depend on it: never a reason to stop an upload.
            log.warning("could not keep the measured job costs: %s", type(error).__name__)

    def _read(self) -> dict[str, Any]:
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}


def _samples(entries: object) -> list[tuple[int, float]]:
    if not isinstance(entries, list):
        return []
    return [
        (int(item[0]), float(item[1]))
        for item in entries
        if isinstance(item, list)
        and len(item) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)
        and item[0] > 0
        and math.isfinite(item[1])
        and item[1] >= 0
    ][-REMEMBERED_JOBS:]
