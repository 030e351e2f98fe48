"""The DHIS2 client against the sandbox server and against a scripted hostile server."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import (
    BadServerResponse,
    InsecureServer,
    InvalidInput,
    NotSignedIn,
    RequestRejected,
    ServerError,
    ServerUnreachable,
)
from dhims2.dhis2.transport import RetryPolicy
from dhims2.dhis2.uids import new_uid
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.sandbox import Sandbox

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)
JOB_ID = "LkXBUdIgbe3"
TOKEN = Credentials(token="d2p_scripted")


# --------------------------------------------------------------------------- scripted server


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    stream_bytes: int = 0  # when set: that many bytes, no Content-Length, then close


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class ScriptedServer:
    """Answers each path from a queue of replies (the last one repeats) and records requests."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, path: str, *replies: Reply) -> None:
        self.replies[path] = list(replies)

    def count(self, path: str) -> int:
        return sum(1 for request in self.seen if request.path.split("?")[0] == path)

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            queue = self.replies.get(path.split("?")[0])
            if not queue:
                return Reply(404, b'{"httpStatusCode":404,"message":"no such path"}')
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.seen.append(SeenRequest(self.command, self.path, dict(self.headers)))
                reply = server._next_reply(self.path)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.stream_bytes:
                    self.end_headers()
                    chunk = b" " * 65536
                    for _ in range(reply.stream_bytes // len(chunk)):
                        self.wfile.write(chunk)
                    return
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


def json_reply(value: object, status: int = 200, **headers: str) -> Reply:
    return Reply(
        status, json.dumps(value).encode(), {"Content-Type": "application/json", **headers}
    )


def scripted_client(server: ScriptedServer, credentials: Credentials = TOKEN) -> Dhis2Client:
    return Dhis2Client(f"{server.origin}/events/", credentials, retry=FAST_RETRY, timeout=(2, 5))


# --------------------------------------------------------------------------- construction


def test_base_url_is_normalised_and_keeps_the_context_path(scripted: ScriptedServer) -> None:
    scripted.script("/events/api/system/info", json_reply({"version": "2.41.3"}))
    with scripted_client(scripted) as client:
        assert client.base_url == f"{scripted.origin}/events"
        assert client.server_info().version == (2, 41, 3)
    assert scripted.count("/events/api/system/info") == 1


def test_plain_http_to_a_remote_host_is_refused_before_any_request() -> None:
    with pytest.raises(InsecureServer, match="https://"):
        Dhis2Client("http://events.chimgh.org/events", TOKEN)
    client = Dhis2Client("http://events.chimgh.org/events", TOKEN, allow_insecure_http=True)
    assert client.base_url == "http://events.chimgh.org/events"
    client.close()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("events.chimgh.org/events", "https://"),
        ("ftp://events.chimgh.org", "https://"),
        ("https://clerk:secret@events.chimgh.org/events", "user name"),
        ("https://events.chimgh.org/events/#/new?orgUnitId=duCDqCRlWG1", "'#'"),
        ("https://events.chimgh.org:99999/", "port"),
        ("https:///events", "host"),
    ],
)
def test_bad_server_addresses_are_named(url: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint) as caught:
        Dhis2Client(url, TOKEN)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": "d2p_x", "session_cookie": "ABC"},
        {"username": "clerk"},
        {"password": "secret"},
        {"token": ""},
        {"token": "d2p_x\r\nX-Evil: 1"},
        {"session_cookie": "ABC; other=1"},
        {"username": "a:b", "password": "secret"},
    ],
)
def test_credentials_must_be_exactly_one_clean_way(kwargs: dict) -> None:
    with pytest.raises(InvalidInput, match="credentials"):
        Credentials(**kwargs)


def test_credentials_repr_hides_secrets() -> None:
    shown = " ".join(
        repr(credentials)
        for credentials in (
            Credentials(token="d2p_topsecret"),
            Credentials(username="clerk", password="topsecret"),
            Credentials(session_cookie="topsecretcookie"),
        )
    )
    assert "topsecret" not in shown
    assert "clerk" in shown


