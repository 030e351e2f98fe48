"""A real Chromium reaches the real host through the manifest install.py wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Worker

from dhims2 import __version__
from dhims2.browser import dispatch, handlers  # noqa: F401 (registers them)
from dhims2.setup import installer
from dhims2.setup.doctor import FORBIDDEN, NOT_FOUND

CHECKOUT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 20.0
EXTENSION_ID = installer.extension_identity(CHECKOUT / "extension" / "manifest.json").chromium_id


def native_log_when(worker: Worker, done: Any) -> dict[str, Any]:
    """The stub's record of the port, polled until `done(log)` holds or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        log = worker.evaluate("() => self.nativeLog")
        if done(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_chromium_gives_the_extension_the_id_the_installer_computes(launch: Any) -> None:
    worker = launch()
    assert worker.url == f"chrome-extension://{EXTENSION_ID}/background.js"


def test_the_real_host_says_hello_and_answers_through_chromium(
    install_host: Any, launch: Any
) -> None:
    install_host()
    worker = launch()
    log = native_log_when(worker, lambda log: len(log["messages"]) >= 2 or log["disconnected"])
    assert log["disconnected"] is None, log
    hello, reply = log["messages"]
    assert hello == {
        "type": "hello",
        "version": __version__,
        "protocol": 1,
        "capabilities": dispatch.capabilities(),
    }
    assert reply == {"id": "r-1", "ok": True, "version": __version__, "protocol": 1}


@pytest.mark.parametrize("fault", ["no manifest", "another extension's id"])
def test_registration_faults_give_the_errors_doctor_predicts(
    install_host: Any, launch: Any, fault: str
) -> None:
    expected = NOT_FOUND
    if fault == "another extension's id":
        manifest_path = install_host()
        manifest = json.loads(manifest_path.read_text("utf-8"))
        manifest["allowed_origins"] = ["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"]
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        expected = FORBIDDEN
    worker = launch()
    log = native_log_when(worker, lambda log: log["disconnected"])
    assert log["disconnected"] == expected
    assert log["messages"] == []
