"""The durable queue: batches, records, jobs and their outcomes in one SQLite file.

Every state change is committed before the network call that depends on it, so a crash at any
instant leaves a state from which `UploadService` can resume without losing or doubling a record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhims2.dhis2.uids import new_uid
from dhims2.errors import Dhims2Error

STORE_FILE_NAME = "uploads.sqlite3"

QUEUED = "queued"
SENDING = "sending"
IMPORTING = "importing"
CREATED = "created"
UPDATED = "updated"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"

PENDING_STATES = (QUEUED, SENDING, IMPORTING)

JOB_PENDING = "pending"

# Each entry moves the schema from version N to N+1; existing entries never change.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        server TEXT NOT NULL,
        program TEXT NOT NULL,
        stage TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        row INTEGER NOT NULL,
        event_uid TEXT NOT NULL,
        identity TEXT,
        payload TEXT,
        fields TEXT NOT NULL,
        state TEXT NOT NULL,
        job_id TEXT,
        errors TEXT NOT NULL DEFAULT '[]',
        sends INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX records_by_batch ON records(batch_id, row);
    CREATE INDEX records_by_state ON records(state);
    CREATE INDEX records_by_job ON records(job_id);
    CREATE INDEX records_by_identity ON records(identity);
    CREATE INDEX records_by_event ON records(event_uid);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        server TEXT NOT NULL,
        submitted_at REAL NOT NULL,
        state TEXT NOT NULL,
        messages TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        finished_at REAL
    );
    CREATE TABLE batch_jobs (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        job_id TEXT NOT NULL,
        PRIMARY KEY (batch_id, job_id)
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        stored_at REAL NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class NewRecord:
    """A record about to be queued: `event` is the full DHIS2 payload including its event UID."""

    row: int
    event: dict[str, Any]
    fields: dict[str, str]
    identity: str | None = None
    state: str = QUEUED
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StoredRecord:
    id: int
    batch_id: str
    row: int
    event_uid: str
    state: str
    job_id: str | None
    errors: list[dict[str, Any]]
    sends: int
    fields: dict[str, str]
    event: dict[str, Any] | None
    updated_at: float

    @property
    def payload(self) -> dict[str, Any]:
        """The event to send. Only a finished record has its values purged, and finished
        records are never sent."""
        assert self.event is not None, f"record {self.id} has no values left to send"
        return self.event

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "event": self.event_uid,
            "state": self.state,
            "job": self.job_id,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class StoredJob:
    id: str
    server: str
    submitted_at: float
    state: str
    messages: list[str]
    error: str | None


@dataclass(frozen=True)
class BatchSummary:
    id: str
    server: str
    program: str
    stage: str
    source: str
    created_at: float
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return sum(self.counts.get(state, 0) for state in PENDING_STATES)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.id,
            "server": self.server,
            "program": self.program,
            "stage": self.stage,
            "source": self.source,
            "created_at": self.created_at,
            "total": self.total,
            "created": self.counts.get(CREATED, 0),
            "updated": self.counts.get(UPDATED, 0),
            "rejected": self.counts.get(REJECTED, 0),
            "failed": self.counts.get(FAILED, 0),
            "cancelled": self.counts.get(CANCELLED, 0),
            "pending": self.pending,
        }


class StoreError(Dhims2Error):
    """The local store cannot be opened or is from a newer version of the program."""

    code = "STORE_UNUSABLE"


class UnknownBatch(Dhims2Error):
    """A batch id that is not (or no longer) in the store."""

    code = "NOT_FOUND"

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"no batch {batch_id} on this computer (`dhims2 status` lists them)")
        self.details = {"batch": batch_id}


class Store:
    """Thread-safe access to the upload store; one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._connection = _connect(self.path)
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection.execute(sql, tuple(params)).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            version = self._connection.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer dhims2-uploader (schema {version}); "
                    "upgrade this program to read it"
                )
            for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._connection.executescript(
                    f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {target}; COMMIT;"
                )

    # -- secrets and cache -------------------------------------------------------------------

    def install_secret(self, name: str) -> bytes:
        """A random per-installation key, created on first use (keys the identity hashes)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is None:
                value = os.urandom(32).hex()
                db.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
                return bytes.fromhex(value)
            return bytes.fromhex(row["value"])

    def cache_get(self, key: str) -> Any | None:
        rows = self._query("SELECT value FROM cache WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def cache_put(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, stored_at) VALUES (?, ?, ?)",
                (key, json.dumps(value), time.time()),
            )

    # -- queueing ----------------------------------------------------------------------------

    def create_batch(
        self, *, server: str, program: str, stage: str, source: str, records: Iterable[NewRecord]
    ) -> str:
        """Stores a batch and all its records in one transaction: all of it is queued or none."""
        batch_id = new_uid()
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (id, server, program, stage, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, server, program, stage, source, now),
            )
            db.executemany(
                "INSERT INTO records (batch_id, row, event_uid, identity, payload, fields, state,"
                " errors, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        batch_id,
                        record.row,
                        record.event["event"],
                        record.identity,
                        json.dumps(record.event),
                        json.dumps(record.fields),
                        record.state,
                        json.dumps(record.errors),
                        now,
                    )
                    for record in records
                ),
            )
        return batch_id

    def event_uid_for_identity(self, server: str, identity: str) -> str | None:
        """The event UID an earlier record with the same identity was given on this server."""
        rows = self._query(
            "SELECT r.event_uid FROM records r JOIN batches b ON b.id = r.batch_id"
            " WHERE r.identity = ? AND b.server = ? AND r.state != ?"
            " ORDER BY r.id DESC LIMIT 1",
            (identity, server, REJECTED),
        )
        return rows[0]["event_uid"] if rows else None

    def imported_event_uids(self, server: str, event_uids: Iterable[str]) -> set[str]:
        """Which of these events an earlier record already got into DHIS2 (created or updated)."""
        wanted = list(event_uids)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT DISTINCT r.event_uid FROM records r JOIN batches b ON b.id = r.batch_id"
                f" WHERE b.server = ? AND r.state IN (?, ?) AND r.event_uid IN ({marks})",
                (server, CREATED, UPDATED, *chunk),
            )
            found.update(row["event_uid"] for row in rows)
        return found

    # -- sending -----------------------------------------------------------------------------

    def recover_interrupted_sends(self, server: str) -> int:
        """Records caught between 'sending' and a known job go back to the queue.

        Re-sending them is safe: their event UIDs were fixed when they were queued, so DHIS2
        updates what an interrupted send may already have created.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET state = ?, updated_at = ? WHERE state = ? AND batch_id IN"
                " (SELECT id FROM batches WHERE server = ?)",
                (QUEUED, time.time(), SENDING, server),
            )
            return cursor.rowcount

    def claim_for_sending(self, server: str, limit: int) -> list[StoredRecord]:
        """Marks up to `limit` queued records of the oldest batch as being sent."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT r.* FROM records r JOIN batches b ON b.id = r.batch_id"
                " WHERE b.server = ? AND r.state = ? AND r.batch_id = ("
                "   SELECT r2.batch_id FROM records r2 JOIN batches b2 ON b2.id = r2.batch_id"
                "   WHERE b2.server = ? AND r2.state = ? ORDER BY b2.created_at, r2.id LIMIT 1)"
                " ORDER BY r.id LIMIT ?",
                (server, QUEUED, server, QUEUED, limit),
            ).fetchall()
            now = time.time()
            db.executemany(
                "UPDATE records SET state = ?, sends = sends + 1, updated_at = ? WHERE id = ?",
                ((SENDING, now, row["id"]) for row in rows),
            )
        return [_record(row, state=SENDING, sends=row["sends"] + 1) for row in rows]

    def requeue(self, record_ids: Iterable[int]) -> None:
        self._set_state(record_ids, QUEUED)

    def record_job(
        self, *, job_id: str, server: str, record_ids: list[int], submitted_at: float
    ) -> None:
        """The server accepted a job for these records: they are now importing under it."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs (id, server, submitted_at, state) VALUES (?, ?, ?, ?)",
                (job_id, server, submitted_at, JOB_PENDING),
            )
            db.executemany(
                "UPDATE records SET state = ?, job_id = ?, updated_at = ? WHERE id = ?",
                ((IMPORTING, job_id, submitted_at, record_id) for record_id in record_ids),
            )
            db.execute(
                "INSERT OR IGNORE INTO batch_jobs (batch_id, job_id)"
                " SELECT DISTINCT batch_id, ? FROM records WHERE job_id = ?",
                (job_id, job_id),
            )

    def pending_jobs(self, server: str) -> list[StoredJob]:
        rows = self._query(
            "SELECT * FROM jobs WHERE server = ? AND state = ? ORDER BY submitted_at",
            (server, JOB_PENDING),
        )
        return [_job(row) for row in rows]

    def job_records(self, job_id: str) -> list[StoredRecord]:
        rows = self._query(
            "SELECT * FROM records WHERE job_id = ? AND state = ? ORDER BY id",
            (job_id, IMPORTING),
        )
        return [_record(row) for row in rows]

    def set_job_messages(self, job_id: str, messages: list[str]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET messages = ? WHERE id = ?", (json.dumps(messages), job_id))

    def finish_job(
        self,
        job_id: str,
        *,
        state: str,
        messages: list[str],
        error: str | None,
        outcomes: dict[int, tuple[str, list[dict[str, Any]]]],
    ) -> None:
        """Closes a job and writes each of its records' outcome in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, messages = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, json.dumps(messages), error, now, job_id),
            )
            _write_outcomes(db, outcomes, now)

    def finish_records(self, outcomes: dict[int, tuple[str, list[dict[str, Any]]]]) -> None:
        """Writes outcomes known without a job (synchronous imports, refused payloads)."""
        with self._transaction() as db:
            _write_outcomes(db, outcomes, time.time())

    def _set_state(self, record_ids: Iterable[int], state: str) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE records SET state = ?, updated_at = ? WHERE id = ?",
                ((state, now, record_id) for record_id in record_ids),
            )

    # -- reading -----------------------------------------------------------------------------

    def pending_count(self, server: str | None = None) -> int:
        marks = ",".join("?" * len(PENDING_STATES))
        if server is None:
            rows = self._query(
                f"SELECT COUNT(*) AS n FROM records WHERE state IN ({marks})", PENDING_STATES
            )
        else:
            rows = self._query(
                f"SELECT COUNT(*) AS n FROM records r JOIN batches b ON b.id = r.batch_id"
                f" WHERE b.server = ? AND r.state IN ({marks})",
                (server, *PENDING_STATES),
            )
        return rows[0]["n"]

    def batch(self, batch_id: str) -> BatchSummary:
        """The batch's summary; raises UnknownBatch for an id the store does not hold."""
        rows = self._query("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            raise UnknownBatch(batch_id)
        return self._summary(rows[0])

    def list_batches(self, *, offset: int = 0, limit: int = 50) -> list[BatchSummary]:
        rows = self._query(
            "SELECT * FROM batches ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (limit, offset)
        )
        return [self._summary(row) for row in rows]

    def batch_count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM batches")[0]["n"]

    def batch_records(
        self, batch_id: str, *, offset: int = 0, limit: int | None = None
    ) -> list[StoredRecord]:
        rows = self._query(
            "SELECT * FROM records WHERE batch_id = ? ORDER BY row, id LIMIT ? OFFSET ?",
            (batch_id, -1 if limit is None else limit, offset),
        )
        return [_record(row) for row in rows]

    def iter_batch_records(self, batch_id: str, *, page: int = 200) -> Iterator[StoredRecord]:
        """Every record of a batch in row order, read a page at a time to bound memory."""
        offset = 0
        while records := self.batch_records(batch_id, offset=offset, limit=page):
            yield from records
            offset += len(records)

    def batch_jobs(self, batch_id: str) -> list[StoredJob]:
        rows = self._query(
            "SELECT j.* FROM jobs j JOIN batch_jobs bj ON bj.job_id = j.id"
            " WHERE bj.batch_id = ? ORDER BY j.submitted_at",
            (batch_id,),
        )
        return [_job(row) for row in rows]

    def _summary(self, row: sqlite3.Row) -> BatchSummary:
        counts = {
            count_row["state"]: count_row["n"]
            for count_row in self._query(
                "SELECT state, COUNT(*) AS n FROM records WHERE batch_id = ? GROUP BY state",
                (row["id"],),
            )
        }
        return BatchSummary(
            id=row["id"],
            server=row["server"],
            program=row["program"],
            stage=row["stage"],
            source=row["source"],
            created_at=row["created_at"],
            counts=counts,
        )

    # -- user actions ------------------------------------------------------------------------

    def retry_failed(self, batch_id: str) -> int:
        """Failed records go back to the queue; rejected ones need a corrected record instead."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET state = ?, errors = '[]', updated_at = ?"
                " WHERE batch_id = ? AND state = ?",
                (QUEUED, time.time(), batch_id, FAILED),
            )
            return cursor.rowcount

    def cancel_queued(self, batch_id: str) -> int:
        """Records not yet handed to DHIS2 are withdrawn; those already importing cannot be."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ?",
                (CANCELLED, time.time(), batch_id, QUEUED),
            )
            return cursor.rowcount

    def forget_batch(self, batch_id: str) -> int:
        """Deletes a finished batch's local copies; a batch with pending records is kept."""
        with self._transaction() as db:
            marks = ",".join("?" * len(PENDING_STATES))
            pending = db.execute(
                f"SELECT COUNT(*) FROM records WHERE batch_id = ? AND state IN ({marks})",
                (batch_id, *PENDING_STATES),
            ).fetchone()[0]
            if pending:
                return 0
            cursor = db.execute("DELETE FROM records WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batch_jobs WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._checkpoint()
        return cursor.rowcount

    def purge_payloads(self, finished_before: float) -> int:
        """Drops patient values of records that reached DHIS2 before the given time.

        The row stays (state, event UID, identity hash) so re-uploads still update, not duplicate.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET payload = NULL WHERE payload IS NOT NULL"
                " AND state IN (?, ?) AND updated_at < ?",
                (CREATED, UPDATED, finished_before),
            )
        self._checkpoint()
        return cursor.rowcount

    def _checkpoint(self) -> None:
        """Moves the write-ahead log into the database and empties it, so old values left in
        the log do not outlive their deletion."""
        with self._lock:
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create the file owner-only before SQLite opens it; SQLite gives its -wal and -shm files
    # the same permissions as the database file.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    try:
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        # Deleted patient values are overwritten, not just unlinked from the file's pages.
        connection.execute("PRAGMA secure_delete = ON")
    except sqlite3.DatabaseError as error:
        raise StoreError(f"cannot open the upload store {path}: {error}") from error
    return connection


def _write_outcomes(
    db: sqlite3.Connection, outcomes: dict[int, tuple[str, list[dict[str, Any]]]], now: float
) -> None:
    db.executemany(
        "UPDATE records SET state = ?, errors = ?, updated_at = ? WHERE id = ?",
        (
            (record_state, json.dumps(errors), now, record_id)
            for record_id, (record_state, errors) in outcomes.items()
        ),
    )


def _record(row: sqlite3.Row, **overrides: Any) -> StoredRecord:
    values = {
        "id": row["id"],
        "batch_id": row["batch_id"],
        "row": row["row"],
        "event_uid": row["event_uid"],
        "state": row["state"],
        "job_id": row["job_id"],
        "errors": json.loads(row["errors"]),
        "sends": row["sends"],
        "fields": json.loads(row["fields"]),
        "event": json.loads(row["payload"]) if row["payload"] is not None else None,
        "updated_at": row["updated_at"],
    }
    values.update(overrides)
    return StoredRecord(**values)


def _job(row: sqlite3.Row) -> StoredJob:
    return StoredJob(
        id=row["id"],
        server=row["server"],
        submitted_at=row["submitted_at"],
        state=row["state"],
        messages=json.loads(row["messages"]),
        error=row["error"],
    )
