"""A clinic's slow network link, imitated: bodies take their size over the bandwidth to pass."""

from __future__ import annotations

import threading
import time


class Link:
    """One direction of a link of limited bandwidth. Bodies crossing it at the same time share
    it: each waits for the ones before it, as packets queue on a real uplink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_at = 0.0

    def carry(self, size: int, bytes_per_second: float) -> None:
        """Blocks until a body of `size` bytes has crossed; no delay when the bandwidth is 0."""
        if bytes_per_second <= 0 or size <= 0:
            return
        with self._lock:
            starts_at = max(time.monotonic(), self._free_at)
            self._free_at = starts_at + size / bytes_per_second
            arrives_at = self._free_at
        time.sleep(max(0.0, arrives_at - time.monotonic()))
