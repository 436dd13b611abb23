"""Persistence: task definitions, counters and execution history in SQLite (WAL).

One connection, one writer: every call runs in a worker thread under a
``CapacityLimiter(1)``, so the event loop never blocks on disk and statements never
interleave. Committed data survives a ``kill -9`` of the daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from ..exceptions import StartupError
from ..models import (
    ExecutionRecord,
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    TaskCounters,
    TaskSpec,
    Trigger,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    priority INTEGER NOT NULL,
    code TEXT,
    repeat_hours INTEGER,
    timeout_seconds REAL,
    max_memory_mb INTEGER,
    max_cpu_seconds INTEGER,
    on_busy TEXT NOT NULL DEFAULT 'freeze',
    overlap TEXT NOT NULL DEFAULT 'skip',
    on_missed TEXT NOT NULL DEFAULT 'once',
    max_retries INTEGER NOT NULL DEFAULT 0,
    max_delay_hours REAL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_due REAL,
    execution_count INTEGER NOT NULL DEFAULT 0,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    last_execution REAL,
    retry_at REAL,
    retry_attempt INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    result TEXT,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    scheduled_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    cpu_seconds REAL,
    max_rss_mb REAL,
    attempt INTEGER NOT NULL DEFAULT 0,
    pauses TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS executions_by_task ON executions (task_id, scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_outcome ON executions (outcome);
"""

