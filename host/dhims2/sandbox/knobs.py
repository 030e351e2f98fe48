"""Knobs that slow the sandbox down or make it fail, and the seeded dice behind the rates."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, fields
from typing import TypeVar

_Choice = TypeVar("_Choice")
_RATES = (
    "error_rate",
    "drop_before_rate",
    "drop_after_rate",
    "job_failure_rate",
    "save_drop_rate",
    "lost_completion_rate",
    "unordered_start_rate",
)


@dataclass
class Knobs:
    """Mutable while the sandbox runs: every request and job reads the current values."""

    latency: float = 0.0  # seconds added before answering every HTTP request
    per_event_seconds: float = 0.0  # job processing time per event
    job_overhead_seconds: float = 0.0  # fixed processing time per job
    queue_delay: float = 0.0  # wait before a queued job starts
    report_delay: float = 0.0  # completed notification visible, report still 404 for this long
    error_rate: float = 0.0  # fraction of API requests answered 502/503/504 like a gateway
    drop_before_rate: float = 0.0  # fraction of POST imports reset before anything is done
    drop_after_rate: float = 0.0  # fraction of POST imports accepted, then reset without answer
    job_failure_rate: float = 0.0  # fraction of jobs that fail with "Process failed: ..."
    # fraction of valid events that fail while being saved: only `ignored` counts them
    save_drop_rate: float = 0.0
    # fraction of jobs whose completed notification the notifier drops; the report is kept
    lost_completion_rate: float = 0.0
    # fraction of job starts that take any queued job rather than the oldest
    unordered_start_rate: float = 0.0
    # after restart(), the job that was running blocks all imports this long (housekeeping)
    stuck_job_seconds: float = 0.0
    # a proxy's body limit for POST /api/tracker: larger bodies get its HTML 413 page (0: none)
    max_body_bytes: float = 0.0
    # answer POST /api/tracker with this status without importing: 403 (a firewall's HTML
    # page) or 409 (the job scheduler's conflict); 0: off
    refuse_imports_status: float = 0.0
    # a clinic's link: request and response bodies each cross at this many bytes a second,
    # one after the other in each direction (0: no limit)
    uplink_bytes_per_second: float = 0.0
    seed: int | None = None  # RNG seed for the rates (deterministic tests)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "seed":
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise ValueError(f"Knob `seed` must be an integer or None, not {value!r}")
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Knob `{field.name}` must be a number >= 0, not {value!r}")
            if field.name in _RATES and value > 1:
                raise ValueError(
                    f"Knob `{field.name}` is a fraction between 0 and 1, not {value!r}"
                )

    def processing_seconds(self, event_count: int) -> float:
        return max(0.0, self.job_overhead_seconds) + max(0.0, self.per_event_seconds) * event_count


class Dice:
    """Draws for the failure rates, reseeded whenever `knobs.seed` changes so runs replay."""

    _UNSEEDED = object()

    def __init__(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()
        self._random = random.Random()
        self._seeded_with: object = self._UNSEEDED

    def chance(self, rate: float) -> bool:
        # Rates of 0 and 1 draw nothing, so turning one knob on does not shift the others' sequence.
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self._lock:
            self._reseed_if_changed()
            return self._random.random() < rate

    def choice(self, options: tuple[_Choice, ...]) -> _Choice:
        with self._lock:
            self._reseed_if_changed()
            return self._random.choice(options)

    def _reseed_if_changed(self) -> None:
        if self._knobs.seed != self._seeded_with:
            self._random.seed(self._knobs.seed)
            self._seeded_with = self._knobs.seed
