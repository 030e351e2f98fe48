"""The message protocol between the extension and the host: envelope, error codes, validation.

Every inbound message is checked against `schemas/messages.json`: the common envelope first, then
the schema of its type. jsonschema is imported on the first validation, not at start, so the host
can say hello before paying for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from dhims2 import __version__
from dhims2.browser.framing import MAX_OUTBOUND_BYTES

PROTOCOL_VERSION = 1
MAX_ID_LENGTH = 64
# Room left in a reply for everything beside a paged list (envelope, summary fields).
REPLY_RESERVE_BYTES = 32 * 1024
PAGE_BUDGET_BYTES = MAX_OUTBOUND_BYTES - REPLY_RESERVE_BYTES


@dataclass(frozen=True)
class ErrorInfo:
    meaning: str
    user_action: str


# The one list of error codes a reply can carry; docs/PROTOCOL.md shows the same table.
ERROR_CODES: dict[str, ErrorInfo] = {
    "BAD_FRAME": ErrorInfo(
        "A frame was not valid UTF-8 JSON holding an object, or the stream ended inside a frame.",
        "Update the extension and the host to matching versions; report it if it persists.",
    ),
    "MESSAGE_TOO_LARGE": ErrorInfo(
        "A message exceeded the size limit (64 MiB to the host, 1 MiB to the browser).",
        "Upload the sheet in smaller parts.",
    ),
    "INVALID_MESSAGE": ErrorInfo(
        "A request did not match its schema; `details.field` names the offending field.",
        "Fix the named field; if the extension sent it, update the extension.",
    ),
    "UNKNOWN_TYPE": ErrorInfo(
        "The host does not handle this message type (not in `hello.capabilities`).",
        "Update the host: re-run install.py from the current checkout.",
    ),
    "INTERNAL_ERROR": ErrorInfo(
        "The host failed unexpectedly; the details are in the host log, not in the reply.",
        "Retry; if it repeats, send the host log (it holds no patient values) to support.",
    ),
    "NOT_CONFIGURED": ErrorInfo(
        "The configuration is missing, unreadable or incomplete.",
        "Open the extension's options and save the server and authentication settings.",
    ),
    "AUTH_REQUIRED": ErrorInfo(
        "DHIMS2 refused the credentials, or there were none.",
        "Log in to DHIMS2 in this browser, or set a valid personal access token.",
    ),
    "SERVER_UNREACHABLE": ErrorInfo(
        "The DHIMS2 server could not be reached (network, DNS, time-out).",
        "Check the internet connection and the server address; records stay queued.",
    ),
    "SERVER_ERROR": ErrorInfo(
        "DHIMS2 answered with a server error (HTTP 5xx).",
        "Wait and retry; records stay queued.",
    ),
    "BAD_SERVER_RESPONSE": ErrorInfo(
        "DHIMS2 answered with something that is not the expected DHIS2 response.",
        "Check the server address points at DHIS2 (it must end with the context path, "
        "e.g. /events/).",
    ),
    "REQUEST_REJECTED": ErrorInfo(
        "DHIMS2 rejected the request as a whole (HTTP 4xx other than authentication).",
        "Read the message; check the program, stage and org unit settings.",
    ),
    "INSECURE_SERVER": ErrorInfo(
        "The server address uses plain http:// and insecure connections are not allowed.",
        "Use the https:// address, or allow insecure http only for a local test server.",
    ),
    "INVALID_RECORDS": ErrorInfo(
        "The records could not be read (a malformed file, unknown columns); the message names"
        " the file, line or column.",
        "Correct the file or its column names and upload again.",
    ),
    "INVALID_INPUT": ErrorInfo(
        "A setting the host would use to reach DHIS2 is unusable (for example the server address).",
        "Check the server address and the other settings in the extension's options.",
    ),
    "NOT_FOUND": ErrorInfo(
        "The batch or record named in the request does not exist (or was forgotten).",
        "Refresh the list of batches.",
    ),
    "BUSY": ErrorInfo(
        "The host is doing conflicting work (an upload of this batch is in progress).",
        "Wait for the running upload to finish, or cancel it.",
    ),
}


class ProtocolError(Exception):
    """An error a handler answers with: a code from ERROR_CODES, a message, optional details."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def hello(capabilities: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "hello",
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
        "capabilities": sorted(capabilities),
    }


def ok_reply(request_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "ok": True, **fields}