# Columns added after the first schema: (table, column, declaration) for older databases.
MIGRATIONS = [
    ("tasks", "on_busy", "TEXT NOT NULL DEFAULT 'freeze'"),
    ("tasks", "overlap", "TEXT NOT NULL DEFAULT 'skip'"),
    ("tasks", "on_missed", "TEXT NOT NULL DEFAULT 'once'"),
    ("tasks", "max_retries", "INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "max_delay_hours", "REAL"),
    ("tasks", "retry_at", "REAL"),
    ("tasks", "retry_attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("executions", "attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("executions", "pauses", "TEXT NOT NULL DEFAULT '[]'"),
]

RETENTION_CHUNK = 500
"""Rows deleted per transaction by the history retention (SQLite allows 999 parameters)."""

INTERRUPTED_REASON = "the daemon ended unexpectedly while this execution ran"


@dataclass
class StoredTask:
    spec: TaskSpec
    counters: TaskCounters
    seq: int
    paused: bool
    created_at: float
    next_due: float | None
    retry_at: float | None = None
    retry_attempt: int = 0


class Store:
    """The SQLite store. Open it with :func:`open_store`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._limiter = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        def run() -> T:
            with self._db:
                return fn(self._db)

        return run

    # -- tasks ---------------------------------------------------------------

    async def load_tasks(self) -> list[StoredTask]:
        """Every stored task, in insertion order."""

        def load(db: sqlite3.Connection) -> list[StoredTask]:
            # Plain tuples in a known column order: at 100k tasks, start-up time is
            # mostly this loop (Row lookups by name and Enum() calls were most of it).
            cursor = db.cursor()
            cursor.row_factory = None
            rows = cursor.execute(
                f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks ORDER BY seq"
            ).fetchall()
            return [_task_from_tuple(row) for row in rows]

        return await self._run(self._tx(load))

    async def insert_task(self, task: StoredTask) -> None:
        spec, counters = task.spec, task.counters

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(TASK_COLUMNS))})",
                (
                    spec.task_id,
                    *_spec_values(spec),
                    task.seq,
                    int(task.paused),
                    task.created_at,
                    task.next_due,
                    counters.execution_count,
                    counters.success_count,
                    counters.failure_count,
                    counters.last_execution,
                    task.retry_at,
                    task.retry_attempt,
                ),
            )

        await self._run(self._tx(insert))

    async def update_task(self, spec: TaskSpec, *, next_due: float | None) -> None:
        """Store a task's new definition (its counters are left alone)."""

        def update(db: sqlite3.Connection) -> None:
            assignments = ", ".join(f"{column} = ?" for column in SPEC_COLUMNS)
            db.execute(
                f"UPDATE tasks SET {assignments}, next_due = ? WHERE task_id = ?",
                (*_spec_values(spec), next_due, spec.task_id),
            )

        await self._run(self._tx(update))

    async def delete_task(self, task_id: str) -> None:
        await self._run(
            self._tx(lambda db: db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,)))
        )

    async def probe_write(self) -> None:
        """A write that changes nothing: rewrites one task row in place. Fails as any
        write would while the database refuses writes (disk full, read-only, I/O error)."""
        await self._run(
            self._tx(
                lambda db: db.execute(
                    "UPDATE tasks SET seq = seq WHERE rowid = (SELECT min(rowid) FROM tasks)"
                )
            )
        )

    async def set_schedule(
        self,
        task_id: str,
        *,
        next_due: float | None,
        paused: bool,
        retry_at: float | None = None,
        retry_attempt: int = 0,
    ) -> None:
        """Store when the task is next due (and its pending retry), and whether it is
        paused, so a restart continues the schedule where it was."""
        await self._run(
            self._tx(
                lambda db: db.execute(
                    "UPDATE tasks SET next_due = ?, paused = ?, retry_at = ?, retry_attempt = ?"
                    " WHERE task_id = ?",
                    (next_due, int(paused), retry_at, retry_attempt, task_id),
                )
            )
        )

    # -- executions ------------------------------------------------------------

    async def start_execution(
        self, record: ExecutionRecord, *, last_execution: float, next_due: float | None
    ) -> None:
        """Record a new running execution and the task's new schedule, atomically."""

        def start(db: sqlite3.Connection) -> None:
            _upsert_execution(db, record)
            db.execute(
                "UPDATE tasks SET last_execution = ?, next_due = ? WHERE task_id = ?",
                (last_execution, next_due, record.task_id),
            )

        await self._run(self._tx(start))

    async def finish_execution(self, record: ExecutionRecord, counters: TaskCounters) -> None:
        """Record an execution's end and the task's counters, atomically."""

        def finish(db: sqlite3.Connection) -> None:
            _upsert_execution(db, record)
            db.execute(
                "UPDATE tasks SET execution_count = ?, success_count = ?, failure_count = ?"
                " WHERE task_id = ?",
                (
                    counters.execution_count,
                    counters.success_count,
                    counters.failure_count,
                    record.task_id,
                ),
            )

        await self._run(self._tx(finish))

    async def close_interrupted(self, now: float) -> int:
        """Close runs a crash left ``running`` as ``interrupted``; returns how many."""

        def close(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT task_id, COUNT(*) FROM executions WHERE outcome = ? GROUP BY task_id",
                (Outcome.RUNNING.value,),
            ).fetchall()
            for task_id, count in rows:
                db.execute(
                    "UPDATE tasks SET execution_count = execution_count + ?,"
                    " failure_count = failure_count + ? WHERE task_id = ?",
                    (count, count, task_id),
                )
            cursor = db.execute(
                "UPDATE executions SET outcome = ?, reason = ?, finished_at = ? WHERE outcome = ?",
                (Outcome.INTERRUPTED.value, INTERRUPTED_REASON, now, Outcome.RUNNING.value),
            )
            return cursor.rowcount

        return await self._run(self._tx(close))

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        def get(db: sqlite3.Connection) -> ExecutionRecord | None:
            row = db.execute(
                "SELECT * FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            return None if row is None else _execution_from_row(row)

        return await self._run(self._tx(get))

    async def list_executions(
        self,
        *,
        task_id: str | None = None,
        outcome: Outcome | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ExecutionRecord], int]:
        """Newest first; returns the page and the number of matching records."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("task_id", "=", task_id),
            ("outcome", "=", outcome.value if outcome else None),
            ("scheduled_at", ">=", since),
            ("scheduled_at", "<", until),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def query(db: sqlite3.Connection) -> tuple[list[ExecutionRecord], int]:
            total = db.execute(f"SELECT COUNT(*) FROM executions{where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT * FROM executions{where} ORDER BY scheduled_at DESC, rowid DESC"
                " LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return [_execution_from_row(row) for row in rows], total

        return await self._run(self._tx(query))

    async def apply_retention(self, *, max_per_task: int, older_than: float) -> int:
        """Delete finished records beyond the per-task count or older than ``older_than``.

        The work is done in chunks of ``RETENTION_CHUNK`` rows, each its own short
        transaction, so the single writer is never held for long: an execution ending
        meanwhile gets its final record written within its bound."""

        def doomed(db: sqlite3.Connection) -> list[int]:
            rows = db.execute(
                "SELECT rowid FROM executions WHERE outcome != ? AND scheduled_at < ?"
                " UNION SELECT rowid FROM ("
                " SELECT rowid, ROW_NUMBER() OVER (PARTITION BY task_id"
                "  ORDER BY scheduled_at DESC, rowid DESC) AS n"
                " FROM executions WHERE outcome != ?) WHERE n > ?",
                (Outcome.RUNNING.value, older_than, Outcome.RUNNING.value, max_per_task),
            ).fetchall()
            return [row[0] for row in rows]

        rowids = await self._run(self._tx(doomed))
        for start in range(0, len(rowids), RETENTION_CHUNK):
            chunk = rowids[start : start + RETENTION_CHUNK]

            def delete(db: sqlite3.Connection, chunk: list[int] = chunk) -> None:
                db.execute(
                    f"DELETE FROM executions WHERE rowid IN ({','.join('?' * len(chunk))})",
                    chunk,
                )

            await self._run(self._tx(delete))
        return len(rowids)

    async def optimize(self) -> None:
        """Let SQLite refresh its statistics and fold the WAL back into the database."""

        def run() -> None:
            self._db.execute("PRAGMA optimize")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(run)


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[Store]:
    """Open (and create) the database at ``path``; closes it on exit."""

    def connect() -> sqlite3.Connection:
        # Task code and output are private: create the file 0600 before SQLite does
        # (SQLite gives its -wal and -shm files the database file's mode).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(path, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.commit()
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(SCHEMA)
        for table, column, declaration in MIGRATIONS:
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        db.commit()
        return db

    def lock_and_connect() -> tuple[int, sqlite3.Connection]:
        lock = _lock(path)
        try:
            return lock, connect()
        except BaseException:
            os.close(lock)
            raise

    # The directory, the lock file and the database are opened in the worker thread: the
    # event loop never waits on the disk. (run_sync waits for its thread even when
    # cancelled, so a lock it took always reaches the finally below.)
    lock, db = await trio.to_thread.run_sync(lock_and_connect)
    try:
        try:
            yield Store(db)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.close)
    finally:
        os.close(lock)


def _lock(path: Path) -> int:
    """One daemon per database: hold an exclusive lock on ``<db>.lock`` while open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(f"another omnimind daemon is using {path}") from None
    return fd


