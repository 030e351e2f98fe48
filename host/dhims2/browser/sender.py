"""The native host's background sender: keeps sending and following while the browser is open.

Handlers only queue records and wake the sender; it runs the upload service on its own thread,
waits out offline spells with growing pauses, waits for a new sign-in when DHIS2 refuses the
session, and tells the extension each change of its state. At start and after every pass it
purges the local copies of records uploaded longer ago than the retention period. Stopping it at
any instant is safe: the store already holds every record's state.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.errors import Dhis2Error, NotSignedIn
from dhims2.queue.retention import check_retention_days, purge_expired
from dhims2.queue.runlock import LockHeld
from dhims2.queue.service import UploadService, UploadSettings
from dhims2.queue.store import Store
from dhims2.workspace.config import Config

log = logging.getLogger(__name__)

IDLE = "idle"
SENDING = "sending"
SIGN_IN_NEEDED = "sign_in_needed"
OFFLINE = "offline"
WAITING_FOR_OTHER_SENDER = "waiting_for_other_sender"

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0

ClientFactory = Callable[[], Dhis2Client]


class BackgroundSender:
    """One thread that sends whatever is pending whenever it is woken or its retry time comes."""

    def __init__(
        self,
        store: Store,
        client_factory: ClientFactory,
        push: Callable[[dict[str, Any]], None],
        *,
        settings: UploadSettings | None = None,
        retention_days: int = Config.retention_days,
        first_retry: float = FIRST_RETRY_SECONDS,
        max_retry: float = MAX_RETRY_SECONDS,
    ) -> None:
        check_retention_days(retention_days)
        self._store = store
        self._client_factory = client_factory
        self._push = push
        self._settings = settings
        self._retention_days = retention_days
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._state: dict[str, Any] = {"state": IDLE, "error": None}
        self._state_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="dhims2-sender", daemon=True)

    def start(self) -> BackgroundSender:
        self._thread.start()
        self._wake.set()
        return self

    def wake(self) -> None:
        """New records, a retry or new credentials: try sending now instead of at the next retry."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def state(self) -> dict[str, Any]:
        with self._state_lock:
            return dict(self._state)

    def _loop(self) -> None:
        retry_after = self._first_retry
        wait: float | None = None
        self._purge_expired()
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = None
            try:
                self._send_pending()
            except NotSignedIn as error:
                self._set_state(SIGN_IN_NEEDED, error)
            except LockHeld as error:
                self._set_state(WAITING_FOR_OTHER_SENDER, error)
                wait = self._first_retry
            except Dhis2Error as error:
                self._set_state(OFFLINE, error)
                wait, retry_after = retry_after, min(retry_after * 2, self._max_retry)
            except Exception as error:  # the thread must outlive any one failure
                log.exception("sending failed")
                self._set_state(OFFLINE, error)
                wait, retry_after = retry_after, min(retry_after * 2, self._max_retry)
            else:
                retry_after = self._first_retry
                self._set_state(IDLE, None)
            self._purge_expired()

    def _send_pending(self) -> None:
        if self._store.pending_count() == 0:
            return
        self._set_state(SENDING, None)
        with self._client_factory() as client:
            service = UploadService(
                self._store, client, settings=self._settings, listener=self._push
            )
            service.run(stop=self._stop)

    def _purge_expired(self) -> None:
        if self._stop.is_set():
            return  # the store may be closing
        try:
            purge_expired(self._store, self._retention_days)
        except sqlite3.Error as error:
            # Purging is retried after the next pass; sending must not stop over it.
            log.warning("purging expired local copies failed (%s)", type(error).__name__)

    def _set_state(self, state: str, error: BaseException | None) -> None:
        details = None
        if error is not None:
            details = {"code": getattr(error, "code", "INTERNAL_ERROR"), "message": str(error)}
        update = {"state": state, "error": details}
        with self._state_lock:
            if update == self._state:
                return
            self._state = update
        log.info("sender %s%s", state, f" ({details['code']})" if details else "")
        self._push({"type": "sender.state", **update, "pending": self._store.pending_count()})
