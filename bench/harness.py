"""What every benchmark script shares: the machine description, a sandbox DHIS2 in its own
process, the DHIS2 timing it imitates, statistics and the printed figures."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from dhims2 import __version__

SANDBOX_START_SECONDS = 30.0
# Longer than any full run takes here: a measurement still waiting then is stuck, not slow.
STUCK_SECONDS = 1800.0


class BenchError(Exception):
    """A benchmark could not measure what it set out to; the message says what went wrong."""


def console_script(name: str) -> str:
    """A console script of this installation (`dhims2`, `dhims2-host`), next to its Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchError(f"{path} is missing: run `pip install -e .` in the repository first")
    return str(path)


@dataclass(frozen=True)
class ServerTiming:
    """How slow the sandbox is made to be; DHIS2 2.41 itself runs one import job at a time."""

    latency: float  # seconds before the server answers any request (the round trip)
    per_event: float  # seconds of job processing per event
    job_overhead: float  # seconds of job processing per job, whatever its size
    uplink_kbps: float = 0.0  # the client's link, kilobits a second each way (0: not modelled)

    def sandbox_flags(self) -> list[str]:
        link = ["--uplink-kbps", f"{self.uplink_kbps:g}"] if self.uplink_kbps else []
        return [
            *link,
            "--latency-ms",
            f"{self.latency * 1000:g}",
            "--per-event-ms",
            f"{self.per_event * 1000:g}",
            "--job-overhead-ms",
            f"{self.job_overhead * 1000:g}",
        ]

    def busy_seconds(self, jobs: int, events: int) -> float:
        """The server's processing time the knobs alone account for: the floor for this work."""
        return jobs * self.job_overhead + events * self.per_event

    def __str__(self) -> str:
        return (
            f"{self.latency * 1000:g} ms round trip per request, {self.per_event * 1000:g} ms"
            f" per event, {self.job_overhead * 1000:g} ms per job, one job at a time"
            + (f", {self.uplink_kbps:g} kbit/s link" if self.uplink_kbps else "")
        )


# A national DHIS2 reached over a Ghanaian mobile or office link: round trips of about 80 ms,
# and tracker jobs that spend ~0.3 s in preheat, validation and commit however few events
# they carry, plus a few ms per event.
REALISTIC = ServerTiming(latency=0.080, per_event=0.005, job_overhead=0.300)
# For figures that do not depend on the server's speed (memory): finish as soon as possible.
INSTANT = ServerTiming(latency=0.0, per_event=0.0, job_overhead=0.0)


class SandboxServer:
    """`dhims2 sandbox` in a process of its own, so that its work never competes with the
    measured client for one interpreter, as a real DHIS2 server would not."""

    def __init__(self, timing: ServerTiming) -> None:
        self.timing = timing
        self.base_url = ""
        self.token = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxServer:
        self._process = subprocess.Popen(
            [console_script("dhims2"), "sandbox", "--port", "0", *self.timing.sandbox_flags()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            self._read_address()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _read_address(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        # The sandbox prints its address first, then the user, password and token lines.
        for line in self._process.stdout:
            if line.startswith("http"):
                self.base_url = line.strip()
            elif line.startswith("token: "):
                self.token = line.removeprefix("token: ").strip()
                return
        raise BenchError(
            f"`dhims2 sandbox` exited ({self._process.wait(SANDBOX_START_SECONDS)}) before"
            " printing its address and token"
        )

    def _stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(SANDBOX_START_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


# --------------------------------------------------------------------------- statistics


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def notification_seconds(notification: dict) -> float:
    """A job notification's `time` (the server's local wall clock) as a Unix time."""
    return datetime.fromisoformat(notification["time"]).timestamp()


def job_run_seconds(notifications: list[dict]) -> float:
    """How long the server spent on a finished job: its first notification to its completion."""
    times = [notification_seconds(entry) for entry in notifications]
    completed = [notification_seconds(entry) for entry in notifications if entry["completed"]]
    if not completed:
        raise BenchError("a job measured as finished has no completed notification")
    return max(completed) - min(times)


# --------------------------------------------------------------------------- printing


def machine_description() -> dict[str, str]:
    return {
        "CPU": _cpu_model(),
        "logical cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "system": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "dhims2-uploader": f"{__version__}, git HEAD {_git_head()}",
    }


def print_machine() -> None:
    heading("Machine")
    for label, value in machine_description().items():
        figure(label, value)


def description(docstring: str) -> str:
    """A script's --help description: the first paragraph of its docstring."""
    return " ".join(docstring.split("\n\n")[0].split())


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def figure(label: str, value: str) -> None:
    print(f"  {label + ':':<42} {value}", flush=True)


def verdict(label: str, met: bool, target: str) -> None:
    figure(label, f"{'met' if met else 'MISSED'} (target: {target})")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.1f} records/s" if seconds > 0 else "n/a"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_head() -> str:
    """The commit of the measured checkout (uncommitted changes on top are not shown)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"