def test_bad_arguments_are_refused_without_a_request(scripted: ScriptedServer) -> None:
    with scripted_client(scripted) as client:
        with pytest.raises(InvalidInput, match="events"):
            client.submit_import([])
        with pytest.raises(InvalidInput, match=r"events\[1\]"):
            client.submit_import([{}, "not an event"])
        with pytest.raises(InvalidInput, match="import_strategy"):
            client.submit_import([{}], import_strategy="MERGE")
        with pytest.raises(InvalidInput, match="JSON"):
            client.import_now([{"value": float("nan")}])
        with pytest.raises(InvalidInput, match="UID"):
            client.job_notifications("../../users")
        with pytest.raises(InvalidInput, match="UID"):
            client.program("fFYTJRzD2q")
        with pytest.raises(InvalidInput, match="page_size"):
            client.list_events("fFYTJRzD2qq", page_size=0)
    assert scripted.seen == []


# --------------------------------------------------------------------------- hostile answers


def test_html_where_json_was_expected_means_not_signed_in(scripted: ScriptedServer) -> None:
    page = Reply(
        200, b"<!DOCTYPE html><html><body>Login</body></html>", {"Content-Type": "text/html"}
    )
    scripted.script("/events/api/system/info", page)
    with scripted_client(scripted) as client, pytest.raises(NotSignedIn) as caught:
        client.server_info()
    assert caught.value.code == "AUTH_REQUIRED"


def test_redirect_to_the_login_page_is_not_followed(scripted: ScriptedServer) -> None:
    login = f"{scripted.origin}/events/dhis-web-login/"
    scripted.script("/events/api/me", Reply(302, b"", {"Location": login}))
    with scripted_client(scripted) as client, pytest.raises(NotSignedIn):
        client.current_user()
    assert scripted.count("/events/dhis-web-login/") == 0
    assert scripted.count("/events/api/me") == 1


def test_redirect_to_another_origin_is_not_followed_and_gets_no_credentials(
    scripted: ScriptedServer,
) -> None:
    with ScriptedServer() as elsewhere:
        elsewhere.script("/steal", json_reply({"version": "2.41.3"}))
        target = f"{elsewhere.origin}/steal?next=1"
        scripted.script("/events/api/system/info", Reply(301, b"", {"Location": target}))
        with scripted_client(scripted) as client, pytest.raises(BadServerResponse) as caught:
            client.server_info()
        assert elsewhere.seen == []
    assert "not followed" in caught.value.message
    assert "next=1" not in caught.value.message
    assert scripted.seen[0].headers["Authorization"] == "ApiToken d2p_scripted"
    assert scripted.seen[0].headers["X-Requested-With"] == "XMLHttpRequest"


def test_truncated_json_is_a_bad_server_response(scripted: ScriptedServer) -> None:
    scripted.script("/events/api/me", Reply(200, b'{"id": "xE7jOejl9FI", "usern'))
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match="JSON"):
        client.current_user()


def test_a_job_answer_that_is_an_object_is_a_bad_server_response(
    scripted: ScriptedServer,
) -> None:
    scripted.script(
        f"/events/api/tracker/jobs/{JOB_ID}", json_reply({"status": "COMPLETED", "id": JOB_ID})
    )
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match="list"):
        client.job_notifications(JOB_ID)


@pytest.mark.parametrize(
    ("path", "answer", "call", "complaint"),
    [
        ("tracker/jobs/" + JOB_ID, [{"message": "Running Validation"}], "notifications", "entry"),
        ("tracker/jobs/" + JOB_ID + "/report", {"stats": {"created": 1}}, "report", "status"),
        ("tracker/jobs/" + JOB_ID + "/report", {"status": "OK", "stats": "1"}, "report", "stats"),
        ("tracker", {"response": {"id": "../../x/y"}}, "submit", "UID"),
        ("tracker", {"httpStatus": "OK"}, "submit", "response"),
        ("system/info", {"version": "latest"}, "info", "version"),
        ("system/info", ["2.41.3"], "info", "object"),
        ("me", {"id": "xE7jOejl9FI", "username": "clerk"}, "me", "organisationUnits"),
    ],
)
def test_wrong_shapes_are_named(
    scripted: ScriptedServer, path: str, answer: object, call: str, complaint: str
) -> None:
    scripted.script(f"/events/api/{path}", json_reply(answer))
    calls = {
        "notifications": lambda c: c.job_notifications(JOB_ID),
        "report": lambda c: c.job_report(JOB_ID),
        "submit": lambda c: c.submit_import([{"event": "Kj6vYde4LHh"}]),
        "info": lambda c: c.server_info(),
        "me": lambda c: c.current_user(),
    }
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match=complaint):
        calls[call](client)


