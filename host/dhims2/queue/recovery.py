"""A damaged store is moved aside, what can still be read from it is kept, and work goes on.

Nothing is lost that DHIS2 already has: the records re-uploaded after a recovery are looked up
on the server before their first send (server_match.py), so they update, never duplicate.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from dhims2.queue.faults import StoreCorrupt
from dhims2.queue.store import Store, damage_marker

log = logging.getLogger(__name__)

# Parents before children, so a recovered record finds its batch.
TABLES = ("secrets", "cache", "batches", "jobs", "batch_jobs", "records")


def open_recovering(path: Path, notice: Callable[[str], None]) -> Store:
    """The store at `path`; a damaged one is first moved aside and recovered (`notice` says so)."""
    if not damage_marker(path).exists():
        try:
            return Store(path)
        except StoreCorrupt:
            pass
    aside, recovered = move_aside_and_recover(path)
    notice(
        f"the upload store was damaged: it was moved to {aside} and {recovered} records were"
        " recovered from it. Upload the files again if some are missing: records already in"
        " DHIS2 are found there and updated, not created twice"
    )
    return Store(path)


def move_aside_and_recover(path: Path) -> tuple[Path, int]:
    """Renames the damaged file (and its side files), starts a new store at `path` and copies
    into it every row that can still be read; returns the new name and the records kept."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    damage_marker(path).unlink(missing_ok=True)
    log.warning("moved a damaged upload store aside")
    with Store(path) as fresh:
        return aside, _copy_readable_rows(aside, fresh)


def _copy_readable_rows(damaged: Path, fresh: Store) -> int:
    try:
        source = sqlite3.connect(f"{damaged.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    source.row_factory = sqlite3.Row
    kept = 0
    try:
        for table in TABLES:
            try:
                rows = [dict(row) for row in source.execute(f"SELECT * FROM {table}")]
            except sqlite3.Error:
                continue  # this table's pages are unreadable: keep what the others hold
            copied = fresh.restore_rows(table, rows)
            if table == "records":
                kept = copied
    finally:
        source.close()
    return kept
