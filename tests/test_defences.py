"""Defences that once could be removed with every test still green: each test here fails when
the defence it names is taken out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from dhims2.dhis2.address import origin
from dhims2.dhis2.credentials import Credentials, SameOriginAuth
from dhims2.forms.program import ProgramForm
from dhims2.forms.validation import EventValidator
from dhims2.queue.store import Store
from test_schema import bundled_program, codes, payload


class _HeaderRecorder(BaseHTTPRequestHandler):
    seen: list[str | None]

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization"))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def other_origin() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_auth_hook_signs_only_requests_to_its_own_origin(sandbox, other_origin):
    """SameOriginAuth is what keeps a token off any request not bound for the configured
    server, whatever builds that request; a real session sends one to each of two servers."""
    token = sandbox.create_token()
    with requests.Session() as session:
        session.auth = SameOriginAuth(Credentials(token=token), origin(sandbox.base_url))
        own = session.get(f"{sandbox.base_url}/api/me", timeout=10)
        assert own.status_code == 200  # signed: the sandbox knows the user
        port = other_origin.server_address[1]
        session.get(f"http://127.0.0.1:{port}/api/me", timeout=10)
    assert other_origin.seen == [None]  # type: ignore[attr-defined]


def test_skipped_events_are_not_checked_for_compulsory_values():
    """dhis2-core tracker ValidationUtils.needsToValidateDataValues: with ON_UPDATE_AND_INSERT,
    SCHEDULE and SKIPPED events skip the compulsory check (forms/schema.py docstring)."""
    program = bundled_program()
    program["programStages"][0]["validationStrategy"] = "ON_UPDATE_AND_INSERT"
    strict = EventValidator(ProgramForm.from_metadata(program))
    assert codes(strict, payload({}, status="SKIPPED")) == []
    assert codes(strict, payload({}, status="ACTIVE")) == ["E1303"] * 14


def test_the_store_survives_power_loss_by_its_settings(tmp_path):
    """Power loss cannot be provoked here, so the settings that survive it are checked: WAL with
    synchronous=FULL syncs the log on every commit (https://www.sqlite.org/pragma.html#pragma_synchronous:
    in WAL mode NORMAL may lose the last commits on power loss, OFF may corrupt)."""
    with Store(tmp_path / "uploads.sqlite3") as store:
        assert store.durability() == {"journal_mode": "wal", "synchronous": "FULL"}
