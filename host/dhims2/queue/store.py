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
from dhims2.queue.faults import StoreCorrupt, storage_fault

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
FINISHED_STATES = (CREATED, UPDATED, REJECTED, FAILED, CANCELLED)
# Finished without reaching DHIS2: the clerk is warned before their values are purged.
UNSENT_STATES = (REJECTED, FAILED, CANCELLED)

JOB_PENDING = "pending"

# How far a batch's file has been read into the store (`batches.reading`).
READING = "reading"  # a process is still reading it: more records may come
READ = "read"  # every record of the file is stored
READING_STOPPED = "stopped"  # the reading process died or was stopped before the end of the file

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
    # Per-record and per-progress queries use an index or a counter, so a batch of 100,000
    # rows costs no more per record than one of 1,000. `batch_counts` is kept by triggers in
    # the same transaction as every record change, so it can never disagree with the records.
    f"""
    CREATE INDEX IF NOT EXISTS records_by_batch_state ON records(batch_id, state);
    CREATE INDEX IF NOT EXISTS batches_by_server ON batches(server, created_at);
    CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(server, state, submitted_at);
    CREATE TABLE IF NOT EXISTS batch_counts (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (batch_id, state)
    ) WITHOUT ROWID;
    INSERT OR REPLACE INTO batch_counts (batch_id, state, n)
        SELECT batch_id, state, COUNT(*) FROM records GROUP BY batch_id, state;
    CREATE TRIGGER IF NOT EXISTS records_counted_in AFTER INSERT ON records BEGIN
        INSERT INTO batch_counts (batch_id, state, n) VALUES (NEW.batch_id, NEW.state, 1)
            ON CONFLICT (batch_id, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS records_counted_out AFTER DELETE ON records BEGIN
        UPDATE batch_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;
    END;
    CREATE TRIGGER IF NOT EXISTS records_counted_moved AFTER UPDATE OF state ON records
    WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE batch_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;
        INSERT INTO batch_counts (batch_id, state, n) VALUES (NEW.batch_id, NEW.state, 1)
            ON CONFLICT (batch_id, state) DO UPDATE SET n = n + 1;
    END;
    ALTER TABLE batches ADD COLUMN reading TEXT NOT NULL DEFAULT '{READ}';
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
    reading: str = READ

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return sum(self.counts.get(state, 0) for state in PENDING_STATES)

    @property
    def finished(self) -> bool:
        """Nothing left to send or follow, and no more records to come from its file."""
        return not self.pending and self.reading != READING

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
            "reading": self.reading,
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

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """`read_only` opens the file as it is on disk without writing anything, not even
        SQLite's side files: for showing the store when the disk is full or read-only."""
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._connection = _connect_read_only(self.path) if read_only else _connect(self.path)
        if not read_only:
            with self._faults_named():
                self._migrate()

    @contextmanager
    def _faults_named(self) -> Iterator[None]:
        """A full disk, a read-only folder or a damaged file surface as their own errors."""
        try:
            yield
        except sqlite3.Error as error:
            fault = storage_fault(error, self.path)
            if fault is None:
                raise
            if isinstance(fault, StoreCorrupt):
                # The next run moves the file aside even if opening it still looks fine.
                damage_marker(self.path).touch()
            raise fault from error

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._faults_named():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._faults_named():
            return self._connection.execute(sql, tuple(params)).fetchall()

    def _migrate(self) -> None:
        # The version is read inside the write transaction: two processes opening a new store
        # at once would otherwise both see version 0 and both run the first migration.
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer dhims2-uploader (schema {version}); "
                    "upgrade this program to read it"
                )
            for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

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
        with self._transaction() as db:
            _insert_batch(db, batch_id, server, program, stage, source, READ)
            _insert_records(db, batch_id, records)
        return batch_id

    def open_batch(self, *, server: str, program: str, stage: str, source: str) -> str:
        """A batch whose records are stored chunk by chunk (`add_records`) while its file is
        read; it reads as unfinished until `end_reading`, or a crash is noticed by the next run
        (`stop_abandoned_reading`)."""
        batch_id = new_uid()
        with self._transaction() as db:
            _insert_batch(db, batch_id, server, program, stage, source, READING)
        return batch_id

    def add_records(self, batch_id: str, records: Iterable[NewRecord]) -> None:
        """One chunk of an open batch, committed as a whole before any of it can be sent."""
        with self._transaction() as db:
            _insert_records(db, batch_id, records)

    def end_reading(self, batch_id: str, *, complete: bool) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET reading = ? WHERE id = ?",
                (READ if complete else READING_STOPPED, batch_id),
            )

    def stop_abandoned_reading(self) -> int:
        """Batches left 'reading' by a process that died. Only called under the run lock, which
        every reading process holds until it ends its reading, so none of them is alive."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE batches SET reading = ? WHERE reading = ?", (READING_STOPPED, READING)
            )
            return cursor.rowcount

    def first_row_with_identity(self, batch_id: str, identity: str) -> int | None:
        """The row of the batch's stored record with this identity: a later one doubles it."""
        rows = self._query(
            "SELECT row FROM records WHERE identity = ? AND batch_id = ? ORDER BY id LIMIT 1",
            (identity, batch_id),
        )
        return rows[0]["row"] if rows else None

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
                # Named: the planner would otherwise walk every created record's state entry.
                f"SELECT DISTINCT r.event_uid FROM records r INDEXED BY records_by_event"
                f" JOIN batches b ON b.id = r.batch_id"
                f" WHERE b.server = ? AND r.state IN (?, ?) AND r.event_uid IN ({marks})",
                (server, CREATED, UPDATED, *chunk),
            )
            found.update(row["event_uid"] for row in rows)
        return found

    def adopt_event_uids(self, event_uids: dict[int, str]) -> None:
        """These records are events DHIS2 already holds under another UID: send them as those."""
        with self._transaction() as db:
            for record_id, event_uid in event_uids.items():
                row = db.execute(
                    "SELECT payload FROM records WHERE id = ?", (record_id,)
                ).fetchone()
                payload = json.loads(row["payload"]) if row and row["payload"] else None
                if payload is None:
                    continue
                payload["event"] = event_uid
                db.execute(
                    "UPDATE records SET event_uid = ?, payload = ? WHERE id = ?",
                    (event_uid, json.dumps(payload), record_id),
                )

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
            oldest = db.execute(
                "SELECT b.id FROM batches b WHERE b.server = ? AND EXISTS ("
                "   SELECT 1 FROM batch_counts c WHERE c.batch_id = b.id AND c.state = ?"
                "   AND c.n > 0)"
                " ORDER BY b.created_at, b.rowid LIMIT 1",
                (server, QUEUED),
            ).fetchone()
            if oldest is None:
                return []
            rows = db.execute(
                "SELECT * FROM records WHERE batch_id = ? AND state = ? ORDER BY id LIMIT ?",
                (oldest["id"], QUEUED, limit),
            ).fetchall()
            now = time.time()
            db.executemany(
                "UPDATE records SET state = ?, sends = sends + 1, updated_at = ? WHERE id = ?",
                ((SENDING, now, row["id"]) for row in rows),
            )
        return [_record(row, state=SENDING, sends=row["sends"] + 1) for row in rows]

    def requeue(self, record_ids: Iterable[int]) -> None:
        self._set_state(record_ids, QUEUED)

    def unclaim(self, record_ids: Iterable[int]) -> None:
        """Back to the queue after a refusal that made no job: that send does not count."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE records SET state = ?, sends = MAX(sends - 1, 0), updated_at = ?"
                " WHERE id = ? AND state = ?",
                ((QUEUED, now, record_id, SENDING) for record_id in record_ids),
            )

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
                f"SELECT COALESCE(SUM(n), 0) AS n FROM batch_counts WHERE state IN ({marks})",
                PENDING_STATES,
            )
        else:
            rows = self._query(
                f"SELECT COALESCE(SUM(c.n), 0) AS n FROM batch_counts c"
                f" JOIN batches b ON b.id = c.batch_id WHERE b.server = ? AND c.state IN ({marks})",
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
        """Every record of a batch in row order, read a page at a time to bound memory.

        Each page starts after the last one's (row, id), found in the index: an OFFSET would
        walk every row before it, each page slower than the last."""
        after = (-1, -1)
        while rows := self._query(
            "SELECT * FROM records WHERE batch_id = ? AND (row, id) > (?, ?)"
            " ORDER BY row, id LIMIT ?",
            (batch_id, *after, page),
        ):
            yield from (_record(row) for row in rows)
            after = (rows[-1]["row"], rows[-1]["id"])

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
                "SELECT state, n FROM batch_counts WHERE batch_id = ? AND n > 0", (row["id"],)
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
            reading=row["reading"],
        )

    # -- user actions ------------------------------------------------------------------------

    def retry_failed(self, batch_id: str) -> int:
        """Failed records go back to the queue; rejected ones need a corrected record instead."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET state = ?, errors = '[]', updated_at = ?"
                " WHERE batch_id = ? AND state = ? AND payload IS NOT NULL",
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
                f"SELECT COALESCE(SUM(n), 0) FROM batch_counts WHERE batch_id = ?"
                f" AND state IN ({marks})",
                (batch_id, *PENDING_STATES),
            ).fetchone()[0]
            reading = db.execute("SELECT reading FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if pending or (reading and reading["reading"] == READING):
                return 0
            cursor = db.execute("DELETE FROM records WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batch_jobs WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._checkpoint()
        return cursor.rowcount

    def purge_payloads(self, finished_before: float) -> int:
        """Drops patient values of records finished (in DHIS2 or not) before the given time:
        the event and the values their errors quote.

        The row stays (state, event UID, identity hash) so re-uploads still update, not duplicate.
        """
        marks = ",".join("?" * len(FINISHED_STATES))
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id, errors FROM records WHERE payload IS NOT NULL"
                f" AND state IN ({marks}) AND updated_at < ?",
                (*FINISHED_STATES, finished_before),
            ).fetchall()
            db.executemany(
                "UPDATE records SET payload = NULL, errors = ? WHERE id = ?",
                ((json.dumps(_without_values(json.loads(r["errors"]))), r["id"]) for r in rows),
            )
        self._checkpoint()
        return len(rows)

    def unsent_count(self, finished_before: float) -> int:
        """Records that never reached DHIS2, finished before the given time, values still kept."""
        marks = ",".join("?" * len(UNSENT_STATES))
        rows = self._query(
            f"SELECT COUNT(*) AS n FROM records WHERE payload IS NOT NULL"
            f" AND state IN ({marks}) AND updated_at < ?",
            (*UNSENT_STATES, finished_before),
        )
        return rows[0]["n"]

    def durability(self) -> dict[str, str]:
        """The journal mode and sync level this connection commits with."""
        with self._lock:
            journal = self._connection.execute("PRAGMA journal_mode").fetchone()[0]
            level = self._connection.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": journal, "synchronous": _SYNC_LEVELS.get(level, str(level))}

    def restore_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Copies rows read from a damaged store into this one; returns how many fitted."""
        copied = 0
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" * len(row))
            try:
                with self._transaction() as db:
                    db.execute(
                        f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",
                        tuple(row.values()),
                    )
            except sqlite3.Error:
                continue  # a row that does not fit (its batch was lost) is left behind
            copied += 1
        return copied

    def _checkpoint(self) -> None:
        """Moves the write-ahead log into the database and empties it, so old values left in
        the log do not outlive their deletion."""
        with self._lock, self._faults_named():
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


_SYNC_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def damage_marker(path: Path) -> Path:
    """Left next to a store found damaged while in use, for the next run to act on."""
    return path.with_name(path.name + ".damaged")


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script one by one (executescript would commit the open
    transaction first); a trigger's body ends with its END, as sqlite3.complete_statement knows."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file owner-only before SQLite opens it; SQLite gives its -wal and -shm
        # files the same permissions as the database file.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    except OSError as error:
        raise storage_fault(error, path) or StoreError(
            f"cannot open the upload store {path} ({error.strerror})"
        ) from error
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
        raise storage_fault(error, path) or StoreError(
            f"cannot open the upload store {path}: {error}"
        ) from error
    return connection


def _connect_read_only(path: Path) -> sqlite3.Connection:
    # immutable=1: no locks and no -wal or -shm files, so nothing is written anywhere.
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("SELECT COUNT(*) FROM batches").fetchone()
    except sqlite3.Error as error:
        raise storage_fault(error, path) or StoreError(
            f"cannot read the upload store {path}: {error}"
        ) from error
    return connection


def _insert_batch(
    db: sqlite3.Connection,
    batch_id: str,
    server: str,
    program: str,
    stage: str,
    source: str,
    reading: str,
) -> None:
    db.execute(
        "INSERT INTO batches (id, server, program, stage, source, created_at, reading)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (batch_id, server, program, stage, source, time.time(), reading),
    )


def _insert_records(db: sqlite3.Connection, batch_id: str, records: Iterable[NewRecord]) -> None:
    now = time.time()
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


def _without_values(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**error, "value": None} if error.get("value") is not None else error for error in errors
    ]


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
