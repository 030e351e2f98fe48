"""A file's records stored into an open batch by a thread of their own while the batch is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from dhims2.queue.store import NewRecord, Store

# About how many records go in each transaction after the first chunk (one job's worth): fewer
# commits waiting on the disk, and still little of a large file in memory at once.
STORE_CHUNK = 250
# Longest wait for a chunk while nothing is in flight; a stored chunk ends it at once.
FEED_WAIT = 1.0


class BatchFeed:
    """Stores chunks of records into an open batch and ends its reading, complete or not.

    `arrived` is set after each committed chunk and when reading ends; `failed` (and `error`)
    when reading or storing raised. `on_stored(batch_id)` hears each committed chunk.
    """

    def __init__(
        self,
        store: Store,
        batch_id: str,
        chunks: Iterator[list[NewRecord]],
        on_stored: Callable[[str], None],
    ) -> None:
        self.arrived = threading.Event()
        self.failed = threading.Event()
        self.error: Exception | None = None
        self._store = store
        self._batch_id = batch_id
        self._chunks = chunks
        self._on_stored = on_stored
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._store_all, name="batch-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def reading(self) -> bool:
        """True while chunks may still come; once False, every chunk is committed."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ends reading at the next chunk: what is stored stays, the rest is not read."""
        self._stopping.set()

    def join(self) -> None:
        self._thread.join()

    def _store_all(self) -> None:
        complete = False
        try:
            for chunk in self._chunks:
                if self._stopping.is_set():
                    return
                self._store.add_records(self._batch_id, chunk)
                self._on_stored(self._batch_id)
                self.arrived.set()
            complete = True
        except Exception as error:  # the file's own fault, or the store's; raised by the caller
            self.error = error
            self.failed.set()
        finally:
            try:
                self._store.end_reading(self._batch_id, complete=complete)
            finally:
                self.arrived.set()
