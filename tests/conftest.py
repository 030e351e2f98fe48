"""Shared fixtures: a running sandbox DHIS2, a token-signed client for it, synthetic events."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dhims2.dhis2.uids import new_uid
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.sandbox import Sandbox

# A complete, valid In-Patient record; every value is made up.
SYNTHETIC_VALUES = {
    "h0Ef6ykTpNB": "SYN-0001",  # patient number
    "nk15h7fzCLz": "Test Street 1",  # address
    "upqhIcii1iC": "34",  # age
    "WZ5rS7QuECT": "years",
    "fg8sMCaTOrK": "Female",
    "qAWldjTeMIs": "Trader",
    "Hi8Cp84CnZQ": "Primary",
    "HsMaBh3wKed": "2025-03-01",  # admission
    "sIPe9r0NBbq": "2025-03-05",  # discharge
    "xpzJAQC4DGe": "Medical",
    "OMN7CVW4IaY": "Discharged",
    "yPXPzceTIvq": "B54 - Unspecified malaria",
    "dsVClbnOnm6": "false",
    "ETSl9Q3SUOG": "true",
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox with default knobs, stopped after the test."""
    with Sandbox() as running:
        yield running


class SandboxClient:
    """requests against one sandbox, signed in with a fresh personal access token."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"ApiToken {sandbox.create_token()}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.sandbox.base_url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.sandbox.base_url + path, timeout=10, **kwargs)

    def import_events(self, events: list[dict[str, Any]], **params: str) -> requests.Response:
        return self.post("/api/tracker", params=params, json={"events": events})

    def import_now(self, events: list[dict[str, Any]], **params: str) -> requests.Response:
        return self.import_events(events, **{"async": "false", **params})

    def wait_for_report(self, job_id: str, timeout: float = 10.0, **params: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/api/tracker/jobs/{job_id}/report", params=params)
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"no report for job {job_id}"
            time.sleep(0.01)


@pytest.fixture
def sandbox_client(sandbox: Sandbox) -> SandboxClient:
    return SandboxClient(sandbox)


@pytest.fixture
def sandbox_client_for() -> Callable[[Sandbox], SandboxClient]:
    """For tests that start their own sandbox (another version, knobs or metadata)."""
    return SandboxClient


@pytest.fixture
def inpatient_event() -> Callable[..., dict[str, Any]]:
    """Builds a valid COMPLETED In-Patient event; `values` overrides data values (None drops
    one), other keyword arguments override event properties."""

    def build(values: dict[str, str | None] | None = None, **properties: Any) -> dict[str, Any]:
        merged = {**SYNTHETIC_VALUES, **(values or {})}
        event = {
            "event": new_uid(),
            "program": PROGRAM_UID,
            "programStage": STAGE_UID,
            "orgUnit": ORG_UNIT_UID,
            "occurredAt": "2025-03-01",
            "status": "COMPLETED",
            "dataValues": [
                {"dataElement": uid, "value": value}
                for uid, value in merged.items()
                if value is not None
            ],
        }
        event.update(properties)
        return event

    return build


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment for a real `dhims2` or `dhims2-host` process: the user's own settings
    left out, and its config, data and log folders private to the test."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DHIMS2_")}
    environment.update(
        DHIMS2_CONFIG_DIR=str(tmp_path / "config"),
        DHIMS2_DATA_DIR=str(tmp_path / "data"),
        DHIMS2_LOG_DIR=str(tmp_path / "logs"),
    )
    return environment