SPEC_COLUMNS = (
    "name",
    "description",
    "priority",
    "code",
    "repeat_hours",
    "timeout_seconds",
    "max_memory_mb",
    "max_cpu_seconds",
    "on_busy",
    "overlap",
    "on_missed",
    "max_retries",
    "max_delay_hours",
)
"""The task columns that hold its definition (all but the id), in _spec_values order."""


def _spec_values(spec: TaskSpec) -> tuple[Any, ...]:
    return (
        spec.name,
        spec.description,
        spec.priority.value,
        spec.code,
        spec.repeat_hours,
        spec.timeout_seconds,
        spec.max_memory_mb,
        spec.max_cpu_seconds,
        spec.on_busy.value,
        spec.overlap.value,
        spec.on_missed.value,
        spec.max_retries,
        spec.max_delay_hours,
    )


def _upsert_execution(db: sqlite3.Connection, record: ExecutionRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO executions (execution_id, task_id, trigger, outcome, reason,"
        " result, stdout, stderr, scheduled_at, started_at, finished_at, cpu_seconds,"
        " max_rss_mb, attempt, pauses) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.execution_id,
            record.task_id,
            record.trigger.value,
            record.outcome.value,
            record.reason,
            json.dumps(record.result),
            record.stdout,
            record.stderr,
            record.scheduled_at,
            record.started_at,
            record.finished_at,
            record.cpu_seconds,
            record.max_rss_mb,
            record.attempt,
            json.dumps(record.pauses),
        ),
    )


TASK_COLUMNS = (
    "task_id",
    *SPEC_COLUMNS,
    "seq",
    "paused",
    "created_at",
    "next_due",
    "execution_count",
    "success_count",
    "failure_count",
    "last_execution",
    "retry_at",
    "retry_attempt",
)
"""Every column of a task row, in the order insert_task writes and load_tasks reads."""
_PRIORITY = {p.value: p for p in Priority}
_ON_BUSY = {p.value: p for p in OnBusy}
_OVERLAP = {p.value: p for p in Overlap}
_ON_MISSED = {p.value: p for p in OnMissed}


def _task_from_tuple(row: tuple[Any, ...]) -> StoredTask:
    (
        task_id,
        name,
        description,
        priority,
        code,
        repeat_hours,
        timeout_seconds,
        max_memory_mb,
        max_cpu_seconds,
        on_busy,
        overlap,
        on_missed,
        max_retries,
        max_delay_hours,
        seq,
        paused,
        created_at,
        next_due,
        execution_count,
        success_count,
        failure_count,
        last_execution,
        retry_at,
        retry_attempt,
    ) = row
    spec = TaskSpec(
        task_id,
        name,
        description,
        _PRIORITY[priority],
        code,
        repeat_hours,
        timeout_seconds,
        max_memory_mb,
        max_cpu_seconds,
        _ON_BUSY[on_busy],
        _OVERLAP[overlap],
        _ON_MISSED[on_missed],
        max_retries,
        max_delay_hours,
    )
    counters = TaskCounters(execution_count, success_count, failure_count, last_execution)
    return StoredTask(
        spec, counters, seq, bool(paused), created_at, next_due, retry_at, retry_attempt
    )


def _execution_from_row(row: sqlite3.Row) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        trigger=Trigger(row["trigger"]),
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        stdout=row["stdout"],
        stderr=row["stderr"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        cpu_seconds=row["cpu_seconds"],
        max_rss_mb=row["max_rss_mb"],
        attempt=row["attempt"],
        pauses=[tuple(pause) for pause in json.loads(row["pauses"])],
    )
