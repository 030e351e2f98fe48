"""`dhims2 sandbox` run as a real process: it prints where it listens, serves, and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID

COMMAND = [sys.executable, "-m", "dhims2.cli", "sandbox"]


@pytest.fixture
def running_sandbox() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--per-event-ms", "1", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().strip() for _ in range(5)]
    yield process, lines
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_it_prints_where_it_listens_and_who_can_sign_in(running_sandbox):
    _process, lines = running_sandbox
    base_url, user, password, token, hint = lines
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/events")
    assert (user, password) == ("user: clerk", "password: Sandbox-Pass-1")
    assert token.startswith("token: d2p_")
    assert hint == "Press Ctrl+C to stop"


def test_it_answers_an_async_import_with_reference_shapes(running_sandbox):
    _process, lines = running_sandbox
    base_url, token = lines[0], lines[3].removeprefix("token: ")
    session = requests.Session()
    session.headers["Authorization"] = f"ApiToken {token}"
    event = {
        "program": PROGRAM_UID,
        "programStage": STAGE_UID,
        "orgUnit": ORG_UNIT_UID,
        "occurredAt": "2025-03-01",
        "dataValues": [{"dataElement": "upqhIcii1iC", "value": "34"}],
    }
    added = session.post(f"{base_url}/api/tracker", json={"events": [event]}, timeout=10).json()
    assert added["message"] == "Tracker job added"
    job_url = f"{base_url}/api/tracker/jobs/{added['response']['id']}"

    deadline = time.monotonic() + 10
    while not any(item["completed"] for item in session.get(job_url, timeout=10).json()):
        assert time.monotonic() < deadline, "the job did not complete"
        time.sleep(0.02)
    [last, *_earlier] = session.get(job_url, timeout=10).json()
    assert set(last) == {"uid", "level", "category", "time", "message", "completed", "id"}
    assert (
        last["message"]
        == "Import complete with status OK, 1 created, 0 updated, 0 deleted, 0 ignored"
    )
    report = session.get(f"{job_url}/report", timeout=10).json()
    assert report["status"] == "OK"
    assert report["stats"] == {"created": 1, "updated": 0, "deleted": 0, "ignored": 0, "total": 1}
    assert report["validationReport"] == {"errorReports": [], "warningReports": []}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_it_stops_cleanly_on_a_signal(running_sandbox, stop_signal):
    process, lines = running_sandbox
    process.send_signal(stop_signal)
    assert process.wait(timeout=10) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{lines[0]}/dhis-web-login/", timeout=2)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--error-rate", "2"], "--error-rate"),
        (["--latency-ms", "-5"], "--latency-ms"),
        (["--uplink-kbps", "-1"], "--uplink-kbps"),
        (["--version", "3.1"], "--version"),
        (["--port", "http"], "--port"),
    ],
)
def test_bad_flags_are_refused_with_a_message(arguments, named):
    finished = subprocess.run([*COMMAND, *arguments], capture_output=True, text=True, timeout=30)
    assert finished.returncode == 2
    assert named in finished.stderr


def test_a_busy_port_is_reported(sandbox):
    port = sandbox.base_url.split(":")[2].split("/")[0]
    finished = subprocess.run(
        [*COMMAND, "--port", port], capture_output=True, text=True, timeout=30
    )
    assert finished.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in finished.stderr
