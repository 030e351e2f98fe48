"""DHIS2 is the judge of duplicates: a new store or another spelling of the address updates the
events already there instead of creating them again (the real CLI against the sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dhims2.dhis2.address import normalised_base_url
from dhims2.dhis2.client import Dhis2Client, data_value_filter
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import InvalidInput
from dhims2.forms.metadata import ORG_UNIT_UID, PATIENT_NUMBER_UID, PROGRAM_UID
from dhims2.forms.synthetic import synthetic_rows, write_csv

PYTHON = sys.executable


def dhims2(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dhims2.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def upload(sandbox, path: Path, env: dict[str, str], server: str | None = None) -> dict:
    args = ["upload", str(path), "--server", server or sandbox.base_url]
    result = dhims2(*args, "--token", sandbox.create_token(), "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def duplicates(sandbox) -> int:
    admissions = Counter(
        tuple(
            value["value"]
            for value in event["dataValues"]
            if value["dataElement"] in (PATIENT_NUMBER_UID, "HsMaBh3wKed")
        )
        for event in sandbox.stored_events()
    )
    return sum(count - 1 for count in admissions.values())


def test_the_same_file_from_a_new_data_folder_updates_and_creates_nothing(sandbox, tmp_path, env):
    path = write_csv(tmp_path / "records.csv", list(synthetic_rows(120)))
    first = upload(sandbox, path, env)
    assert first["created"] == 120
    other_pc = {**env, "DHIMS2_DATA_DIR": str(tmp_path / "other-pc")}
    again = upload(sandbox, path, other_pc)
    assert (again["created"], again["updated"]) == (0, 120)
    assert len(sandbox.stored_events()) == 120 and duplicates(sandbox) == 0
    # Batched: one lookup per 100 patient numbers (two batches of 100 and 20 here).
    assert sandbox.request_count("GET", "/api/tracker/events") <= 2 * 2


@pytest.mark.parametrize(
    "respell",
    [
        lambda url: url.replace("127.0.0.1", "localhost"),
        lambda url: url + "/",
        lambda url: url.replace("http://", "HTTP://").replace("/events", "/events//"),
        lambda url: url.replace("/events", "/./events/"),
    ],
    ids=["localhost", "trailing-slash", "case-and-double-slash", "dot-segment"],
)
def test_another_spelling_of_the_address_updates_and_creates_nothing(
    sandbox, tmp_path, env, respell
):
    path = write_csv(tmp_path / "records.csv", list(synthetic_rows(30)))
    upload(sandbox, path, env)
    again = upload(sandbox, path, env, server=respell(sandbox.base_url))
    assert (again["created"], again["updated"]) == (0, 30)
    assert len(sandbox.stored_events()) == 30 and duplicates(sandbox) == 0


def test_patient_numbers_with_filter_separators_are_found(sandbox, tmp_path, env):
    rows = list(synthetic_rows(5))
    for row, number in zip(rows, ["A,1", "B:2", "C;3", "D/4", "E/,5"], strict=True):
        row["Patient number"] = number
    path = write_csv(tmp_path / "records.csv", rows)
    assert upload(sandbox, path, env)["created"] == 5
    again = upload(sandbox, path, {**env, "DHIMS2_DATA_DIR": str(tmp_path / "new")})
    assert (again["created"], again["updated"]) == (0, 5)
    assert duplicates(sandbox) == 0


def test_addresses_are_canonical():
    base = "https://events.chimgh.org/events"
    for spelling in (
        "HTTPS://Events.ChimGH.org:443/events/",
        "https://events.chimgh.org/events//",
        "https://events.chimgh.org//events/./",
    ):
        assert normalised_base_url(spelling) == base
    assert normalised_base_url("http://127.0.0.1:80/") == "http://127.0.0.1"
    assert normalised_base_url("https://h:8443/x") == "https://h:8443/x"
    assert normalised_base_url("http://[::1]:8080/x/") == "http://[::1]:8080/x"


def test_value_filters_escape_what_dhis2_reads_as_separators():
    assert data_value_filter(PATIENT_NUMBER_UID, ["a,b:c"]) == f"{PATIENT_NUMBER_UID}:eq:a/,b/:c"
    assert data_value_filter(PATIENT_NUMBER_UID, ["1", "2"]) == f"{PATIENT_NUMBER_UID}:in:1;2"
    with pytest.raises(InvalidInput, match="alone"):
        data_value_filter(PATIENT_NUMBER_UID, ["1;2", "3"])


def test_the_sandbox_filters_events_by_data_value_as_dhis2_does(
    sandbox, sandbox_client, inpatient_event
):
    numbers = ["P,1", "P:2", "P3", "P;4"]
    events = [inpatient_event({PATIENT_NUMBER_UID: number}) for number in numbers]
    assert sandbox_client.import_now(events).status_code == 200
    uid_of = {number: event["event"] for number, event in zip(numbers, events, strict=True)}
    with Dhis2Client(sandbox.base_url, Credentials(token=sandbox.create_token())) as client:

        def found(values: list[str]) -> set[str]:
            value_filter = data_value_filter(PATIENT_NUMBER_UID, values)
            listed = client.list_events(PROGRAM_UID, ORG_UNIT_UID, value_filter=value_filter)
            return {event["event"] for event in listed}

        assert found(["P,1", "P:2", "P3"]) == {uid_of["P,1"], uid_of["P:2"], uid_of["P3"]}
        assert found(["P;4"]) == {uid_of["P;4"]}
        assert found(["p3"]) == set()
    unknown = sandbox_client.get(
        "/api/tracker/events", params={"filter": f"{PATIENT_NUMBER_UID}:like:P"}
    )
    assert unknown.status_code == 400 and "like" in unknown.json()["message"]
