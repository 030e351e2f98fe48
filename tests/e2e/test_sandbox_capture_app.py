"""The sandbox serving a real Capture build: its files where DHIS2 serves them, with the server's
address filled in, and the metadata Capture asks for, from the sandbox's own program."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from capture_app import VERSIONS, capture_build

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID
from dhims2.sandbox import Sandbox

GENDER = "fg8sMCaTOrK"
SANDBOX_COMMAND = [sys.executable, "-m", "dhims2.cli", "sandbox"]


@pytest.fixture(params=VERSIONS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Sandbox, requests.Session]]:
    with Sandbox(capture_app=capture_build(request.param), date_format="dd-mm-yyyy") as sandbox:
        session = requests.Session()
        session.headers["Authorization"] = f"ApiToken {sandbox.create_token()}"
        yield sandbox, session


def test_index_html_names_the_server_as_each_app_platform_reads_it(served) -> None:
    sandbox, session = served
    page = session.get(f"{sandbox.base_url}/dhis-web-capture/index.html", timeout=10)
    assert page.status_code == 200
    assert "__DHIS2_BASE_URL__" not in page.text
    # v106 reads a meta tag, v101 localStorage.DHIS2_BASE_URL; either way the server's address.
    assert f'"{sandbox.base_url}"' in page.text or f"'{sandbox.base_url}'" in page.text
    for asset in ("manifest.json", "favicon.ico"):
        assert session.get(f"{sandbox.base_url}/dhis-web-capture/{asset}", timeout=10).ok
    # The builds' licence lies one folder up: a file that exists, outside the build.
    outside = session.get(f"{sandbox.base_url}/dhis-web-capture/%2e%2e/LICENSE", timeout=10)
    assert outside.status_code == 404


def test_without_a_session_capture_goes_to_the_login_page(served) -> None:
    sandbox, _session = served
    page = requests.get(f"{sandbox.base_url}/dhis-web-capture/", allow_redirects=False, timeout=10)
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/events/dhis-web-login/")


def test_metadata_comes_from_the_sandbox_program(served) -> None:
    sandbox, session = served
    api = f"{sandbox.base_url}/api/41"

    def get(path: str, **params: str) -> dict:
        response = session.get(f"{api}/{path}", params=params, timeout=10)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    assert get("system/info", fields="dateFormat")["dateFormat"] == "dd-mm-yyyy"
    assert get("programs/orgUnits", programs=PROGRAM_UID)[PROGRAM_UID] == sorted(
        [ORG_UNIT_UID, "Kp4wTr2mHoS", "Zq8NvB3xLeA"]
    )
    [program] = get(
        "programs",
        fields="id,programType,categoryCombo[isDefault],programStages[programStageDataElements"
        "[compulsory,dataElement[id,optionSet[id,version]]]]",
        filter=f"id:in:[{PROGRAM_UID}]",
    )["programs"]
    assert program["programType"] == "WITHOUT_REGISTRATION"
    assert program["categoryCombo"] == {"isDefault": True}
    stage_elements = program["programStages"][0]["programStageDataElements"]
    assert len(stage_elements) == 16
    gender = next(e for e in stage_elements if e["dataElement"]["id"] == GENDER)
    option_set = gender["dataElement"]["optionSet"]["id"]
    [options] = get("optionSets", filter=f"id:in:[{option_set}]")["optionSets"]
    assert [(o["code"], o["displayName"]) for o in options["options"]] == [
        ("Male", "Male"),
        ("Female", "Female"),
    ]
    unit = get(f"organisationUnits/{ORG_UNIT_UID}", fields="displayName,ancestors[id,displayName]")
    assert unit["displayName"] == "Volta Regional Hospital"
    assert [a["id"] for a in unit["ancestors"]] == ["GhanaRoot01", "VoltaReg001"]
    me = session.get(f"{api}/me.json", params={"fields": "settings"}, timeout=10).json()
    assert me == {"settings": {"keyUiLocale": "en", "keyDbLocale": "en"}}
    # What the sandbox does not model is an empty list, as DHIS2 has none, never an error.
    assert get("programRules", filter="program.id:in:[x]") == {
        "pager": {"page": 1, "pageCount": 1, "total": 0, "pageSize": 50},
        "programRules": [],
    }
    missing = session.get(f"{api}/dataStore/capture/ruleEngine", timeout=10)
    assert missing.status_code == 404


def test_the_command_refuses_a_folder_that_is_not_a_capture_build(tmp_path: Path) -> None:
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "dhims2.cli",
            "sandbox",
            "--port",
            "0",
            "--capture-app",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "not a Capture app build" in finished.stderr
