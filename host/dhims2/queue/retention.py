"""How long local copies of uploaded records are kept: `retention_days` after DHIS2 accepted them.

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


def purge_expired(store: Store, retention_days: int, *, now: float | None = None) -> int:
    """Drops the values of records DHIS2 accepted more than `retention_days` ago.

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


def check_retention_days(retention_days: object) -> None:
    """Raises ValueError unless `retention_days` is a whole number of days, at least 1."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int):
        raise ValueError(f"retention_days must be a whole number of days, not {retention_days!r}")
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, not {retention_days}")