def test_a_huge_body_is_cut_off(scripted: ScriptedServer) -> None:
    scripted.script(
        "/events/api/system/info",
        Reply(200, b"", {"Content-Type": "application/json"}, stream_bytes=33 * 1024 * 1024),
    )
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match="MiB"):
        client.server_info()


def test_a_huge_declared_length_is_refused_before_reading(scripted: ScriptedServer) -> None:
    scripted.script(
        "/events/api/system/info",
        Reply(200, b"", {"Content-Type": "application/json", "Content-Length": str(2**40)}),
    )
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match="MiB"):
        client.server_info()


def test_retry_after_is_honoured_up_to_the_cap(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    busy = json_reply({"message": "slow down"}, 429, **{"Retry-After": "7"})
    scripted.script("/api/system/info", busy, json_reply({"version": "2.41.3"}))
    policy = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.05)
    caplog.set_level(logging.INFO, logger="dhims2.dhis2.transport")
    with Dhis2Client(scripted.origin, TOKEN, retry=policy) as client:
        assert client.server_info().version_text == "2.41.3"
    assert scripted.count("/api/system/info") == 2
    assert "in 0.05 s" in caplog.text


def test_retry_after_below_the_cap_is_waited_out(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    busy = json_reply({"message": "slow down"}, 429, **{"Retry-After": "1"})
    scripted.script("/api/system/info", busy, json_reply({"version": "2.41.3"}))
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=30)
    caplog.set_level(logging.INFO, logger="dhims2.dhis2.transport")
    with Dhis2Client(scripted.origin, TOKEN, retry=policy) as client:
        client.server_info()
    assert "in 1.00 s" in caplog.text


def test_gateway_errors_are_retried_then_reported(scripted: ScriptedServer) -> None:
    scripted.script(
        "/events/api/me", Reply(503, b"<html>down</html>", {"Content-Type": "text/html"})
    )
    with scripted_client(scripted) as client, pytest.raises(ServerError) as caught:
        client.current_user()
    assert caught.value.status == 503
    assert scripted.count("/events/api/me") == FAST_RETRY.attempts


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500])
def test_other_errors_are_not_retried(scripted: ScriptedServer, status: int) -> None:
    web_message = {
        "httpStatusCode": status,
        "status": "ERROR",
        "message": "Nope",
        "errorCode": "E1",
    }
    scripted.script("/events/api/me", json_reply(web_message, status))
    expected = ServerError if status >= 500 else RequestRejected
    with scripted_client(scripted) as client, pytest.raises(expected) as caught:
        client.current_user()
    assert caught.value.status == status
    assert scripted.count("/events/api/me") == 1
    if status < 500:
        assert "Nope" in caught.value.message
        assert caught.value.server_code == "E1"


def test_unreachable_server_is_reported_after_retries() -> None:
    with ScriptedServer() as gone:
        origin = gone.origin
    client = Dhis2Client(origin, TOKEN, retry=FAST_RETRY, timeout=(1, 1))
    with client, pytest.raises(ServerUnreachable) as caught:
        client.server_info()
    assert caught.value.code == "SERVER_UNREACHABLE"


