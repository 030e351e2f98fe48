"""Security: credentials go only to the configured server, plain http only where the user allows
it, the host's files are the owner's alone, its logs hold no secret and no patient value, and
local copies of uploaded records are purged after the retention period."""

from __future__ import annotations

import base64
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from dhims2.browser.sender import BackgroundSender
from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.uids import new_uid
from dhims2.forms.metadata import PROGRAM_UID, STAGE_UID
from dhims2.queue.retention import SECONDS_PER_DAY, check_retention_days, purge_expired
from dhims2.queue.store import CREATED, QUEUED, REJECTED, STORE_FILE_NAME, NewRecord, Store
from dhims2.sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reliability

DEADLINE_SECONDS = 15.0


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {DEADLINE_SECONDS} s"
        time.sleep(0.05)


# --------------------------------------------------------------------------- credentials


def test_the_sandbox_records_which_origins_received_credentials(sandbox: Sandbox) -> None:
    port = sandbox.base_url.split(":")[2].split("/")[0]
    info = "/events/api/system/info"
    requests.get(f"http://127.0.0.1:{port}{info}", timeout=5)
    requests.get(f"http://localhost:{port}{info}", headers={"Cookie": "lang=en"}, timeout=5)
    assert sandbox.credentials_seen() == set()

    token = {"Authorization": f"ApiToken {sandbox.create_token()}"}
    requests.get(f"http://127.0.0.1:{port}{info}", headers=token, timeout=5)
    # Credentials count wherever they are sent, even outside the context path.
    requests.get(
        f"http://localhost:{port}/elsewhere", headers={"Cookie": "a=1; JSESSIONID=x"}, timeout=5
    )
    assert sandbox.credentials_seen() == {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}


@pytest.mark.parametrize("session", [False, True], ids=["token", "session cookie"])
@pytest.mark.parametrize("mode", ["redirect_to_another_origin", "job_location_on_another_origin"])
def test_a_server_pointing_elsewhere_gets_no_credentials_sent_elsewhere(
    tmp_path: Path, mode: str, session: bool
) -> None:
    trial = reliability.hostile_server_trial(
        tmp_path, mode=mode, records=20, seed=9, session=session
    )
    assert trial.counts["requests that reached the other origin"] == 0
    assert not trial.counts["other origin got credentials"]
    assert trial.counts["told the expected error"], trial
    assert (trial.stored, trial.duplicates, trial.pending) == (20, 0, 0)
    assert trial.leaks == []


