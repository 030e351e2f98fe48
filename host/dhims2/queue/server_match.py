"""DHIS2 decides what is a duplicate: before a record's first send, find its event on the server.

The local store remembers which event UID each admission was given, but only on this computer
and under one spelling of the server's address. A new data folder, another PC or a store moved
aside would mint a new UID and create the admission a second time. So before a record is first
sent, its patient number and admission date are looked up on the server (GET
/api/tracker/events filtered by data element, docs/RELIABILITY.md "Finding events by
value"), and an event found there is updated instead of a new one created.

Batched: one request per org unit and per `LOOKUP_CHUNK` patient numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from dhims2.dhis2.client import Dhis2Client, data_value_filter
from dhims2.forms.metadata import IDENTITY_DATA_ELEMENTS
from dhims2.queue.store import StoredRecord

# Patient numbers per request: about 1.5 KB of URL at 100, well under the 8 KB of request line
# and headers Tomcat accepts by default.
LOOKUP_CHUNK = 100
LOOKUP_FIELDS = "event,orgUnit,dataValues[dataElement,value]"


def events_on_server(
    client: Dhis2Client, program: str, records: Iterable[StoredRecord]
) -> dict[int, str]:
    """Record id -> the UID of the server's event for the same admission (program, org unit,
    patient number and admission date), for the records DHIS2 already holds."""
    elements = IDENTITY_DATA_ELEMENTS.get(program)
    if not elements:
        return {}
    wanted: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
    for record in records:
        key = _admission(record.event or {}, elements)
        if key is not None:
            wanted[key].append(record.id)
    if not wanted:
        return {}
    by_org_unit: dict[str, set[str]] = defaultdict(set)
    for org_unit, values in wanted:
        by_org_unit[org_unit].add(values[0])
    found: dict[int, str] = {}
    for org_unit, numbers in by_org_unit.items():
        for value_filter in _filters(elements[0], sorted(numbers)):
            for event in client.list_events(
                program, org_unit, value_filter=value_filter, fields=LOOKUP_FIELDS
            ):
                key = _admission(event, elements)
                for record_id in wanted.get(key, []) if key is not None else []:
                    found.setdefault(record_id, event["event"])
    return found


def _admission(
    event: dict[str, Any], elements: tuple[str, ...]
) -> tuple[str, tuple[str, ...]] | None:
    values = {item.get("dataElement"): item.get("value") for item in event.get("dataValues", [])}
    key = tuple(value for uid in elements if isinstance(value := values.get(uid), str) and value)
    org_unit = event.get("orgUnit")
    if not isinstance(org_unit, str) or len(key) != len(elements):
        return None
    return (org_unit, key)


def _filters(data_element: str, numbers: list[str]) -> Iterable[str]:
    """`in` filters of up to LOOKUP_CHUNK numbers; a number with `;` goes alone with `eq`."""
    plain = [number for number in numbers if ";" not in number]
    for start in range(0, len(plain), LOOKUP_CHUNK):
        yield data_value_filter(data_element, plain[start : start + LOOKUP_CHUNK])
    for number in numbers:
        if ";" in number:
            yield data_value_filter(data_element, [number])
