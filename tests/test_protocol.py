"""The protocol's envelope, error table, per-type schemas and reply paging."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from dhims2 import __version__
from dhims2.browser import greeting, protocol
from dhims2.browser.framing import MAX_OUTBOUND_BYTES, encode_message
from dhims2.browser.protocol import ProtocolError
from dhims2.workspace.config import ConfigError

PROTOCOL_DOC = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"
FORM = {
    "program": "fFYTJRzD2qq",
    "stage": "LR7JT7ZNg8E",
    "orgUnit": "duCDqCRlWG1",
    "occurredAt": "2025-03-01",
    "values": {"upqhIcii1iC": 20, "fg8sMCaTOrK": "Male", "ETSl9Q3SUOG": True, "nk15h7fzCLz": None},
}

# type -> requests its schema accepts (id and type are added)
VALID = {
    "ping": [{}],
    "get_config": [{}],
    "configure": [
        {},
        {
            "server": "https://dhims2.example.org/events",
            "auth": "token",
            "token": "d2pat_synthetic",
            "program": "fFYTJRzD2qq",
            "stage": "LR7JT7ZNg8E",
            "org_unit": "duCDqCRlWG1",
            "batch_size": 1000,
            "allow_insecure_http": False,
        },
        {"token": ""},
    ],
    "check_connection": [{}, {"session_cookie": "JSESSIONID=synthetic"}],
    "get_program": [{}, {"program": "fFYTJRzD2qq", "stage": "LR7JT7ZNg8E"}],
    "list_templates": [{}],
    "upload": [
        {"form": FORM},
        {"form": {**FORM, "occurredAt": "2025-03-01T10:00:00.000", "event": "a1234567890"}},
        {"records": [{"patient": "P-1"}], "session_cookie": "JSESSIONID=synthetic"},
        {"sheet": {"name": "ward.xlsx", "content_base64": "UEsDBA==", "template": "inpatient"}},
    ],
    "validate": [{"records": []}],
    "list_batches": [{}, {"page": 0, "page_size": 200}],
    "get_batch": [{"batch": "b-1"}, {"batch": "b-1", "page": 3, "page_size": 1}],
    "get_patients": [{"batch": "b-1"}, {"batch": "b-1", "page": 3, "page_size": 1}],
    "retry": [{"batch": "b-1"}],
    "cancel": [{"batch": "b-1"}],
    "forget": [{"batch": "b-1"}, {"uploaded_before": "2025-01-01T00:00:00Z"}],
}

# (type, request fields, the field the refusal must name, the rule it broke)
INVALID = [
    ("ping", {"extra": 1}, "extra", "additionalProperties"),
    ("get_config", {"token": "x"}, "token", "additionalProperties"),
    ("configure", {"server": "ftp://example.org"}, "server", "pattern"),
    ("configure", {"server": "x" * 3000}, "server", "maxLength"),
    ("configure", {"auth": "basic"}, "auth", "enum"),
    ("configure", {"token": 5}, "token", "type"),
    ("configure", {"program": "not-a-uid"}, "program", "pattern"),
    ("configure", {"org_unit": "1uCDqCRlWG1"}, "org_unit", "pattern"),
    ("configure", {"batch_size": 0}, "batch_size", "minimum"),
    ("configure", {"batch_size": 1001}, "batch_size", "maximum"),
    ("configure", {"batch_size": "100"}, "batch_size", "type"),
    ("configure", {"allow_insecure_http": "yes"}, "allow_insecure_http", "type"),
    ("configure", {"retention_days": 5}, "retention_days", "additionalProperties"),
    ("check_connection", {"session_cookie": ""}, "session_cookie", "minLength"),
    ("get_program", {"stage": "short"}, "stage", "pattern"),
    ("upload", {}, "", "oneOf"),
    ("upload", {"form": FORM, "records": []}, "", "oneOf"),
    ("upload", {"form": {**FORM, "orgUnit": None}}, "form.orgUnit", "type"),
    (
        "upload",
        {"form": {k: v for k, v in FORM.items() if k != "values"}},
        "form.values",
        "required",
    ),
    ("upload", {"form": {**FORM, "occurredAt": "01-03-2025"}}, "form.occurredAt", "pattern"),
    ("upload", {"form": {**FORM, "values": {"bad key": "1"}}}, "form.values.bad key", "pattern"),
    (
        "upload",
        {"form": {**FORM, "values": {"upqhIcii1iC": [20]}}},
        "form.values.upqhIcii1iC",
        "type",
    ),
    ("upload", {"form": {**FORM, "extra": 1}}, "form.extra", "additionalProperties"),
    ("upload", {"records": [{}] * 50_001}, "records", "maxItems"),
    ("upload", {"records": ["row"]}, "records.0", "type"),
    ("upload", {"sheet": {"name": "a.xlsx"}}, "sheet.content_base64", "required"),
    ("validate", {"sheet": {"name": "", "content_base64": "AA=="}}, "sheet.name", "minLength"),
    ("list_batches", {"page_size": 201}, "page_size", "maximum"),
    ("list_batches", {"page": -1}, "page", "minimum"),
    ("get_batch", {}, "batch", "required"),
    ("get_batch", {"batch": "x" * 65}, "batch", "maxLength"),
    ("get_patients", {"batch": "b-1", "rows": [2]}, "rows", "additionalProperties"),
    ("get_patients", {"batch": "b-1", "page_size": 201}, "page_size", "maximum"),
    ("retry", {}, "batch", "required"),
    ("cancel", {"batch": 7}, "batch", "type"),
    ("forget", {}, "", "oneOf"),
    ("forget", {"batch": "b-1", "uploaded_before": "2025-01-01T00:00:00Z"}, "", "oneOf"),
    ("forget", {"uploaded_before": "yesterday"}, "uploaded_before", "pattern"),
]


def request(message_type: str, fields: dict[str, object]) -> dict[str, object]:
    return {"id": "r-1", "type": message_type, **fields}


def test_the_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    document = json.loads(
        (Path(protocol.__file__).parent / "schemas" / "messages.json").read_text("utf-8")
    )
    Draft202012Validator.check_schema(document)
    for name in document["messages"]:
        Draft202012Validator.check_schema(document["messages"][name])


def test_every_message_type_has_a_schema_and_examples_here() -> None:
    assert protocol.schema_names() == sorted(VALID)


@pytest.mark.parametrize(
    ("message_type", "fields"),
    [(message_type, fields) for message_type, examples in VALID.items() for fields in examples],
)
def test_valid_requests_pass(message_type: str, fields: dict[str, object]) -> None:
    protocol.validate_message(request(message_type, fields), message_type)


@pytest.mark.parametrize(("message_type", "fields", "field", "rule"), INVALID)
def test_invalid_requests_are_refused_naming_the_field(
    message_type: str, fields: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        protocol.validate_message(request(message_type, fields), message_type)
    assert refused.value.code == "INVALID_MESSAGE"
    assert refused.value.details == {"field": field, "rule": rule}
    if field:
        assert refused.value.message.startswith(f"{field}: ")


def test_one_of_refusals_say_which_fields_are_alternatives() -> None:
    with pytest.raises(ProtocolError, match="exactly one of: form, records, sheet"):
        protocol.validate_message(request("upload", {}), "upload")


def test_refusals_never_quote_the_sender_s_value() -> None:
    secret = "Patient Abena Mensah " * 10_000
    for fields in ({"server": secret}, {"token": 12}, {"auth": secret}):
        with pytest.raises(ProtocolError) as refused:
            protocol.validate_message(request("configure", fields), "configure")
        assert "Abena" not in refused.value.message
        assert len(refused.value.message) < 200


@pytest.mark.parametrize(
    ("message", "field", "rule"),
    [
        ({"type": "ping"}, "id", "required"),
        ({"id": "", "type": "ping"}, "id", "minLength"),
        ({"id": "x" * 65, "type": "ping"}, "id", "maxLength"),
        ({"id": 17, "type": "ping"}, "id", "type"),
        ({"id": "r-1"}, "type", "required"),
        ({"id": "r-1", "type": ["ping"]}, "type", "type"),
    ],
)
def test_the_envelope_needs_a_short_string_id_and_a_type(
    message: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        protocol.validate_envelope(message)
    assert refused.value.details == {"field": field, "rule": rule}


def test_the_envelope_leaves_other_fields_to_the_type_schema() -> None:
    protocol.validate_envelope({"id": "x" * 64, "type": "anything", "more": 1})


def test_request_id_is_echoed_only_when_valid() -> None:
    assert protocol.request_id_of({"id": "r-17"}) == "r-17"
    assert protocol.request_id_of({"id": "x" * 64}) == "x" * 64
    for bad in ({}, {"id": ""}, {"id": "x" * 65}, {"id": 17}, {"id": None}):
        assert protocol.request_id_of(bad) is None


def test_hello_names_version_protocol_and_sorted_capabilities() -> None:
    assert greeting.hello(["ping", "configure"]) == {
        "type": "hello",
        "version": __version__,
        "protocol": 1,
        "capabilities": ["configure", "ping"],
    }


def test_the_hello_names_exactly_the_message_types_the_host_handles() -> None:
    # The hello is written before the handlers load, from a list kept beside it.
    from dhims2.browser import dispatch, handlers  # noqa: F401 (registers them)

    assert greeting.hello()["capabilities"] == dispatch.capabilities()


def test_reply_shapes() -> None:
    assert protocol.ok_reply("r-1", {"pong": True}) == {"id": "r-1", "ok": True, "pong": True}
    assert protocol.error_reply(None, "BAD_FRAME", "broken") == {
        "id": None,
        "ok": False,
        "error": {"code": "BAD_FRAME", "message": "broken", "details": {}},
    }


def test_a_protocol_error_needs_a_known_code() -> None:
    with pytest.raises(ValueError, match="unknown error code"):
        ProtocolError("OOPS", "no such code")


def test_exceptions_with_a_known_code_become_replies_others_do_not() -> None:
    class LowerLayerError(Exception):
        code = "SERVER_UNREACHABLE"

    reachable = protocol.error_from_exception(LowerLayerError("no route to host"))
    assert reachable is not None
    assert (reachable.code, reachable.message) == ("SERVER_UNREACHABLE", "no route to host")

    config_error = protocol.error_from_exception(ConfigError("broken", field="server"))
    assert config_error is not None
    assert (config_error.code, config_error.details) == ("NOT_CONFIGURED", {"field": "server"})

    class UnknownCode(Exception):
        code = "SOMETHING_ELSE"

    assert protocol.error_from_exception(UnknownCode()) is None
    assert protocol.error_from_exception(KeyError("x")) is None


def test_protocol_doc_lists_every_error_code_and_message_type() -> None:
    text = PROTOCOL_DOC.read_text("utf-8")
    documented_codes = set(re.findall(r"^\| `([A-Z_]+)` \|", text, re.MULTILINE))
    assert documented_codes == set(protocol.ERROR_CODES)
    documented_types = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
    assert documented_types == set(protocol.schema_names())


def test_every_error_code_says_what_the_user_should_do() -> None:
    for code, info in protocol.ERROR_CODES.items():
        assert info.meaning and info.user_action, code


def test_paginate_respects_page_size_and_points_to_the_next_page() -> None:
    items = list(range(10))
    first = protocol.paginate(items, page_size=4)
    assert (first.items, first.next_page) == ([0, 1, 2, 3], 4)
    last = protocol.paginate(items, page=8, page_size=4)
    assert (last.items, last.next_page) == ([8, 9], None)
    assert protocol.paginate([], page_size=4) == protocol.Page([], None)


def test_paginate_cuts_a_page_at_the_byte_budget() -> None:
    items = [{"n": n, "text": "x" * 100} for n in range(50)]
    item_bytes = len(json.dumps(items[0], separators=(",", ":")))
    page = protocol.paginate(items, page_size=50, budget_bytes=10 * item_bytes + 11)
    assert len(page.items) == 10
    assert page.next_page == 10


def test_paged_replies_of_large_items_always_fit_in_one_frame() -> None:
    items = [{"record": n, "errors": ["é" * 40_000]} for n in range(200)]
    page, pages = 0, 0
    while page is not None:
        chunk = protocol.paginate(items, page=page, page_size=200)
        frame = encode_message(
            protocol.ok_reply("r-1", {"items": chunk.items, "next_page": chunk.next_page})
        )
        assert len(frame) - 4 <= MAX_OUTBOUND_BYTES
        page, pages = chunk.next_page, pages + 1
    assert pages > 1


def test_an_item_too_big_for_any_reply_is_an_error_not_an_empty_page() -> None:
    with pytest.raises(ProtocolError) as refused:
        protocol.paginate([{"x": "y" * 100}], page_size=5, budget_bytes=50)
    assert refused.value.code == "MESSAGE_TOO_LARGE"


def test_paginate_refuses_nonsense_arguments() -> None:
    with pytest.raises(ValueError):
        protocol.paginate([1], page=-1, page_size=1)
    with pytest.raises(ValueError):
        protocol.paginate([1], page_size=0)
