"""The sandbox's event table: in memory, thread-safe, soft deletes like DHIS2."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


class _ValueIndexedEvents(dict[str, Event]):
    """Events by UID that also know which events hold a data value, so a lookup by value (the
    uploader's pre-send lookup, once per job) does not read every event the sandbox holds."""

    def __init__(self) -> None:
        super().__init__()
        self.by_value: dict[tuple[str, str], set[str]] = {}
        self.position: dict[str, int] = {}  # the order events were first stored in

    def __setitem__(self, uid: str, event: Event) -> None:
        old = self.get(uid)
        for key in _value_keys(old) if old is not None else ():
            self.by_value[key].discard(uid)
        self.position.setdefault(uid, len(self.position))
        super().__setitem__(uid, event)
        for key in _value_keys(event):
            self.by_value.setdefault(key, set()).add(uid)


def _value_keys(event: Event) -> list[tuple[str, str]]:
    return [
        (item["dataElement"], item["value"])
        for item in event.get("dataValues", [])
        if isinstance(item.get("dataElement"), str) and isinstance(item.get("value"), str)
    ]


class EventStore:
    """Stored events are replaced, never mutated: a reader may keep one outside the lock."""

    def __init__(self) -> None:
        self._events = _ValueIndexedEvents()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Event]]:
        """Exclusive access for a validate-then-commit import: nothing changes in between."""
        with self._lock:
            yield self._events

    def live(self, predicate: Callable[[Event], bool] = lambda event: True) -> list[Event]:
        """Events not deleted that match, in the order they were first stored."""
        with self._lock:
            return [e for e in self._events.values() if not e["deleted"] and predicate(e)]

    def live_with_value(
        self, data_element: str, values: set[str], predicate: Callable[[Event], bool]
    ) -> list[Event]:
        """`live(predicate)` for a predicate that holds only for events with one of these values
        of this data element: found through the value index, in the same order."""
        with self._lock:
            index = self._events
            uids = set().union(*(index.by_value.get((data_element, v), ()) for v in values))
            found = (index[uid] for uid in sorted(uids, key=index.position.__getitem__))
            return [event for event in found if not event["deleted"] and predicate(event)]

    def live_copies(self) -> list[Event]:
        return [copy.deepcopy(event) for event in self.live()]

    def find_live(self, uid: str) -> Event | None:
        with self._lock:
            event = self._events.get(uid)
        return None if event is None or event["deleted"] else event