def test_events_of_a_pre_2_36_server_are_listed_in_the_tracker_shape(
    scripted: ScriptedServer,
) -> None:
    scripted.script("/events/api/system/info", json_reply({"version": "2.35.14"}))
    legacy = {"event": "Kj6vYde4LHh", "eventDate": "2025-03-01T00:00:00.000", "dataValues": []}
    scripted.script("/events/api/events", json_reply({"pager": {"page": 1}, "events": [legacy]}))
    with scripted_client(scripted) as client:
        listed = list(client.list_events("fFYTJRzD2qq", page_size=50))
    assert listed == [{"event": "Kj6vYde4LHh", "occurredAt": legacy["eventDate"], "dataValues": []}]


def test_a_server_that_ignores_paging_is_caught(scripted: ScriptedServer) -> None:
    scripted.script("/events/api/system/info", json_reply({"version": "2.41.3"}))
    page = [{"event": "Kj6vYde4LHh"}, {"event": "Wn4w3tyAbnX"}]
    scripted.script("/events/api/tracker/events", json_reply({"instances": page}))
    with scripted_client(scripted) as client, pytest.raises(BadServerResponse, match="same page"):
        list(client.list_events("fFYTJRzD2qq", page_size=2))
    assert scripted.count("/events/api/tracker/events") == 2


def test_logs_never_hold_secrets_or_query_values(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script("/events/api/tracker/events", json_reply({"instances": []}))
    scripted.script("/events/api/system/info", json_reply({"version": "2.41.3"}))
    caplog.set_level(logging.DEBUG, logger="dhims2.dhis2.transport")
    credentials = Credentials(username="clerk", password="Sandbox-Pass-1")
    with scripted_client(scripted, credentials) as client:
        assert list(client.list_events("fFYTJRzD2qq", org_unit="duCDqCRlWG1")) == []
    assert "GET /api/tracker/events -> 200" in caplog.text
    assert "duCDqCRlWG1" not in caplog.text
    assert "Sandbox-Pass-1" not in caplog.text
    assert scripted.seen[-1].headers["Authorization"].startswith("Basic ")


# --------------------------------------------------------------------------- against the sandbox

OPTION_CODE_ERROR = "E1125"
EventBuilder = Callable[..., dict]


def client_for(
    sandbox: Sandbox, credentials: Credentials | None = None, retry: RetryPolicy = FAST_RETRY
) -> Dhis2Client:
    credentials = credentials or Credentials(token=sandbox.create_token())
    return Dhis2Client(sandbox.base_url, credentials, retry=retry)


def wait_for_report(client: Dhis2Client, job_id: str, deadline: float = 10.0) -> dict:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        report = client.job_report(job_id)
        if report is not None:
            return report
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} got no report within {deadline} s")


def test_token_reads_system_info_user_and_program(sandbox: Sandbox) -> None:
    with client_for(sandbox) as client:
        info = client.server_info()
        assert info.version == (2, 41, 3)
        assert info.version_text == "2.41.3"
        assert client.supports_tracker_import()
        user = client.current_user()
        assert user.username == sandbox.username
        assert ORG_UNIT_UID in user.org_unit_ids
        program = client.program(PROGRAM_UID)
        assert program["programStages"][0]["id"] == STAGE_UID
        program["programStages"].clear()
        assert client.program(PROGRAM_UID)["programStages"], "the cached program was changed"
    assert sandbox.request_count("GET", f"/api/programs/{PROGRAM_UID}") == 1


def test_older_token_prefix_is_accepted(sandbox: Sandbox) -> None:
    credentials = Credentials(token=sandbox.create_token(prefix="d2pat_"))
    with client_for(sandbox, credentials) as client:
        assert client.current_user().username == sandbox.username


def test_basic_auth_signs_in_and_a_wrong_password_does_not(sandbox: Sandbox) -> None:
    good = Credentials(username=sandbox.username, password=sandbox.password)
    with client_for(sandbox, good) as client:
        assert client.current_user().username == sandbox.username
    bad = Credentials(username=sandbox.username, password="not-the-password")
    with client_for(sandbox, bad) as client, pytest.raises(NotSignedIn) as caught:
        client.current_user()
    assert "not-the-password" not in caught.value.message


