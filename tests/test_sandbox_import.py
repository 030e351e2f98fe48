"""POST /api/tracker on the sandbox: strategies, atomic modes, VALIDATE, every error code,
parameters, versions, and the legacy /api/events import."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID, bundled_metadata
from dhims2.sandbox import Sandbox

USER_UID = "xE7jOejl9FI"
OUT_OF_SCOPE_UNIT = "Zq8NvB3xLeA"  # in the program, not in the clerk's capture scope
OTHER_PROGRAM = "Otherprog01"
OTHER_STAGE = "Otherstage1"
OTHER_ELEMENT = "Otherelem01"
UNASSIGNED_UNIT = "Unassigned1"  # below the clerk's hospital, not assigned to the program
AGE, GENDER, ADMISSION, COST, INSURED = (
    "upqhIcii1iC",
    "fg8sMCaTOrK",
    "HsMaBh3wKed",
    "fRkwcThGCTM",
    "ETSl9Q3SUOG",
)


def extended_metadata() -> dict[str, Any]:
    """The bundled metadata plus what some error codes need: a second program, an org unit the
    program lacks, and gender options whose codes differ from their names."""
    metadata = copy.deepcopy(bundled_metadata())
    metadata["organisationUnits"].append(
        {
            "id": UNASSIGNED_UNIT,
            "name": "Synthetic Clinic",
            "path": f"/GhanaRoot01/VoltaReg001/{ORG_UNIT_UID}/{UNASSIGNED_UNIT}",
        }
    )
    element = {"id": OTHER_ELEMENT, "name": "Other", "formName": "Other", "valueType": "TEXT"}
    metadata["programs"].append(
        {
            "id": OTHER_PROGRAM,
            "name": "Other programme",
            "programType": "WITHOUT_REGISTRATION",
            "organisationUnits": [{"id": ORG_UNIT_UID}],
            "programStages": [
                {
                    "id": OTHER_STAGE,
                    "name": "Other stage",
                    "programStageDataElements": [{"compulsory": False, "dataElement": element}],
                }
            ],
        }
    )
    for stage_element in metadata["programs"][0]["programStages"][0]["programStageDataElements"]:
        if stage_element["dataElement"]["id"] == GENDER:
            stage_element["dataElement"]["optionSet"]["options"] = [
                {"code": "M", "name": "Male"},
                {"code": "F", "name": "Female"},
            ]
    return metadata


def only_error(report: dict[str, Any]) -> dict[str, Any]:
    errors = report["validationReport"]["errorReports"]
    assert len(errors) == 1, errors
    return errors[0]


# --- strategies ---------------------------------------------------------------------------------


def test_create_and_update_creates_then_updates_the_same_event(
    sandbox, sandbox_client, inpatient_event
):
    event = inpatient_event()
    first = sandbox_client.import_now([event])
    assert first.status_code == 200
    assert first.json()["stats"] == {
        "created": 1,
        "updated": 0,
        "deleted": 0,
        "ignored": 0,
        "total": 1,
    }

    event["dataValues"] = [{"dataElement": AGE, "value": "35"}]
    event["status"] = "ACTIVE"
    second = sandbox_client.import_now([event])
    assert second.status_code == 200
    assert second.json()["stats"]["updated"] == 1
    [stored] = sandbox.stored_events()
    assert stored["event"] == event["event"]
    values = {value["dataElement"]: value["value"] for value in stored["dataValues"]}
    assert values[AGE] == "35"
    assert values[GENDER] == "Female"  # data values are merged, not replaced


def test_an_event_without_uid_gets_one_from_the_server(sandbox, sandbox_client, inpatient_event):
    event = inpatient_event()
    del event["event"]
    assert sandbox_client.import_now([event]).status_code == 200
    assert sandbox_client.import_now([event]).status_code == 200
    uids = [stored["event"] for stored in sandbox.stored_events()]
    assert len(uids) == 2 and len(set(uids)) == 2  # the retry duplicated the record


def test_create_rejects_an_existing_event_with_E1030(sandbox_client, inpatient_event):
    event = inpatient_event()
    assert sandbox_client.import_now([event], importStrategy="CREATE").status_code == 200
    response = sandbox_client.import_now([event], importStrategy="create")
    assert response.status_code == 409
    error = only_error(response.json())
    assert error == {
        "message": f"Event: `{event['event']}`, already exists.",
        "errorCode": "E1030",
        "trackerType": "EVENT",
        "uid": event["event"],
        "args": [event["event"]],
    }


def test_update_rejects_an_unknown_event_with_E1032(sandbox, sandbox_client, inpatient_event):
    event = inpatient_event()
    response = sandbox_client.import_now([event], importStrategy="UPDATE")
    assert response.status_code == 409
    assert only_error(response.json())["errorCode"] == "E1032"
    assert sandbox.stored_events() == []


def test_delete_removes_the_event_and_a_deleted_event_cannot_come_back(
    sandbox, sandbox_client, inpatient_event
):
    event = inpatient_event()
    sandbox_client.import_now([event])
    deleted = sandbox_client.import_now([{"event": event["event"]}], importStrategy="DELETE")
    assert deleted.status_code == 200
    assert deleted.json()["stats"]["deleted"] == 1
    assert sandbox.stored_events() == []

    again = sandbox_client.import_now([event])
    assert only_error(again.json())["errorCode"] == "E1082"
    unknown = sandbox_client.import_now([inpatient_event()], importStrategy="DELETE")
    assert only_error(unknown.json())["errorCode"] == "E1032"


# --- atomic modes and VALIDATE ------------------------------------------------------------------


def test_atomic_all_rejects_the_whole_payload_for_one_bad_event(
    sandbox, sandbox_client, inpatient_event
):
    good, bad = inpatient_event(), inpatient_event(values={AGE: "-1"})
    response = sandbox_client.import_now([good, bad])
    assert response.status_code == 409
    report = response.json()
    assert report["status"] == "ERROR"
    assert report["stats"] == {"created": 0, "updated": 0, "deleted": 0, "ignored": 2, "total": 2}
    assert "bundleReport" not in report
    assert only_error(report)["uid"] == bad["event"]
    assert sandbox.stored_events() == []


def test_atomic_object_stores_the_valid_events_and_reports_the_others(
    sandbox, sandbox_client, inpatient_event
):
    good, bad = inpatient_event(), inpatient_event(values={GENDER: "Malee"})
    response = sandbox_client.import_now([good, bad], atomicMode="OBJECT")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "OK"
    assert report["stats"] == {"created": 1, "updated": 0, "deleted": 0, "ignored": 1, "total": 2}
    assert only_error(report)["uid"] == bad["event"]
    assert report["bundleReport"]["typeReportMap"]["EVENT"]["stats"]["created"] == 1
    assert [stored["event"] for stored in sandbox.stored_events()] == [good["event"]]


def test_validate_mode_stores_nothing(sandbox, sandbox_client, inpatient_event):
    response = sandbox_client.import_now([inpatient_event()], importMode="VALIDATE")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "OK"
    assert report["bundleReport"]["typeReportMap"] == {}
    assert sandbox.stored_events() == []
    rejected = sandbox_client.import_now([inpatient_event(occurredAt=None)], importMode="VALIDATE")
    assert rejected.status_code == 409
    assert only_error(rejected.json())["errorCode"] == "E1031"


def test_report_modes_show_object_reports_only_in_full(sandbox_client, inpatient_event):
    errors = sandbox_client.import_now([inpatient_event()], reportMode="ERRORS").json()
    assert "objectReports" not in errors["bundleReport"]["typeReportMap"]["EVENT"]
    assert "timingsStats" not in errors
    event = inpatient_event()
    full = sandbox_client.import_now([event], reportMode="full").json()
    [object_report] = full["bundleReport"]["typeReportMap"]["EVENT"]["objectReports"]
    assert object_report == {"trackerType": "EVENT", "uid": event["event"], "errorReports": []}
    assert "timers" in full["timingsStats"]


# --- error codes --------------------------------------------------------------------------------

BUNDLED_CASES = [
    (
        {"orgUnit": OUT_OF_SCOPE_UNIT},
        "E1000",
        [USER_UID, OUT_OF_SCOPE_UNIT],
        f"User: `{USER_UID}`, has no write access to OrganisationUnit: `{OUT_OF_SCOPE_UNIT}`.",
    ),
    (
        {"program": "Unknownprg1"},
        "E1010",
        ["Unknownprg1"],
        "Could not find Program: `Unknownprg1`, linked to Event.",
    ),
    (
        {"orgUnit": "Unknownou01"},
        "E1011",
        ["Unknownou01"],
        "Could not find OrganisationUnit: `Unknownou01`, linked to Event.",
    ),
    (
        {"programStage": "Unknownstg1"},
        "E1013",
        ["Unknownstg1"],
        "Could not find ProgramStage: `Unknownstg1`, linked to Event.",
    ),
    ({"occurredAt": None}, "E1031", None, "Event OccurredAt date is missing."),
    (
        {"event": "bad-uid"},
        "E1048",
        ["bad-uid", "bad-uid", "bad-uid"],
        "Object: `bad-uid`, uid: `bad-uid`, has an invalid uid format.",
    ),
    ({"orgUnit": None}, "E1123", ["orgUnit"], "Missing required event property: `orgUnit`."),
]


@pytest.mark.parametrize(("change", "code", "args", "message"), BUNDLED_CASES)
def test_event_property_errors(sandbox_client, inpatient_event, change, code, args, message):
    event = inpatient_event(**change)
    error = only_error(sandbox_client.import_now([event]).json())
    assert error["errorCode"] == code
    assert error["message"] == message
    assert error["uid"] == event["event"]
    assert error["trackerType"] == "EVENT"
    assert error["args"] == (args if args is not None else [event["event"]])


def test_missing_program_and_stage_are_both_reported(sandbox_client, inpatient_event):
    report = sandbox_client.import_now([inpatient_event(program=None, programStage=None)]).json()
    assert [
        (error["errorCode"], error["args"]) for error in report["validationReport"]["errorReports"]
    ] == [
        ("E1123", ["programStage"]),
        ("E1123", ["program"]),
    ]


def test_an_event_program_stage_or_program_can_be_left_out(
    sandbox, sandbox_client, inpatient_event
):
    without_stage = inpatient_event(programStage=None)
    without_program = inpatient_event(program=None)
    assert sandbox_client.import_now([without_stage, without_program]).status_code == 200
    assert {(stored["program"], stored["programStage"]) for stored in sandbox.stored_events()} == {
        (PROGRAM_UID, STAGE_UID)
    }


@pytest.mark.parametrize(
    ("values", "args"),
    [
        ({AGE: "-1"}, [AGE, "value_not_zero_or_positive_integer"]),
        ({AGE: "3.5"}, [AGE, "value_not_zero_or_positive_integer"]),
        ({ADMISSION: "2025-02-30"}, [ADMISSION, "value_not_valid_date"]),
        ({ADMISSION: "01-03-2025"}, [ADMISSION, "value_not_valid_date"]),
        ({INSURED: "Yes"}, [INSURED, "value_not_bool"]),
        ({COST: "12,50"}, [COST, "value_not_numeric"]),
    ],
)
def test_values_that_do_not_fit_the_value_type_get_E1302(
    sandbox_client, inpatient_event, values, args
):
    error = only_error(sandbox_client.import_now([inpatient_event(values=values)]).json())
    assert error["errorCode"] == "E1302"
    assert error["args"] == args
    assert error["message"] == f"DataElement `{args[0]}` is not valid: `{args[1]}`"


def test_values_of_the_right_type_are_accepted(sandbox_client, inpatient_event):
    values = {AGE: "0", COST: "-12.50", INSURED: "TRUE", ADMISSION: "2024-02-29"}
    assert sandbox_client.import_now([inpatient_event(values=values)]).status_code == 200


def test_an_unknown_option_code_gets_E1125(sandbox_client, inpatient_event):
    error = only_error(
        sandbox_client.import_now([inpatient_event(values={GENDER: "Malee"})]).json()
    )
    assert error["errorCode"] == "E1125"
    assert error["args"] == ["Malee", "fOgNSbvv1JA"]
    assert (
        error["message"] == "Value `Malee` is not a valid option code in option set `fOgNSbvv1JA`"
    )


def test_compulsory_values_are_enforced_only_for_completed_events(sandbox_client, inpatient_event):
    completed = inpatient_event(values={AGE: None})
    error = only_error(sandbox_client.import_now([completed]).json())
    assert (error["errorCode"], error["args"]) == ("E1303", [AGE])
    assert error["message"] == f"Mandatory DataElement `{AGE}` is not present"
    # ON_COMPLETE (DHIS2's default validation strategy): an ACTIVE event may be incomplete.
    active = inpatient_event(values={AGE: None}, status="ACTIVE")
    assert sandbox_client.import_now([active]).status_code == 200


def test_a_null_compulsory_value_on_a_completed_event_gets_E1076(sandbox_client, inpatient_event):
    event = inpatient_event()
    for data_value in event["dataValues"]:
        if data_value["dataElement"] == AGE:
            data_value["value"] = None
    error = only_error(sandbox_client.import_now([event]).json())
    assert (error["errorCode"], error["args"]) == ("E1076", ["DataElement", AGE])
    assert error["message"] == f"`DataElement` `{AGE}` is mandatory and cannot be null"
    event["status"] = "ACTIVE"
    assert sandbox_client.import_now([event]).status_code == 200


def test_an_unknown_data_element_gets_E1304_and_E1305(sandbox_client, inpatient_event):
    event = inpatient_event(values={"Unknownde01": "x"})
    errors = sandbox_client.import_now([event]).json()["validationReport"]["errorReports"]
    assert [(error["errorCode"], error["args"]) for error in errors] == [
        ("E1304", ["Unknownde01"]),
        ("E1305", ["Unknownde01", STAGE_UID]),
    ]
    assert (
        errors[1]["message"]
        == f"DataElement `Unknownde01` is not part of `{STAGE_UID}` program stage"
    )


@pytest.fixture
def extended_sandbox():
    with Sandbox(metadata=extended_metadata()) as running:
        yield running


def test_an_org_unit_outside_the_program_gets_E1029(
    extended_sandbox, sandbox_client_for, inpatient_event
):
    client = sandbox_client_for(extended_sandbox)
    error = only_error(client.import_now([inpatient_event(orgUnit=UNASSIGNED_UNIT)]).json())
    assert error["errorCode"] == "E1029"
    assert error["message"] == (
        f"Event OrganisationUnit: `{UNASSIGNED_UNIT}`, and Program: `{PROGRAM_UID}`, don't match."
    )


def test_a_stage_of_another_program_gets_E1089(
    extended_sandbox, sandbox_client_for, inpatient_event
):
    client = sandbox_client_for(extended_sandbox)
    error = only_error(client.import_now([inpatient_event(programStage=OTHER_STAGE)]).json())
    assert error["errorCode"] == "E1089"


def test_a_data_element_of_another_stage_gets_E1305(
    extended_sandbox, sandbox_client_for, inpatient_event
):
    client = sandbox_client_for(extended_sandbox)
    event = inpatient_event(values={OTHER_ELEMENT: "x", GENDER: "F"})
    error = only_error(client.import_now([event]).json())
    assert (error["errorCode"], error["args"]) == ("E1305", [OTHER_ELEMENT, STAGE_UID])


def test_option_sets_take_codes_not_names(extended_sandbox, sandbox_client_for, inpatient_event):
    client = sandbox_client_for(extended_sandbox)
    error = only_error(client.import_now([inpatient_event(values={GENDER: "Female"})]).json())
    assert (error["errorCode"], error["args"]) == ("E1125", ["Female", "fOgNSbvv1JA"])
    assert client.import_now([inpatient_event(values={GENDER: "F"})]).status_code == 200


def test_every_event_of_a_payload_is_validated(sandbox_client, inpatient_event):
    events = [inpatient_event(values={AGE: "x"}), inpatient_event(occurredAt=None)]
    report = sandbox_client.import_now(events, atomicMode="OBJECT").json()
    assert [error["uid"] for error in report["validationReport"]["errorReports"]] == [
        event["event"] for event in events
    ]


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"importStrategy": "MERGE"}, "importStrategy"),
        ({"atomicMode": "SOME"}, "atomicMode"),
        ({"importMode": "DRY"}, "importMode"),
        ({"reportMode": "ALL"}, "reportMode"),
        ({"idScheme": "CODE"}, "idScheme"),
        ({"orgUnitIdScheme": "NICKNAME"}, "orgUnitIdScheme"),
        ({"skipSideEffects": "maybe"}, "skipSideEffects"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    sandbox, sandbox_client, inpatient_event, params, named
):
    response = sandbox_client.import_now([inpatient_event()], **params)
    assert response.status_code == 400
    body = response.json()
    assert body["httpStatusCode"] == 400 and body["status"] == "ERROR"
    assert named in body["message"]
    assert sandbox.stored_events() == []


def test_bulk_import_flags_are_accepted(sandbox, sandbox_client, inpatient_event):
    params = {"skipSideEffects": "true", "skipRuleEngine": "TRUE", "idScheme": "uid"}
    assert sandbox_client.import_now([inpatient_event()], **params).status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "JSON parse error"),
        (b"[]", "JSON object"),
        (b'{"events": {"event": "x"}}', "`events` must be a list"),
        (b'{"events": ["x"]}', "events[0]"),
        (b'{"events": [{"status": "DONE"}]}', "events[0].status"),
        (b'{"events": [{"occurredAt": "yesterday"}]}', "events[0].occurredAt"),
        (
            b'{"events": [{"dataValues": [{"dataElement": "a", "value": {}}]}]}',
            "dataValues[0].value",
        ),
        (b'{"trackedEntities": [{"trackedEntity": "x"}]}', "trackedEntities"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_problem(sandbox_client, body, named):
    response = sandbox_client.post(
        "/api/tracker",
        params={"async": "false"},
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert named in response.json()["message"]


def test_numbers_and_booleans_are_read_as_text(sandbox, sandbox_client, inpatient_event):
    event = inpatient_event()
    event["dataValues"] += [{"dataElement": COST, "value": 12.5}]
    for data_value in event["dataValues"]:
        if data_value["dataElement"] == AGE:
            data_value["value"] = 34
        if data_value["dataElement"] == INSURED:
            data_value["value"] = True
    assert sandbox_client.import_now([event]).status_code == 200
    values = {
        value["dataElement"]: value["value"] for value in sandbox.stored_events()[0]["dataValues"]
    }
    assert (values[AGE], values[INSURED], values[COST]) == ("34", "true", "12.5")


def test_occurred_at_is_stored_as_dhis2_exports_it(sandbox, sandbox_client, inpatient_event):
    sandbox_client.import_now([inpatient_event(occurredAt="2025-03-01T10:15:00+01:00")])
    assert sandbox.stored_events()[0]["occurredAt"] == "2025-03-01T09:15:00.000"


# --- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/tracker", "/api/28/tracker", "/api/41/tracker", "/api/42/tracker"]
)
def test_versioned_api_paths_behave_like_the_plain_one(
    sandbox, sandbox_client, inpatient_event, path
):
    response = sandbox_client.post(
        path, params={"async": "false"}, json={"events": [inpatient_event()]}
    )
    assert response.status_code == 200
    assert sandbox.request_count("POST", "/api/tracker") == 1


def test_an_api_version_outside_28_to_42_does_not_exist(sandbox_client, inpatient_event):
    assert sandbox_client.post("/api/27/tracker", json={"events": []}).status_code == 404


def test_async_on_2_41_is_synchronous_only_for_the_literal_false(sandbox_client, inpatient_event):
    assert sandbox_client.import_events([inpatient_event()], **{"async": "False"}).json()[
        "message"
    ] == ("Tracker job added")
    assert "stats" in sandbox_client.import_events([inpatient_event()], **{"async": "false"}).json()


def test_async_on_2_42_is_a_boolean(sandbox_client_for, inpatient_event):
    with Sandbox(version="2.42") as sandbox:
        client = sandbox_client_for(sandbox)
        assert "stats" in client.import_events([inpatient_event()], **{"async": "False"}).json()
        response = client.import_events([inpatient_event()], **{"async": "maybe"})
        assert response.status_code == 400
        assert "async" in response.json()["message"]


@pytest.mark.parametrize(
    ("version", "present"), [("2.40.5", True), ("2.41.3", False), ("2.42.0", True)]
)
def test_the_job_answer_names_its_type_except_on_2_41(
    sandbox_client_for, inpatient_event, version, present
):
    with Sandbox(version=version) as sandbox:
        body = sandbox_client_for(sandbox).import_events([inpatient_event()]).json()
    assert body["httpStatus"] == "OK" and body["httpStatusCode"] == 200
    assert ("responseType" in body["response"]) is present


def test_error_reports_have_no_args_before_2_41(sandbox_client_for, inpatient_event):
    with Sandbox(version="2.40") as sandbox:
        report = sandbox_client_for(sandbox).import_now([inpatient_event(values={AGE: "x"})]).json()
    assert "args" not in only_error(report)


def test_servers_before_2_36_have_no_tracker_api(sandbox_client_for, inpatient_event):
    with Sandbox(version="2.35.0") as sandbox:
        client = sandbox_client_for(sandbox)
        assert client.import_now([inpatient_event()]).status_code == 404
        assert client.get("/api/tracker/events").status_code == 404
        assert client.get("/api/system/info").json()["version"] == "2.35.0"


# --- legacy /api/events -------------------------------------------------------------------------


def legacy(event: dict[str, Any]) -> dict[str, Any]:
    converted = {key: value for key, value in event.items() if key != "occurredAt"}
    converted["eventDate"] = event["occurredAt"]
    return converted


def test_legacy_events_import_answers_import_summaries(sandbox, sandbox_client, inpatient_event):
    event = legacy(inpatient_event())
    response = sandbox_client.post("/api/events", json={"events": [event]})
    assert response.status_code == 200
    body = response.json()
    assert (body["httpStatusCode"], body["status"], body["message"]) == (
        200,
        "OK",
        "Import was successful.",
    )
    assert body["response"]["responseType"] == "ImportSummaries"
    assert (body["response"]["imported"], body["response"]["total"]) == (1, 1)
    [summary] = body["response"]["importSummaries"]
    assert summary["reference"] == event["event"]
    assert summary["importCount"] == {"imported": 1, "updated": 0, "ignored": 0, "deleted": 0}
    assert sandbox.stored_events()[0]["occurredAt"] == "2025-03-01T00:00:00.000"


def test_legacy_events_conflicts_are_a_409(sandbox, sandbox_client, inpatient_event):
    good, bad = legacy(inpatient_event()), legacy(inpatient_event(values={AGE: "old"}))
    response = sandbox_client.post("/api/41/events", json={"events": [good, bad]})
    assert response.status_code == 409
    body = response.json()
    assert body["message"] == "An error occurred, please check import summary."
    assert (body["response"]["imported"], body["response"]["ignored"]) == (1, 1)
    conflicts = body["response"]["importSummaries"][1]["conflicts"]
    assert conflicts == [
        {
            "object": AGE,
            "value": f"DataElement `{AGE}` is not valid: `value_not_zero_or_positive_integer`",
            "errorCode": "E1302",
        }
    ]
    assert len(sandbox.stored_events()) == 1


def test_legacy_events_are_gone_on_2_42(sandbox_client_for, inpatient_event):
    with Sandbox(version="2.42.0") as sandbox:
        response = sandbox_client_for(sandbox).post(
            "/api/events", json={"events": [legacy(inpatient_event())]}
        )
    assert response.status_code == 404


def test_concurrent_imports_lose_nothing(sandbox, sandbox_client_for, inpatient_event):
    batches = [[inpatient_event() for _ in range(5)] for _ in range(8)]

    def send(batch: list[dict[str, Any]]) -> int:
        return sandbox_client_for(sandbox).import_now(batch).json()["stats"]["created"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(send, batches))
    assert created == [5] * 8
    assert len(sandbox.stored_events()) == 40
