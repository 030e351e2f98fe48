"""Authentication on the sandbox: tokens, Basic, login sessions, and what happens without them."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from dhims2.sandbox import Sandbox

UNAUTHORIZED = {
    "httpStatus": "Unauthorized",
    "httpStatusCode": 401,
    "status": "ERROR",
    "message": "Unauthorized",
}


def get_me(sandbox: Sandbox, **kwargs) -> requests.Response:
    return requests.get(f"{sandbox.base_url}/api/me", timeout=10, allow_redirects=False, **kwargs)


@pytest.mark.parametrize("prefix", ["d2p_", "d2pat_"])
def test_a_personal_access_token_of_either_prefix_signs_in(sandbox, prefix):
    token = sandbox.create_token(prefix)
    assert token.startswith(prefix)
    response = get_me(sandbox, headers={"Authorization": f"ApiToken {token}"})
    assert response.status_code == 200
    assert response.json()["username"] == "clerk"


def test_an_unknown_token_is_a_401_asking_for_an_api_token(sandbox):
    response = get_me(sandbox, headers={"Authorization": "ApiToken d2p_unknownunknownunknown"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "ApiToken"
    assert response.json()["httpStatusCode"] == 401


def test_the_api_creates_tokens_that_work_until_they_expire(sandbox, sandbox_client):
    created = sandbox_client.post("/api/apiToken", json={})
    assert created.status_code == 201
    body = created.json()
    assert (body["httpStatus"], body["httpStatusCode"], body["status"]) == ("Created", 201, "OK")
    key = body["response"]["key"]
    assert key.startswith("d2p_") and body["response"]["uid"]
    assert get_me(sandbox, headers={"Authorization": f"ApiToken {key}"}).status_code == 200

    expired = sandbox_client.post("/api/apiToken", json={"expire": int(time.time() * 1000) - 1000})
    response = get_me(
        sandbox, headers={"Authorization": f"ApiToken {expired.json()['response']['key']}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "ApiToken"


def test_tokens_made_by_2_40_have_the_old_prefix(sandbox_client_for):
    with Sandbox(version="2.40") as sandbox:
        key = sandbox_client_for(sandbox).post("/api/apiToken").json()["response"]["key"]
        assert key.startswith("d2pat_")
        assert get_me(sandbox, headers={"Authorization": f"ApiToken {key}"}).status_code == 200


def test_a_bad_token_request_is_a_400(sandbox_client):
    assert sandbox_client.post("/api/apiToken", json={"expire": "soon"}).status_code == 400


def test_basic_auth_signs_in(sandbox):
    assert get_me(sandbox, auth=(sandbox.username, sandbox.password)).status_code == 200


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [basic("clerk:wrong"), basic("nobody:Sandbox-Pass-1"), basic("no colon"), "Basic %%%"],
)
def test_wrong_basic_credentials_are_a_401(sandbox, authorization):
    response = get_me(sandbox, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_an_unsupported_scheme_is_a_401_naming_it(sandbox):
    response = get_me(sandbox, headers={"Authorization": "Bearer abc"})
    assert response.status_code == 401
    assert "Bearer" in response.json()["message"]


def test_without_credentials_a_browser_is_sent_to_the_login_page(sandbox):
    response = get_me(sandbox)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sandbox.base_url}/dhis-web-login/"
    login_page = requests.get(response.headers["Location"], timeout=10)
    assert login_page.status_code == 200
    assert login_page.headers["Content-Type"].startswith("text/html")
    assert 'name="j_username"' in login_page.text


def test_without_credentials_an_xhr_gets_a_401(sandbox):
    response = get_me(sandbox, headers={"X-Requested-With": "XMLHttpRequest"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_the_login_api_opens_a_session(sandbox):
    session = requests.Session()
    response = session.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {"loginStatus": "SUCCESS", "redirectUrl": "/events/dhis-web-capture/"}
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("JSESSIONID=") and "Path=/events" in cookie and "HttpOnly" in cookie
    assert session.get(f"{sandbox.base_url}/api/41/me", timeout=10).json()["username"] == "clerk"


@pytest.mark.parametrize(
    ("body", "status"),
    [({"username": "clerk", "password": "wrong"}, 401), ({"username": "clerk"}, 400), ([], 400)],
)
def test_the_login_api_refuses_bad_logins(sandbox, body, status):
    response = requests.post(f"{sandbox.base_url}/api/auth/login", json=body, timeout=10)
    assert response.status_code == status
    assert "Set-Cookie" not in response.headers


def test_the_login_form_opens_a_session_and_goes_to_capture(sandbox):
    session = requests.Session()
    response = session.post(
        f"{sandbox.base_url}/dhis-web-commons-security/login.action",
        data={"j_username": sandbox.username, "j_password": sandbox.password},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sandbox.base_url}/dhis-web-capture/"
    assert session.get(f"{sandbox.base_url}/api/me", timeout=10).status_code == 200


def test_a_failed_form_login_returns_to_the_login_page(sandbox):
    response = requests.post(
        f"{sandbox.base_url}/dhis-web-commons-security/login.action",
        data={"j_username": sandbox.username, "j_password": "wrong"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sandbox.base_url}/dhis-web-login/?failed=true"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("end_sessions", [Sandbox.expire_sessions, Sandbox.restart])
def test_an_expired_session_is_treated_as_no_credentials(sandbox, end_sessions):
    session = requests.Session()
    session.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=10,
    )
    end_sessions(sandbox)
    response = session.get(f"{sandbox.base_url}/api/me", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dhis-web-login/")
    xhr = session.get(
        f"{sandbox.base_url}/api/me", headers={"X-Requested-With": "XMLHttpRequest"}, timeout=10
    )
    assert xhr.status_code == 401


def test_me_lists_the_capture_scope_and_honours_fields(sandbox_client):
    me = sandbox_client.get(
        "/api/me", params={"fields": "id,username,organisationUnits[id,path]"}
    ).json()
    assert me == {
        "id": "xE7jOejl9FI",
        "username": "clerk",
        "organisationUnits": [
            {"id": "duCDqCRlWG1", "path": "/GhanaRoot01/VoltaReg001/duCDqCRlWG1"},
            {"id": "Kp4wTr2mHoS", "path": "/GhanaRoot01/VoltaReg001/Kp4wTr2mHoS"},
        ],
    }
    full = sandbox_client.get("/api/me").json()
    assert full["organisationUnits"][0]["name"] == "Volta Regional Hospital"
    assert "password" not in full
