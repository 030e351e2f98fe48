"""The native host and the CLI as processes: how fast `dhims2-host` says hello and the CLI
starts, against a bare Python start measured in the same run, and how much memory the host and
`dhims2 upload` take as the number of records grows.

    python bench/host.py            # 30 spawns; 1,000 and 10,000 records (Linux)
    python bench/host.py --quick    # a few, to check that the script still works

Peak memory is VmHWM, the high-water mark of resident memory in /proc/<pid>/status: read from
the live host once its batch has settled, and by the `dhims2` process itself as it exits (a small
wrapper runs the CLI and reads it at exit). Not ru_maxrss from wait4(): Linux carries the
parent's high-water mark into a vfork()ed child's, so it would count this script's own memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
from harness import INSTANT, BenchError, SandboxServer, console_script, figure, heading, verdict
from peak_memory import vmhwm_bytes

from dhims2.browser.framing import HEADER, FrameError, read_message
from dhims2.forms.synthetic import synthetic_rows, write_csv

CHROME_ORIGIN = "chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/"
TARGET_HELLO_SECONDS = 0.100
# Start-up costs no more than three bare Python starts: what only requests need loads later.
TARGET_START_RATIO = 3.0
# "Flat" read as: ten times the records costs at most a fifth more memory at the peak.
TARGET_MEMORY_RATIO = 1.2
MESSAGE_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0


class Workspace:
    """Private config, data and log folders for one process, and its stderr file."""

    def __init__(self, root: Path) -> None:
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("DHIMS2_")
        }
        for name in ("config", "data", "logs"):
            (root / name).mkdir(parents=True)
        self.env.update(
            DHIMS2_CONFIG_DIR=str(root / "config"),
            DHIMS2_DATA_DIR=str(root / "data"),
            DHIMS2_LOG_DIR=str(root / "logs"),
        )
        self.stderr_path = root / "stderr.txt"

    def start(self, argv: list[str], **pipes: Any) -> subprocess.Popen[bytes]:
        with open(self.stderr_path, "wb") as stderr:
            return subprocess.Popen(argv, env=self.env, stderr=stderr, **pipes)

    def stderr_tail(self) -> str:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip()
        return text[-2000:] or "(nothing on stderr)"


def wait_for_exit(process: subprocess.Popen[bytes], what: str, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise BenchError(f"{what} did not exit within {timeout:g} s") from None


# Runs `dhims2 ARGS...` as the console script does, and writes its own VmHWM to PEAK_FILE at exit.
CLI_WITH_PEAK = f"""
import atexit, runpy, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from peak_memory import vmhwm_bytes
peak_file = Path(sys.argv.pop(1))
atexit.register(lambda: peak_file.write_text(str(vmhwm_bytes())))
sys.argv[0] = "dhims2"
runpy.run_module("dhims2.cli", run_name="__main__")
"""


class HostSession:
    """A running `dhims2-host` on pipes: frames out on stdin, a reader thread on stdout that
    keeps the replies and the latest progress of every batch."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.process = workspace.start(
            [console_script("dhims2-host"), CHROME_ORIGIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._progress: dict[str, dict[str, Any]] = {}
        self._progress_changed = threading.Condition()
        self._ended = False
        threading.Thread(target=self._read_frames, daemon=True).start()

    def _read_frames(self) -> None:
        assert self.process.stdout is not None
        try:
            while (message := read_message(self.process.stdout)) is not None:
                if message.get("type") == "batch.progress":
                    with self._progress_changed:
                        self._progress[message["batch"]] = message
                        self._progress_changed.notify_all()
                elif "id" in message or message.get("type") == "hello":
                    self._replies.put(message)
        except FrameError:
            pass  # a garbled stdout ends the session like EOF; waiters then report stderr
        with self._progress_changed:
            self._ended = True
            self._progress_changed.notify_all()
        self._replies.put(None)

    def next_reply(self) -> dict[str, Any]:
        """The next reply (or the hello); pushed updates other than progress are dropped."""
        try:
            message = self._replies.get(timeout=MESSAGE_TIMEOUT)
        except queue.Empty:
            raise BenchError("dhims2-host went silent") from None
        if message is None:
            raise BenchError(f"dhims2-host stopped: {self.workspace.stderr_tail()}")
        return message

    def request(self, request_id: str, message_type: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        # As the browser frames it: up to 64 MiB may go to the host (framing.write_message
        # enforces the 1 MiB cap of the other direction).
        body = json.dumps({"id": request_id, "type": message_type, **fields}).encode()
        self.process.stdin.write(HEADER.pack(len(body)) + body)
        self.process.stdin.flush()
        reply = self.next_reply()
        if reply.get("id") != request_id or not reply["ok"]:
            raise BenchError(f"dhims2-host did not do {message_type}: {reply.get('error')}")
        return reply

    def settled(self, batch: str) -> dict[str, Any]:
        """The batch's progress once nothing of it is pending any more."""

        def done() -> bool:
            progress = self._progress.get(batch)
            return self._ended or (progress is not None and progress["pending"] == 0)

        with self._progress_changed:
            if not self._progress_changed.wait_for(done, MESSAGE_TIMEOUT) or self._ended:
                raise BenchError(f"batch {batch} did not settle: {self.workspace.stderr_tail()}")
            return self._progress[batch]

    def peak_memory(self) -> int:
        return vmhwm_bytes(self.process.pid)

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:  # a measurement failed before close()
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Closes stdin, as the browser does, and expects a clean exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = wait_for_exit(self.process, "dhims2-host", EXIT_TIMEOUT)
        if status != 0:
            raise BenchError(f"dhims2-host exited {status}: {self.workspace.stderr_tail()}")


def spawn_to_hello(folder: Path) -> tuple[float, int]:
    """(seconds from spawn to the hello frame, the idle host's peak memory in bytes)."""
    started = time.perf_counter()
    with HostSession(Workspace(folder)) as session:
        hello = session.next_reply()
        seconds = time.perf_counter() - started
        if hello.get("type") != "hello":
            raise BenchError(f"the host's first message is not hello but {hello.get('type')!r}")
        peak = session.peak_memory()
        session.close()
    return seconds, peak


def seconds_to_run(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def report_start_up(root: Path, runs: int) -> None:
    """Each start against a bare `python -c pass`, interleaved so that a busy moment of the
    machine weighs on all of them alike."""
    dhims2 = console_script("dhims2")
    starts: dict[str, list[float]] = {
        "bare python": [],
        "dhims2-host spawn to hello": [],
        "dhims2 --help": [],
        "dhims2 --version": [],
    }
    for index in range(runs):
        starts["bare python"].append(seconds_to_run([sys.executable, "-c", "pass"]))
        starts["dhims2-host spawn to hello"].append(spawn_to_hello(root / f"start-{index}")[0])
        starts["dhims2 --help"].append(seconds_to_run([dhims2, "--help"]))
        starts["dhims2 --version"].append(seconds_to_run([dhims2, "--version"]))
    heading(f"start-up against a bare Python start, {runs} runs interleaved")
    bare = harness.median(starts.pop("bare python"))
    figure("bare python -c pass (median)", f"{bare * 1000:.0f} ms")
    for name, seconds in starts.items():
        # Judged on the ratio as printed, so the verdict never contradicts the figure.
        ratio = round(harness.median(seconds) / bare, 1)
        figure(f"{name} (median)", f"{harness.median(seconds) * 1000:.0f} ms, {ratio:.1f}x bare")
        verdict(
            f"{name} within {TARGET_START_RATIO:g}x bare",
            ratio <= TARGET_START_RATIO,
            f"ratio <= {TARGET_START_RATIO:g}",
        )


UploadInput = Callable[[Path, int], dict[str, Any]]


def records_input(folder: Path, count: int) -> dict[str, Any]:
    """`records`: the events themselves in the message, data values by form label."""
    records = []
    for row in synthetic_rows(count, tag="H"):
        values = dict(row)
        records.append({"occurredAt": values.pop("occurredAt"), "dataValues": values})
    return {"records": records}


def sheet_input(folder: Path, count: int) -> dict[str, Any]:
    """`sheet`: a CSV file's bytes in the message, as the popup sends a picked file."""
    content = csv_file(folder, count).read_bytes()
    return {"sheet": {"name": "records.csv", "content_base64": base64.b64encode(content).decode()}}


def csv_file(folder: Path, count: int) -> Path:
    return write_csv(folder / "records.csv", list(synthetic_rows(count, tag="S")))


def host_upload_peak(folder: Path, count: int, upload_input: UploadInput) -> int:
    """Peak memory of the host taking `count` records in one `upload` and sending them all."""
    workspace = Workspace(folder)
    message = upload_input(folder, count)
    with SandboxServer(INSTANT) as server, HostSession(workspace) as session:
        session.next_reply()  # hello
        session.request(
            "setup", "configure", server=server.base_url, auth="token", token=server.token
        )
        reply = session.request("upload", "upload", **message)
        batch = reply["batch"]["batch"]
        if reply["batch"]["total"] != count:
            raise BenchError(f"the host queued {reply['batch']['total']} of {count} records")
        settled = session.settled(batch)
        if settled["created"] != count:
            raise BenchError(f"the host created {settled['created']} of {count} records")
        peak = session.peak_memory()
        session.close()
        return peak


def start_cli_upload(
    workspace: Workspace, sheet: Path, peak_file: Path, server: SandboxServer, *options: str
) -> subprocess.Popen:
    """`dhims2 upload SHEET [OPTIONS]` against `server`, writing its peak memory to `peak_file`
    at exit."""
    return workspace.start(
        [
            sys.executable,
            "-c",
            CLI_WITH_PEAK,
            str(peak_file),
            "upload",
            str(sheet),
            "--server",
            server.base_url,
            "--token",
            server.token,
            *options,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def cli_upload_peak(folder: Path, count: int) -> int:
    """Peak memory of `dhims2 upload` sending a `count`-row CSV file to its end."""
    workspace = Workspace(folder)
    sheet = csv_file(folder, count)
    peak_file = folder / "peak.txt"
    with SandboxServer(INSTANT) as server:
        process = start_cli_upload(workspace, sheet, peak_file, server)
        status = wait_for_exit(process, "dhims2 upload", MESSAGE_TIMEOUT)
    # 0 says every record reached DHIS2 (created or updated), none rejected, failed or pending.
    if status != 0:
        raise BenchError(f"dhims2 upload exited {status}: {workspace.stderr_tail()}")
    return int(peak_file.read_text())


def mebibytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def report_memory(title: str, peaks: dict[int, int]) -> None:
    heading(title)
    for count, peak in peaks.items():
        figure(f"peak memory, {count:,} records", mebibytes(peak))
    small, large = min(peaks), max(peaks)
    # Judged on the ratio as printed, so the verdict never contradicts the figure above it.
    ratio = round(peaks[large] / peaks[small], 2)
    growth = (peaks[large] - peaks[small]) / (large - small) * 1000
    figure(f"peak ratio {large:,} / {small:,} records", f"{ratio:.2f}x")
    figure("growth per 1,000 more records", mebibytes(int(growth)))
    verdict(
        "memory flat as records grow",
        ratio <= TARGET_MEMORY_RATIO,
        f"ratio <= {TARGET_MEMORY_RATIO}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="a few runs: checks the script")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="record counts of the memory runs (default 1000 10000)",
    )
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        raise BenchError("this benchmark reads Linux's peak memory figures; run it on Linux")
    spawns, sizes = (3, [50, 200]) if args.quick else (30, [1000, 10000])
    sizes = sorted(args.sizes or sizes)
    if sizes[0] < 1 or sizes[0] == sizes[1]:
        parser.error("--sizes takes two different record counts of at least 1")

    harness.print_machine()
    heading("Setup")
    figure("server for the memory runs", f"sandbox in its own process, {INSTANT}")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        runs = [spawn_to_hello(root / f"spawn-{index}") for index in range(spawns)]
        hello_seconds = [seconds for seconds, _ in runs]
        heading(f"dhims2-host spawn to hello, {spawns} runs")
        middle = harness.median(hello_seconds)
        figure("median", f"{middle * 1000:.0f} ms")
        figure("p95", f"{harness.p95(hello_seconds) * 1000:.0f} ms")
        figure("min / max", f"{min(hello_seconds) * 1000:.0f} / {max(hello_seconds) * 1000:.0f} ms")
        figure(
            "idle host peak memory (median)", mebibytes(int(harness.median([p for _, p in runs])))
        )
        verdict("spawn to hello", middle < TARGET_HELLO_SECONDS, "median < 100 ms")
        report_start_up(root, spawns)
        for name, upload_input in (("records", records_input), ("sheet", sheet_input)):
            report_memory(
                f"dhims2-host: `upload` with `{name}`, sent to the end",
                {
                    count: host_upload_peak(root / f"{name}-{count}", count, upload_input)
                    for count in sizes
                },
            )
        report_memory(
            "dhims2 upload of a CSV file, sent to the end",
            {count: cli_upload_peak(root / f"cli-{count}", count) for count in sizes},
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/host.py: {error}", file=sys.stderr)
        sys.exit(1)