def outward_address() -> str:
    """This computer's address on its network: not loopback, so the http rules apply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent, only a route is chosen
        return probe.getsockname()[0]


def test_plain_http_to_another_computer_is_refused_unless_the_user_allows_it(
    tmp_path: Path,
) -> None:
    workspace = reliability.Workspace(tmp_path)
    sheet = reliability.synthetic_sheet(workspace, 2, tag="I")
    with Sandbox(host=outward_address()) as remote:
        token = remote.create_token()
        with reliability.HostSession(workspace) as host:
            refused = host.request("configure", server=remote.base_url, auth="token", token=token)
            assert refused["error"]["code"] == "INSECURE_SERVER"
            cli = subprocess.run(
                [
                    *(sys.executable, "-m", "dhims2.cli", "upload"),
                    str(workspace.root / sheet.message["name"]),
                    *("--server", remote.base_url, "--token", token),
                ],
                env=workspace.env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode == 3 and "https://" in cli.stderr
            assert token not in cli.stdout + cli.stderr
            assert remote.request_count("GET", "") + remote.request_count("POST", "") == 0

            host.configure(remote.base_url, auth="token", token=token, allow_insecure_http=True)
            assert host.request("check_connection")["ok"]
            assert host.request("upload", sheet=sheet.message)["ok"]
            host.settle(60)
        assert len(remote.stored_events()) == 2


# --------------------------------------------------------------------------- files and logs


def test_data_config_and_log_files_are_the_owners_alone(tmp_path: Path) -> None:
    trial = reliability.undisturbed_trial(tmp_path, records=20)
    assert trial.exact
    assert trial.loose_files == []


def test_logs_hold_no_token_cookie_password_or_patient_value(tmp_path: Path) -> None:
    workspace = reliability.Workspace(tmp_path)
    sheet = reliability.synthetic_sheet(workspace, 10, tag="L")
    rows = (workspace.root / sheet.message["name"]).read_text().splitlines()
    misspelt = "Femalle-Leakcheck"
    rows[3] = rows[3].replace(",Female,", f",{misspelt},").replace(",Male,", f",{misspelt},")
    rejected_sheet = {
        "name": "rejected.csv",
        "content_base64": base64.b64encode("\n".join(rows).encode()).decode(),
    }
    with Sandbox() as sandbox:
        cookie = reliability.sign_in(sandbox)
        wrong_token = "d2p_" + "W" * 48
        with reliability.HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="token", token=wrong_token)
            assert host.request("check_connection")["error"]["code"] == "AUTH_REQUIRED"
            host.configure(sandbox.base_url, auth="session")
            assert not host.request("check_connection", session_cookie="stale-0123456789")["ok"]
            assert host.request("check_connection", session_cookie=cookie)["ok"]
            assert host.request("validate", sheet=rejected_sheet)["ok"]
            assert host.request("upload", sheet=rejected_sheet, session_cookie=cookie)["ok"]
            host.settle(60)
            sandbox.expire_sessions()
            assert not host.request("upload", sheet=sheet.message)["ok"]
        secrets = [
            wrong_token,
            cookie,
            "stale-0123456789",
            sandbox.password,
            misspelt,
            sheet.patient_number_prefix,
            reliability.ADDRESS_MARKER,
        ]
        assert list(workspace.log_dir.iterdir()), "the host wrote no log to scan"
        assert reliability.leaks(workspace, secrets) == []


# --------------------------------------------------------------------------- retention


def stored_records(store: Store, states: list[str]) -> list[int]:
    """A batch of records in the given states; returns their ids."""
    batch = store.create_batch(
        server="https://dhims2.example.org/events",
        program=PROGRAM_UID,
        stage=STAGE_UID,
        source="ward.csv",
        records=[
            NewRecord(row=row, event={"event": new_uid(), "note": f"VRH/T/{row}"}, fields={})
            for row in range(2, 2 + len(states))
        ],
    )
    records = store.batch_records(batch)
    store.finish_records({r.id: (state, []) for r, state in zip(records, states, strict=True)})
    return [record.id for record in records]


def values_kept(store: Store) -> dict[str, bool]:
    return {
        f"{record.row} {record.state}": record.event is not None
        for batch in store.list_batches()
        for record in store.batch_records(batch.id)
    }


def backdate(database: Path, days: float) -> None:
    """Makes every record look `days` older, as if uploaded that long ago."""
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE records SET updated_at = updated_at - ?", (days * 86400,))
    connection.close()


def test_values_of_uploaded_records_are_purged_once_the_retention_period_is_over(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / STORE_FILE_NAME) as store:
        stored_records(store, [CREATED, CREATED, REJECTED, QUEUED])
        day_30 = time.time() + 30 * SECONDS_PER_DAY - 60
        assert purge_expired(store, 30, now=day_30) == 0
        assert purge_expired(store, 30, now=day_30 + 120) == 2
        # Rejected and queued records keep their values: the clerk still has to act on them.
        assert values_kept(store) == {
            "2 created": False,
            "3 created": False,
            "4 rejected": True,
            "5 queued": True,
        }


@pytest.mark.parametrize("days", [0, -1, 1.5, True, "30"])
def test_a_retention_period_must_be_a_whole_number_of_days(days: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        check_retention_days(days)
    with Store(tmp_path / STORE_FILE_NAME) as store, pytest.raises(ValueError):
        purge_expired(store, days)  # type: ignore[arg-type]


def test_the_sender_purges_when_it_starts_and_after_each_pass(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    database = tmp_path / STORE_FILE_NAME
    with Store(database) as store:
        stored_records(store, [CREATED])
        backdate(database, 8)
        token = sandbox.create_token()
        pushed: list[dict] = []
        sender = BackgroundSender(
            store,
            lambda: Dhis2Client(sandbox.base_url, Credentials(token=token)),
            pushed.append,
            retention_days=7,
        ).start()
        try:
            eventually(lambda: values_kept(store) == {"2 created": False}, "the purge at start")
            stored_records(store, [CREATED])
            backdate(database, 8)
            sender.wake()
            eventually(lambda: not any(values_kept(store).values()), "the purge after a pass")
        finally:
            sender.stop(5)
        assert not [message for message in pushed if message.get("error")]


def test_the_host_purges_expired_copies_and_leaves_no_patient_value_on_disk(
    tmp_path: Path,
) -> None:
    workspace = reliability.Workspace(tmp_path)
    sheet = reliability.synthetic_sheet(workspace, 10, tag="P")
    database = workspace.data_dir / STORE_FILE_NAME
    with Sandbox() as sandbox:
        with reliability.HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="token", token=sandbox.create_token())
            assert host.request("upload", sheet=sheet.message)["ok"]
            host.settle(60)
        backdate(database, 31)  # the default retention is 30 days
        with reliability.HostSession(workspace) as host:
            host.request("list_batches")  # the extension's first request starts the sender
            with workspace.open_store() as store:
                eventually(lambda: not any(values_kept(store).values()), "the purge")

            # Not only unreadable through SQLite: gone from the files' bytes too, once the
            # checkpoint that follows the purge has moved the cleared pages into the file.
            def files_holding_values() -> list[str]:
                return [
                    path.name
                    for path in workspace.data_dir.rglob("*")
                    for value in (sheet.patient_number_prefix, reliability.ADDRESS_MARKER)
                    if path.is_file() and value.encode() in path.read_bytes()
                ]

            eventually(lambda: files_holding_values() == [], "the values leaving the files")