def test_unknown_token_is_not_signed_in_and_not_retried(sandbox: Sandbox) -> None:
    credentials = Credentials(token="d2p_" + "x" * 48)
    with client_for(sandbox, credentials) as client, pytest.raises(NotSignedIn):
        client.server_info()
    assert sandbox.request_count("GET", "/api/system/info") == 1


def test_browser_session_cookie_works_until_the_session_expires(sandbox: Sandbox) -> None:
    login = requests.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=5,
    )
    credentials = Credentials(session_cookie=login.cookies["JSESSIONID"])
    with client_for(sandbox, credentials) as client:
        assert client.current_user().username == sandbox.username
        sandbox.expire_sessions()
        with pytest.raises(NotSignedIn):
            client.current_user()


def test_unknown_program_is_rejected_with_the_servers_message(sandbox: Sandbox) -> None:
    with client_for(sandbox) as client, pytest.raises(RequestRejected) as caught:
        client.program("AAAAAAAAAAA")
    assert caught.value.status == 404
    assert "AAAAAAAAAAA" in caught.value.message


def test_async_import_gives_a_job_its_notifications_and_its_report(
    sandbox: Sandbox, inpatient_event: EventBuilder
) -> None:
    events = [inpatient_event() for _ in range(3)]
    with client_for(sandbox) as client:
        job_id = client.submit_import(events)
        report = wait_for_report(client, job_id)
        notifications = client.job_notifications(job_id)
    assert report["status"] == "OK"
    assert report["stats"]["created"] == 3
    assert any(entry["completed"] for entry in notifications)
    assert notifications[-1]["message"] == "Tracker import started"
    assert {event["event"] for event in sandbox.stored_events()} == {e["event"] for e in events}


def test_a_queued_job_has_no_notifications_and_no_report_yet(
    sandbox: Sandbox, inpatient_event: EventBuilder
) -> None:
    sandbox.knobs.queue_delay = 30
    with client_for(sandbox) as client:
        job_id = client.submit_import([inpatient_event()])
        assert client.job_notifications(job_id) == []
        assert client.job_report(job_id) is None


def test_sync_import_returns_the_report_for_200_and_409(
    sandbox: Sandbox, inpatient_event: EventBuilder
) -> None:
    good, bad = inpatient_event(), inpatient_event(values={"fg8sMCaTOrK": "Malee"})
    with client_for(sandbox) as client:
        partial = client.import_now([good, bad])
        refused = client.import_now([inpatient_event(), bad], atomic_mode="ALL")
    assert partial["status"] == "OK"
    assert partial["stats"]["created"] == 1
    assert [(e["uid"], e["errorCode"]) for e in partial["validationReport"]["errorReports"]] == [
        (bad["event"], OPTION_CODE_ERROR)
    ]
    assert refused["status"] == "ERROR"
    assert refused["stats"]["ignored"] == 2
    assert sandbox.request_count("POST", "/api/tracker") == 2
    assert [event["event"] for event in sandbox.stored_events()] == [good["event"]]


def test_a_malformed_payload_is_rejected_once(
    sandbox: Sandbox, inpatient_event: EventBuilder
) -> None:
    with client_for(sandbox) as client, pytest.raises(RequestRejected) as caught:
        client.import_now([{**inpatient_event(), "status": "FINISHED"}])
    assert caught.value.status == 400
    assert "status" in caught.value.message
    assert sandbox.request_count("POST", "/api/tracker") == 1


def test_gateway_errors_are_retried_until_the_attempts_run_out(sandbox: Sandbox) -> None:
    sandbox.knobs.error_rate = 1.0
    with client_for(sandbox) as client, pytest.raises(ServerError) as caught:
        client.server_info()
    assert caught.value.status in (502, 503, 504)
    assert sandbox.request_count("GET", "/api/system/info") == FAST_RETRY.attempts


