"""The sandbox's failure knobs: latency, gateway errors, dropped connections, and their checks."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from dhims2.forms.metadata import PROGRAM_UID
from dhims2.sandbox import Knobs, Sandbox


def test_latency_delays_every_answer(sandbox, sandbox_client):
    sandbox.knobs.latency = 0.05  # knobs are read on every request
    started = time.monotonic()
    assert sandbox_client.get("/api/system/info").status_code == 200
    assert time.monotonic() - started >= 0.05


def test_the_uplink_carries_request_and_response_bodies_at_its_bandwidth(sandbox, sandbox_client):
    sandbox.knobs.uplink_bytes_per_second = 100_000
    started = time.monotonic()
    sandbox_client.post("/api/tracker?async=false", data=b"x" * 40_000)  # refused, once carried
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    answer = sandbox_client.get(f"/api/programs/{PROGRAM_UID}")
    took = time.monotonic() - started
    assert answer.status_code == 200 and len(answer.content) > 5_000
    assert took >= len(answer.content) / 100_000
    sandbox.knobs.uplink_bytes_per_second = 0
    started = time.monotonic()
    sandbox_client.post("/api/tracker?async=false", data=b"x" * 40_000)
    assert time.monotonic() - started < 0.4


def test_bodies_crossing_the_uplink_together_share_it(sandbox, sandbox_client):
    sandbox.knobs.uplink_bytes_per_second = 100_000
    finished: list[float] = []

    def send() -> None:
        sandbox_client.post("/api/tracker?async=false", data=b"x" * 25_000)
        finished.append(time.monotonic())

    started = time.monotonic()
    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(10)
    # Each body alone takes 0.25 s; the second waits for the first.
    assert max(finished) - started >= 0.5


def test_error_rate_answers_like_a_failing_gateway(sandbox, sandbox_client, inpatient_event):
    sandbox.knobs.error_rate = 1.0
    response = sandbox_client.import_now([inpatient_event()])
    assert response.status_code in (502, 503, 504)
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<title>{response.status_code} " in response.text
    assert sandbox.stored_events() == []
    # Pages are not API requests.
    assert requests.get(f"{sandbox.base_url}/dhis-web-login/", timeout=10).status_code == 200


def test_error_rate_follows_the_seed(sandbox_client_for):
    def statuses(seed: int) -> list[int]:
        with Sandbox(knobs=Knobs(error_rate=0.5, seed=seed)) as sandbox:
            client = sandbox_client_for(sandbox)
            return [client.get("/api/system/info").status_code for _ in range(12)]

    first = statuses(3)
    assert first == statuses(3)
    assert 200 in first and {502, 503, 504} & set(first)


def test_drop_before_resets_the_connection_and_imports_nothing(
    sandbox, sandbox_client, inpatient_event
):
    sandbox.knobs.drop_before_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        sandbox_client.import_events([inpatient_event()])
    with pytest.raises(requests.ConnectionError):
        sandbox_client.post("/api/events", json={"events": []})
    assert sandbox.request_count("POST", "/api/tracker") == 1
    assert sandbox.wait_idle(1)
    assert sandbox.stored_events() == []
    # Only imports are dropped.
    assert sandbox_client.get("/api/me").status_code == 200


@pytest.mark.parametrize("asynchronous", ["true", "false"])
def test_drop_after_imports_and_then_resets_the_connection(
    sandbox, sandbox_client, inpatient_event, asynchronous
):
    sandbox.knobs.drop_after_rate = 1.0
    event = inpatient_event()
    with pytest.raises(requests.ConnectionError):
        sandbox_client.import_events([event], **{"async": asynchronous})
    assert sandbox.wait_idle(5)
    assert [stored["event"] for stored in sandbox.stored_events()] == [event["event"]]


def test_the_connection_stays_usable_after_a_plain_error(sandbox, sandbox_client):
    # A 404 without reading the body must not confuse the next request on the keep-alive connection.
    assert sandbox_client.post("/api/nothing", data=b"x" * 10_000).status_code == 404
    assert sandbox_client.get("/api/system/info").status_code == 200


def test_the_server_stops_cleanly_and_frees_its_port():
    sandbox = Sandbox().start()
    url = sandbox.base_url
    held_open = requests.Session()
    held_open.get(f"{url}/dhis-web-login/", timeout=10)  # a keep-alive connection
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/dhis-web-login/", timeout=2)
    port = int(url.split(":")[2].split("/")[0])
    with Sandbox(port=port) as again:
        assert requests.get(f"{again.base_url}/dhis-web-login/", timeout=10).status_code == 200
    with pytest.raises(RuntimeError):
        sandbox.start()


@pytest.mark.parametrize(
    ("knobs", "named"),
    [
        ({"latency": -1}, "latency"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"per_event_seconds": "fast"}, "per_event_seconds"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_knobs_refuse_values_that_make_no_sense(knobs, named):
    with pytest.raises(ValueError, match=named):
        Knobs(**knobs)


@pytest.mark.parametrize(
    ("options", "named"), [({"version": "3.0"}, "version"), ({"context_path": "a b"}, "context")]
)
def test_the_sandbox_refuses_bad_settings(options, named):
    with pytest.raises(ValueError, match=named):
        Sandbox(**options)