def error_reply(
    request_id: str | None, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An error reply; `request_id` is None when the request's id could not be read."""
    return {
        "id": request_id,
        "ok": False,
        "error": {"code": code, "message": message, "details": details or {}},
    }


def request_id_of(message: dict[str, Any]) -> str | None:
    """The id to echo: the request's own when it is a valid id, else None."""
    candidate = message.get("id")
    if isinstance(candidate, str) and 1 <= len(candidate) <= MAX_ID_LENGTH:
        return candidate
    return None


def error_from_exception(error: BaseException) -> ProtocolError | None:
    """The reply-worthy form of `error`, if it carries a known code (ours or the DHIS2 client's)."""
    if isinstance(error, ProtocolError):
        return error
    code = getattr(error, "code", None)
    if isinstance(code, str) and code in ERROR_CODES:
        details = getattr(error, "details", None)
        return ProtocolError(code, str(error), details if isinstance(details, dict) else None)
    return None


def validate_envelope(message: dict[str, Any]) -> None:
    """Raise INVALID_MESSAGE unless `message` has a usable `id` and `type`."""
    _raise_first_error(_validator("envelope"), message)


def validate_message(message: dict[str, Any], schema_name: str) -> None:
    """Raise INVALID_MESSAGE, naming the field, unless `message` matches schema `schema_name`."""
    _raise_first_error(_validator(schema_name), message)


def schema_names() -> list[str]:
    return sorted(_schema_document()["messages"])


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_page: int | None  # the `page` to ask for next; None when nothing is left


def paginate(
    items: Sequence[Any],
    *,
    page: int = 0,
    page_size: int,
    budget_bytes: int = PAGE_BUDGET_BYTES,
) -> Page:
    """Items from offset `page`: at most `page_size` of them and at most `budget_bytes` of JSON.

    The byte budget keeps a reply under the browser's 1 MiB frame limit however big the items are;
    a page may therefore hold fewer than `page_size` items, and `next_page` says where to go on.
    """
    if page < 0 or page_size < 1:
        raise ValueError("page must be >= 0 and page_size >= 1")
    taken: list[Any] = []
    used = 2  # the list's brackets
    end = min(len(items), page + page_size)
    for index in range(page, end):
        size = len(json.dumps(items[index], ensure_ascii=False, separators=(",", ":")).encode())
        size += 1 if taken else 0  # the comma before it
        if used + size > budget_bytes:
            if not taken:
                raise ProtocolError(
                    "MESSAGE_TOO_LARGE",
                    f"item {index} alone is larger than a reply can carry",
                    {"item": index, "bytes": size, "limit": budget_bytes},
                )
            break
        taken.append(items[index])
        used += size
    following = page + len(taken)
    return Page(items=taken, next_page=following if following < len(items) else None)


# Human wording per JSON Schema keyword; the value is the schema's, never the sender's data,
# so replies stay small and logs free of patient values.
_RULE_WORDING = {
    "type": "must be of type {}",
    "enum": "must be one of {}",
    "const": "must be {}",
    "pattern": "must match the pattern {}",
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} entries",
    "maxProperties": "must have at most {} entries",
}


def _raise_first_error(validator: Any, message: dict[str, Any]) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(message))
    if error is None:
        return
    field, reason = _describe(error)
    raise ProtocolError(
        "INVALID_MESSAGE",
        f"{field}: {reason}" if field else reason,
        {"field": field, "rule": error.validator},
    )


def _describe(error: Any) -> tuple[str, str]:
    """The dotted path of the offending field and why it was refused."""
    path = [str(part) for part in error.absolute_path]
    rule, rule_value, instance = error.validator, error.validator_value, error.instance
    if "propertyNames" in error.relative_schema_path:
        # The failing instance is the key itself, so it belongs in the field path.
        return ".".join([*path, str(instance)]), _wording(error.schema, rule, rule_value)
    if rule == "required":
        missing = next(name for name in rule_value if name not in instance)
        return ".".join([*path, missing]), "is required"
    if rule == "additionalProperties":
        allowed = error.schema.get("properties", {})
        unexpected = next(name for name in instance if name not in allowed)
        return ".".join([*path, unexpected]), "is not an allowed field here"
    if rule == "oneOf":
        choices = [" + ".join(option.get("required", [])) for option in rule_value]
        return ".".join(path), f"must contain exactly one of: {', '.join(choices)}"
    return ".".join(path), _wording(error.schema, rule, rule_value)


def _wording(schema: dict[str, Any], rule: str, rule_value: Any) -> str:
    if rule == "pattern" and "description" in schema:
        return f"must be {schema['description']}"
    if rule in _RULE_WORDING:
        shown = ", ".join(map(str, rule_value)) if isinstance(rule_value, list) else rule_value
        return _RULE_WORDING[rule].format(shown)
    return f"fails the rule {rule}"


@lru_cache(maxsize=1)
def _schema_document() -> dict[str, Any]:
    text = resources.files("dhims2.browser").joinpath("schemas/messages.json").read_text("utf-8")
    return json.loads(text)


@cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator

    document = _schema_document()
    if schema_name != "envelope" and schema_name not in document["messages"]:
        raise KeyError(f"no schema named {schema_name!r} in messages.json")
    pointer = "#/$defs/envelope" if schema_name == "envelope" else f"#/messages/{schema_name}"
    # The whole document rides along so "$ref"s into "$defs" resolve.
    return Draft202012Validator({**document, "$ref": pointer})
