"""Reading from the sandbox: system info, program metadata, events listed the 2.41 way."""

from __future__ import annotations

import pytest

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID

SECOND_UNIT = "Kp4wTr2mHoS"


def test_system_info_names_the_version_and_context(sandbox, sandbox_client):
    info = sandbox_client.get("/api/system/info").json()
    assert info["version"] == "2.41.3"
    assert info["contextPath"] == sandbox.base_url
    assert info["serverTimeZoneId"] == "Africa/Accra"


def test_the_program_has_its_stage_and_16_data_elements(sandbox_client):
    fields = (
        "id,name,programType,organisationUnits[id],programStages[id,name,programStageDataElements"
        "[compulsory,dataElement[id,code,name,formName,valueType,optionSet[id,options[code,name]]]]]"
    )
    program = sandbox_client.get(f"/api/programs/{PROGRAM_UID}", params={"fields": fields}).json()
    assert set(program) == {"id", "name", "programType", "organisationUnits", "programStages"}
    [stage] = program["programStages"]
    assert len(stage["programStageDataElements"]) == 16
    assert sandbox_client.get(f"/api/programs/{PROGRAM_UID}", params={"fields": "id"}).json() == {
        "id": PROGRAM_UID
    }


def test_an_unknown_program_is_a_404_web_message(sandbox_client):
    response = sandbox_client.get("/api/programs/Unknownprg1")
    assert response.status_code == 404
    body = response.json()
    assert (body["httpStatusCode"], body["status"]) == (404, "ERROR")
    assert "Unknownprg1" in body["message"]


def test_unbalanced_fields_are_a_400(sandbox_client):
    response = sandbox_client.get(
        f"/api/programs/{PROGRAM_UID}", params={"fields": "id,programStages[id"}
    )
    assert response.status_code == 400


@pytest.fixture
def five_events(sandbox_client, inpatient_event):
    events = [inpatient_event() for _ in range(4)] + [inpatient_event(orgUnit=SECOND_UNIT)]
    assert sandbox_client.import_now(events).status_code == 200
    return events


def test_events_are_listed_a_page_at_a_time(sandbox_client, five_events):
    body = sandbox_client.get("/api/tracker/events", params={"page": 3, "pageSize": 2}).json()
    assert body["pager"] == {"page": 3, "pageSize": 2}
    assert (body["page"], body["pageSize"]) == (3, 2)
    assert [event["event"] for event in body["instances"]] == [five_events[4]["event"]]


def test_totals_come_with_total_pages(sandbox_client, five_events):
    body = sandbox_client.get(
        "/api/tracker/events", params={"pageSize": 2, "totalPages": "true"}
    ).json()
    assert body["pager"] == {"page": 1, "pageSize": 2, "total": 5, "pageCount": 3}
    assert (body["total"], body["pageCount"]) == (5, 3)
    assert len(body["instances"]) == 2


def test_events_can_be_filtered_and_trimmed(sandbox_client, five_events):
    params = {"program": PROGRAM_UID, "orgUnit": SECOND_UNIT, "fields": "event,orgUnit"}
    body = sandbox_client.get("/api/tracker/events", params=params).json()
    assert body["instances"] == [{"event": five_events[4]["event"], "orgUnit": SECOND_UNIT}]
    wanted = ",".join(event["event"] for event in five_events[:2])
    chosen = sandbox_client.get(
        "/api/tracker/events", params={"events": wanted, "orgUnits": ORG_UNIT_UID}
    )
    assert len(chosen.json()["instances"]) == 2


def test_paging_can_be_turned_off(sandbox_client, five_events):
    body = sandbox_client.get(
        "/api/tracker/events", params={"paging": "false", "pageSize": 1}
    ).json()
    assert set(body) == {"instances"}
    assert len(body["instances"]) == 5


@pytest.mark.parametrize(
    "params",
    [{"program": "Unknownprg1"}, {"orgUnit": "Unknownou01"}, {"page": "0"}, {"pageSize": "many"}],
)
def test_bad_listing_parameters_are_a_400(sandbox_client, params):
    assert sandbox_client.get("/api/tracker/events", params=params).status_code == 400


def test_one_event_is_read_as_stored(sandbox, sandbox_client, five_events):
    uid = five_events[0]["event"]
    event = sandbox_client.get(f"/api/tracker/events/{uid}").json()
    assert event == next(stored for stored in sandbox.stored_events() if stored["event"] == uid)
    assert event["status"] == "COMPLETED" and event["occurredAt"] == "2025-03-01T00:00:00.000"
    assert {"createdAt", "updatedAt", "completedAt", "storedBy"} <= set(event)
    assert len(event["dataValues"]) == 14


def test_a_missing_event_is_a_404_and_a_bad_uid_a_400(sandbox_client):
    assert sandbox_client.get("/api/tracker/events/Unknownevt1").status_code == 404
    assert sandbox_client.get("/api/tracker/events/bad").status_code == 400


def test_unknown_endpoints_and_methods(sandbox_client):
    assert sandbox_client.get("/api/nothing").status_code == 404
    response = sandbox_client.get("/api/tracker")
    assert response.status_code == 405
    assert response.json()["httpStatusCode"] == 405


def test_the_value_index_follows_every_replaced_event_and_keeps_the_stored_order():
    from dhims2.sandbox.store import EventStore

    def event(uid: str, number: str, *, deleted: bool = False) -> dict:
        values = [{"dataElement": "h0Ef6ykTpNB", "value": number}]
        return {"event": uid, "deleted": deleted, "dataValues": values}

    store = EventStore()
    with store.transaction() as stored:
        for uid, number in (("Evt00000001", "A"), ("Evt00000002", "B"), ("Evt00000003", "A")):
            stored[uid] = event(uid, number)
        stored["Evt00000001"] = event("Evt00000001", "C")  # an update moves it to another value
        stored["Evt00000003"] = event("Evt00000003", "A", deleted=True)
        stored["Evt00000004"] = event("Evt00000004", "A")

    def uids(values: set[str]) -> list[str]:
        found = store.live_with_value("h0Ef6ykTpNB", values, lambda event: True)
        return [item["event"] for item in found]

    assert uids({"A"}) == ["Evt00000004"]
    assert uids({"C", "B", "A"}) == ["Evt00000001", "Evt00000002", "Evt00000004"]
    assert uids({"Z"}) == []