def test_intermittent_gateway_errors_are_ridden_out(sandbox: Sandbox) -> None:
    sandbox.knobs.error_rate, sandbox.knobs.seed = 0.5, 1
    policy = RetryPolicy(attempts=20, base_delay=0.001, max_delay=0.005)
    with client_for(sandbox, retry=policy) as client:
        for _ in range(5):
            assert client.current_user().username == sandbox.username
    assert sandbox.request_count("GET", "/api/me") > 5


@pytest.mark.parametrize("knob", ["drop_before_rate", "drop_after_rate"])
def test_dropped_imports_are_resent_without_duplicating_events(
    sandbox: Sandbox, knob: str, inpatient_event: EventBuilder
) -> None:
    setattr(sandbox.knobs, knob, 0.5)
    sandbox.knobs.seed = 1  # the first draw drops, the second does not
    events = [inpatient_event() for _ in range(4)]
    with client_for(sandbox) as client:
        job_id = client.submit_import(events)
        assert wait_for_report(client, job_id)["status"] == "OK"
    assert sandbox.wait_idle(10)
    assert sandbox.request_count("POST", "/api/tracker") == 2
    stored = sorted(event["event"] for event in sandbox.stored_events())
    assert stored == sorted(event["event"] for event in events)


def test_events_are_listed_across_pages(sandbox: Sandbox, inpatient_event: EventBuilder) -> None:
    events = [inpatient_event() for _ in range(5)]
    with client_for(sandbox) as client:
        client.import_now(events)
        listed = list(client.list_events(PROGRAM_UID, org_unit=ORG_UNIT_UID, page_size=2))
    assert sorted(event["event"] for event in listed) == sorted(e["event"] for e in events)
    assert all(event["occurredAt"].startswith("2025-03-01") for event in listed)
    assert sandbox.request_count("GET", "/api/tracker/events") == 3


def test_legacy_import_on_2_35_reports_like_the_tracker(
    sandbox: Sandbox, inpatient_event: EventBuilder
) -> None:
    good, bad = inpatient_event(), inpatient_event(values={"fg8sMCaTOrK": "Malee"})
    with client_for(sandbox) as client:
        tracker_report = client.import_now([good, bad])
    with Sandbox(version="2.35.0") as old_server, client_for(old_server) as client:
        assert not client.supports_tracker_import()
        again_good = inpatient_event()
        again_bad = {**bad, "event": new_uid()}
        legacy_report = client.import_legacy_events([again_good, again_bad])
        with pytest.raises(RequestRejected) as caught:
            client.submit_import([inpatient_event()])
        stored = old_server.stored_events()
    assert caught.value.status == 404

    def shape(report: dict, uid_of_bad: str) -> tuple:
        errors = report["validationReport"]["errorReports"]
        return (
            report["status"],
            {key: report["stats"][key] for key in ("created", "updated", "ignored", "total")},
            [(error["uid"] == uid_of_bad, error["errorCode"]) for error in errors],
        )

    assert shape(legacy_report, again_bad["event"]) == shape(tracker_report, bad["event"])
    assert [event["event"] for event in stored] == [again_good["event"]]
    assert stored[0]["occurredAt"].startswith("2025-03-01")


def test_legacy_import_of_an_existing_event_updates_it(inpatient_event: EventBuilder) -> None:
    with Sandbox(version="2.35.0") as old_server, client_for(old_server) as client:
        event = inpatient_event()
        assert client.import_legacy_events([event])["stats"]["created"] == 1
        again = client.import_legacy_events([event])
        assert (again["stats"]["created"], again["stats"]["updated"]) == (0, 1)
        assert len(old_server.stored_events()) == 1


def test_a_tls_failure_is_logged_and_chained(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    # An https:// client talking to a plain-http port fails in the TLS handshake.
    https_origin = scripted.origin.replace("http://", "https://")
    caplog.set_level(logging.WARNING, logger="dhims2.dhis2.transport")
    with (
        Dhis2Client(https_origin, TOKEN, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(ServerUnreachable, match="secure connection") as raised,
    ):
        client.server_info()
    assert isinstance(raised.value.__cause__, requests.exceptions.SSLError)
    assert "secure connection failed" in caplog.text
    assert TOKEN.token not in caplog.text
