"""How many events each import job carries: fitted to what the server's finished jobs cost.

A DHIS2 tracker job costs a fixed time (preheat, validation set-up, commit) plus a time per
event, and both differ from server to server. Job durations measured on the server's own clock
(queue.jobs.server_busy_seconds) are fitted to `fixed + per_event x events`; the size chosen is
the smallest that makes the fixed cost a negligible share of a job, because with jobs in flight
DHIS2 runs ours back to back and a job's time per event only falls by that share as it grows.
Smaller jobs than that keep progress visible, lose less when one fails, and leave the shared
import queue sooner to other users. Bounds: MIN_SIZE..MAX_SIZE events, a job never predicted to
run longer than MAX_JOB_SECONDS, and never larger than a size a proxy refused (HTTP 413).

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
# A size is big enough once the fixed cost is at most this share of its job's time.
FIXED_SHARE = 0.02
REMEMBERED_JOBS = 50
COSTS_FILE_NAME = "job-costs.json"


@dataclass(frozen=True)
class JobCost:
    """A server's cost of one import job: `fixed_seconds + per_event_seconds x events`."""

    fixed_seconds: float
    per_event_seconds: float

    def seconds(self, events: int) -> float:
        return self.fixed_seconds + self.per_event_seconds * events


def fit_job_cost(samples: Sequence[tuple[int, float]]) -> JobCost | None:
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


def size_for(cost: JobCost, *, limit: int = MAX_SIZE) -> int:
    """The smallest size whose fixed cost is at most FIXED_SHARE of its job, within bounds."""
    if cost.per_event_seconds <= 0:
        wanted = float(MAX_SIZE)
    else:
        wanted = cost.fixed_seconds * (1 - FIXED_SHARE) / (FIXED_SHARE * cost.per_event_seconds)
        longest = (MAX_JOB_SECONDS - cost.fixed_seconds) / cost.per_event_seconds
        wanted = min(wanted, longest)
    return max(1, min(limit, MAX_SIZE, max(MIN_SIZE, math.ceil(wanted))))


class BatchSizer:
    """The size of the next job for one server, and why; learns from each finished job."""

    def __init__(self, fixed_size: int | None = None, samples: Sequence[tuple[int, float]] = ()):
        self.fixed_size = fixed_size
        self._samples = list(samples)[-REMEMBERED_JOBS:]
        self._limit = MAX_SIZE  # lowered when a proxy refuses a body as too large
        self._largest_sent = 0

    @property
    def samples(self) -> list[tuple[int, float]]:
        return list(self._samples)

    @property
    def cost(self) -> JobCost | None:
        return fit_job_cost(self._samples)

    def next_size(self) -> int:
        if self.fixed_size is not None:
            return max(1, min(self.fixed_size, self._limit))
        cost = self.cost
        if cost is not None:
            return size_for(cost, limit=self._limit)
        # Until two sizes are measured, each job doubles the largest one sent, so that the fixed
        # and per-event costs can be told apart soon: at most PROBE_LIMIT blind, then never
        # beyond MAX_JOB_SECONDS as if all of a measured job's time were per event.
        size = 2 * self._largest_sent if self._largest_sent else FIRST_SIZE
        if not self._samples:
            size = min(size, PROBE_LIMIT)
        else:
            events, seconds = self._samples[-1]
            if seconds > 0:
                size = min(size, math.floor(MAX_JOB_SECONDS * events / seconds))
        return max(1, min(self._limit, MAX_SIZE, max(MIN_SIZE, size)))

    def sent(self, events: int) -> None:
        self._largest_sent = max(self._largest_sent, events)

    def finished(self, events: int, busy_seconds: float | None) -> None:
        """A job of `events` ran for `busy_seconds` on the server (None: not measured)."""
        if busy_seconds is None or events <= 0 or not math.isfinite(busy_seconds):
            return
        self._samples = [*self._samples, (events, busy_seconds)][-REMEMBERED_JOBS:]

    def refused_as_too_large(self, events: int) -> None:
        """HTTP 413 for a job of `events`: from now on at most half of it."""
        self._limit = max(1, min(self._limit, events // 2))

    def describe(self) -> dict[str, Any]:
        """The choice as reported to the user: the size, how it was chosen, the fitted costs."""
        cost = None if self.fixed_size is not None else self.cost
        if self.fixed_size is not None:
            how = "configured"
        elif cost is not None:
            how = "measured"
        else:
            how = "probing"
        return {
            "size": self.next_size(),
            "how": how,
            "seconds_per_job": None if cost is None else round(cost.fixed_seconds, 4),
            "seconds_per_event": None if cost is None else round(cost.per_event_seconds, 6),
        }


class JobCostFile:
    """The measured job durations of each server, kept between runs (no patient data)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / COSTS_FILE_NAME

    def load(self, server: str) -> list[tuple[int, float]]:
        entries = self._read().get(server)
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

    def save(self, server: str, samples: Sequence[tuple[int, float]]) -> None:
        everything = self._read()
        everything[server] = [list(sample) for sample in samples[-REMEMBERED_JOBS:]]
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
