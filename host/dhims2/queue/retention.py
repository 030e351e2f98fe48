"""How long local copies of records are kept: `retention_days` after each one was finished.

Every finished record loses its values then: those DHIS2 accepted, and those it never got
(rejected, failed, cancelled). The clerk is warned `WARNING_DAYS` before the second kind go.

The background sender and the CLI both call `purge_expired`, so patient values leave this computer
on the same schedule whichever of them did the upload.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dhims2.queue.store import Store

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 24 * 60 * 60
WARNING_DAYS = 7


def purge_expired(store: Store, retention_days: int, *, now: float | None = None) -> int:
    """Drops the values of records finished more than `retention_days` ago.

    Returns how many records lost their values. Their state and event UID stay, so uploading the
    same record again still updates the event instead of creating a second one.
    """
    check_retention_days(retention_days)
    cutoff = (time.time() if now is None else now) - retention_days * SECONDS_PER_DAY
    purged = store.purge_payloads(finished_before=cutoff)
    if purged:
        log.info(
            "purged the values of %d records uploaded over %d days ago", purged, retention_days
        )
    return purged


def unsent_expiring(store: Store, retention_days: int, *, now: float | None = None) -> int:
    """How many records that never reached DHIS2 lose their values within WARNING_DAYS."""
    check_retention_days(retention_days)
    left = max(retention_days - WARNING_DAYS, 0)
    return store.unsent_count(
        finished_before=(time.time() if now is None else now) - left * SECONDS_PER_DAY
    )


def check_retention_days(retention_days: object) -> None:
    """Raises ValueError unless `retention_days` is a whole number of days, at least 1."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int):
        raise ValueError(f"retention_days must be a whole number of days, not {retention_days!r}")
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, not {retention_days}")
