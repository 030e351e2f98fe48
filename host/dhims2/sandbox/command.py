"""`dhims2 sandbox`: run the DHIS2 stand-in server until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from dhims2.sandbox.capture_app import DATE_FORMATS

# (flag, Knobs field, help); the command line takes milliseconds where the knob takes seconds.
_MILLISECOND_KNOBS = (
    ("--latency-ms", "latency", "delay added before answering every HTTP request"),
    ("--per-event-ms", "per_event_seconds", "import processing time per event"),
    ("--job-overhead-ms", "job_overhead_seconds", "fixed import processing time per job"),
    ("--queue-delay-ms", "queue_delay", "wait before a queued job starts"),
    ("--report-delay-ms", "report_delay", "how long a job report stays 404 after completion"),
)
_RATE_KNOBS = (
    ("--error-rate", "error_rate", "fraction of API requests answered 502/503/504"),
    ("--drop-before-rate", "drop_before_rate", "fraction of imports reset before anything is done"),
    ("--drop-after-rate", "drop_after_rate", "fraction of imports accepted, then reset"),
    ("--job-failure-rate", "job_failure_rate", "fraction of jobs failing with 'Process failed'"),
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="port (default 8080; 0 = any free)"
    )
    parser.add_argument("--context-path", default="/events", help="context path (default /events)")
    parser.add_argument(
        "--version",
        dest="server_version",
        type=_server_version,
        default="2.41.3",
        help="DHIS2 version to imitate, e.g. 2.41.3 or 2.40 (default 2.41.3)",
    )
    for flag, _knob, help_text in _MILLISECOND_KNOBS:
        parser.add_argument(flag, type=_milliseconds, default=0.0, metavar="MS", help=help_text)
    for flag, _knob, help_text in _RATE_KNOBS:
        parser.add_argument(flag, type=_rate, default=0.0, metavar="FRACTION", help=help_text)
    parser.add_argument(
        "--uplink-kbps",
        type=_kilobits,
        default=0.0,
        metavar="KBITS",
        help="bandwidth of the client's link in kilobits/s, each way, e.g. 1000 (default: none)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for the rates, to replay a run"
    )
    parser.add_argument(
        "--capture-app",
        type=Path,
        default=None,
        metavar="DIR",
        help="a DHIS2 Capture web app build to serve at <context path>/dhis-web-capture/",
    )
    parser.add_argument(
        "--date-format",
        choices=DATE_FORMATS,
        default="yyyy-mm-dd",
        help="the server's date format setting, as Capture shows dates (default yyyy-mm-dd)",
    )


def run(args: argparse.Namespace) -> int:
    from dhims2.sandbox import Knobs, Sandbox
    from dhims2.sandbox.capture_app import CaptureBuildMissing

    knobs = Knobs(
        **{knob: getattr(args, _dest(flag)) / 1000 for flag, knob, _help in _MILLISECOND_KNOBS},
        **{knob: getattr(args, _dest(flag)) for flag, knob, _help in _RATE_KNOBS},
        # kilobits a second to bytes a second
        uplink_bytes_per_second=args.uplink_kbps * 1000 / 8,
        seed=args.seed,
    )
    try:
        sandbox = Sandbox(
            host=args.host,
            port=args.port,
            context_path=args.context_path,
            version=args.server_version,
            knobs=knobs,
            capture_app=args.capture_app,
            date_format=args.date_format,
        )
    except CaptureBuildMissing as error:
        print(error, file=sys.stderr)
        return 2
    try:
        sandbox.start()
    except OSError as error:
        print(
            f"Cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr
        )
        return 1
    stop_requested = threading.Event()
    previous_handlers = {
        signum: signal.signal(signum, lambda _signum, _frame: stop_requested.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        # The base URL comes first, alone on its line: scripts and tests read it.
        print(sandbox.base_url)
        print(f"user: {sandbox.username}")
        print(f"password: {sandbox.password}")
        print(f"token: {sandbox.create_token()}")
        if args.capture_app is not None:
            print(f"Capture: {sandbox.base_url}/dhis-web-capture/")
        print("Press Ctrl+C to stop", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        sandbox.stop()
    return 0


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"`{text}` is not a port number (0-65535)")
    return int(text)


def _milliseconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be 0 or more milliseconds")
    return value


def _kilobits(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be 0 or more kilobits a second")
    return value


def _rate(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"`{text}` must be a fraction between 0 and 1")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"`{text}` is not a finite number")
    return value


def _server_version(text: str) -> str:
    from dhims2.sandbox.version import ServerVersion

    try:
        return str(ServerVersion.parse(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
