"""The sandbox's event table: in memory, thread-safe, soft deletes like DHIS2."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


class EventStore:
    """Stored events are replaced, never mutated: a reader may keep one outside the lock."""

    def __init__(self) -> None:
        self._events: dict[str, Event] = {}
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

    def live_copies(self) -> list[Event]:
        return [copy.deepcopy(event) for event in self.live()]

    def find_live(self, uid: str) -> Event | None:
        with self._lock:
            event = self._events.get(uid)
        return None if event is None or event["deleted"] else event
