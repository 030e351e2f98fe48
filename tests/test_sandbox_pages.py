"""The sandbox's HTML: the login page and the Capture-like page's assets, over plain HTTP."""

from __future__ import annotations

import requests

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID


def signed_in(sandbox) -> requests.Session:
    session = requests.Session()
    session.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=10,
    )
    return session


def test_the_login_page_needs_no_credentials(sandbox):
    page = requests.get(f"{sandbox.base_url}/dhis-web-login/", timeout=10)
    assert page.status_code == 200
    assert 'action="../dhis-web-commons-security/login.action"' in page.text
    assert 'name="j_password"' in page.text


def test_the_capture_page_needs_a_session(sandbox):
    url = f"{sandbox.base_url}/dhis-web-capture/index.html"
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sandbox.base_url}/dhis-web-login/"
    page = signed_in(sandbox).get(url, timeout=10)
    assert page.status_code == 200
    assert 'data-test="dataentry-field-occurredAt"' in page.text
    assert 'data-test="dataentry-field-orgUnit"' in page.text
    assert 'id="completeYes"' in page.text


def test_the_capture_assets_are_local(sandbox):
    session = signed_in(sandbox)
    page = session.get(f"{sandbox.base_url}/dhis-web-capture/", timeout=10).text
    assert "http://" not in page and "https://" not in page  # no external resources
    script = session.get(f"{sandbox.base_url}/dhis-web-capture/capture.js", timeout=10)
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "form-field-" in script.text
    assert (
        session.get(f"{sandbox.base_url}/dhis-web-capture/capture.css", timeout=10).status_code
        == 200
    )


def test_the_root_and_bare_app_paths_lead_to_capture(sandbox):
    for path in ("", "/", "/dhis-web-capture"):
        response = requests.get(f"{sandbox.base_url}{path}", allow_redirects=False, timeout=10)
        assert response.status_code == 302
        assert response.headers["Location"] == f"{sandbox.base_url}/dhis-web-capture/"


def test_the_org_unit_the_page_shows_is_served(sandbox):
    session = signed_in(sandbox)
    unit = session.get(
        f"{sandbox.base_url}/api/organisationUnits/{ORG_UNIT_UID}?fields=id,name", timeout=10
    )
    assert unit.json() == {"id": ORG_UNIT_UID, "name": "Volta Regional Hospital"}
    assert (
        session.get(
            f"{sandbox.base_url}/api/organisationUnits/{PROGRAM_UID}", timeout=10
        ).status_code
        == 404
    )


def test_paths_outside_the_context_path_are_not_found(sandbox):
    root = sandbox.base_url.removesuffix("/events")
    assert requests.get(f"{root}/api/system/info", timeout=10).status_code == 404
    assert requests.get(f"{root}/eventsx/api/system/info", timeout=10).status_code == 404
