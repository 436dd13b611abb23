"""The SQLite backend of the store (WAL): the default, a file in the daemon's home.

One connection, one writer: every call runs in a worker thread under a
``CapacityLimiter(1)``, so the event loop never blocks on disk and statements never
interleave. Committed data survives a ``kill -9`` of the daemon. sqlite3's errors are
translated at one place (``SQLiteStore._run``) into the store's own exceptions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import trio

from ..exceptions import StartupError, StoreUnavailable, TaskExists
from ..models import ExecutionRecord, Outcome, TaskCounters, TaskSpec
from ._file import DatabaseFile, describe_open_error, recreate
from ._protocol import INTERRUPTED_REASON, RunProcess, StoredTask
from ._schema import (
    COUNTER_COLUMNS,
    EXECUTION_COLUMNS,
    PROCESS_COLUMNS,
    SPEC_COLUMNS,
    TASK_COLUMNS,
    assignments,
    counters_row,
    execution_filter,
    execution_from_row,
    execution_row,
    marks,
    names,
    pause_flag,
    process_row,
    spec_row,
    task_from_row,
    task_row,
)
from ._sqlite_schema import connect

T = TypeVar("T")

PROBE_BYTES = 64 * 1024
"""The size of :meth:`SQLiteStore.probe_write`'s row: many new pages, more than a record."""

RETENTION_CHUNK = 500
"""Rows deleted per transaction by the history retention (SQLite allows 999 parameters)."""


class SQLiteStore:
    """The SQLite store (see :class:`~omnimind_trio.store.Store` for the contract).
    Open it with :func:`open_sqlite_store`."""

    fleet: None = None
    """A store of one daemon: no fleet."""

    def __init__(self, connection: sqlite3.Connection, file: DatabaseFile | None = None) -> None:
        self._db = connection
        self._file = file
        """The locked database file (None: a connection handed over as it is, in tests)."""
        self._limiter = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except sqlite3.IntegrityError:
            raise  # the data clashes (a bug, or insert_task's TaskExists): not an outage
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

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
            rows = db.execute(f"SELECT {names(TASK_COLUMNS)} FROM tasks ORDER BY seq").fetchall()
            return [task_from_row(row) for row in rows]

        return await self._run(self._tx(load))

    async def insert_task(self, task: StoredTask) -> None:
        row = task_row(task)
        try:
            await self._run(
                self._tx(
                    lambda db: db.execute(
                        f"INSERT INTO tasks ({names(TASK_COLUMNS)}) VALUES ({marks(TASK_COLUMNS)})",
                        row,
                    )
                )
            )
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname != "SQLITE_CONSTRAINT_PRIMARYKEY":
                raise
            raise TaskExists(task.spec.task_id) from None

    async def update_task(self, spec: TaskSpec, *, next_due: float | None) -> None:
        """Store a task's new definition (its counters are left alone)."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                f"UPDATE tasks SET {assignments(SPEC_COLUMNS)}, next_due = ? WHERE task_id = ?",
                (*spec_row(spec), next_due, spec.task_id),
            )

        await self._run(self._tx(update))

    async def delete_task(self, task_id: str) -> None:
        await self._run(
            self._tx(lambda db: db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,)))
        )

    async def probe_write(self) -> None:
        """A write that needs new space and leaves nothing behind: the WAL folded back
        and truncated, then a PROBE_BYTES row committed (so the WAL must grow on disk) and
        deleted. (A row rewritten in place commits on a full disk: its frames fit in the
        WAL's old space, while a new run record is refused.)"""

        def probe() -> None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            with self._db:  # (made here: opening an older database writes nothing)
                self._db.execute("CREATE TABLE IF NOT EXISTS space_probe (data BLOB)")
                self._db.execute("INSERT INTO space_probe VALUES (zeroblob(?))", (PROBE_BYTES,))
            with self._db:
                self._db.execute("DELETE FROM space_probe")

        await self._run(probe)

    async def check_file(self) -> str | None:
        """Why the database file is no longer at its path (deleted, replaced), or None."""
        file = self._file
        return None if file is None else await trio.to_thread.run_sync(file.lost)

    async def restore_file(self) -> str:
        """Write what the open database holds to a new file at its path and go on with
        that one (after :meth:`check_file` found the file deleted). A file that stands at
        the path now is never replaced."""
        if self._file is None:
            return "nothing to restore"
        path = self._file.path

        def restore() -> None:
            new_file, old_file = recreate(self._db, path), self._file
            # Close the old connection before opening the new one: on close, SQLite
            # deletes its -wal and -shm files by name, which the new ones will take.
            self._db.close()
            self._file = new_file
            if old_file is not None:
                old_file.close()
            self._db = connect(path)

        try:
            await self._run(restore)
        except (OSError, StartupError) as exc:
            raise StoreUnavailable(f"it cannot be re-created: {exc}") from exc
        return "the database file was re-created from the open database; nothing was lost"

    async def set_schedule(
        self,
        task_id: str,
        *,
        next_due: float | None,
        paused: bool | None,
        retry_at: float | None = None,
        retry_attempt: int = 0,
    ) -> None:
        """Store when the task is next due (and its pending retry), and whether it is
        paused, so a restart continues the schedule where it was."""
        await self._run(
            self._tx(
                lambda db: db.execute(
                    "UPDATE tasks SET next_due = ?, paused = coalesce(?, paused), retry_at = ?,"
                    " retry_attempt = ? WHERE task_id = ?",
                    (next_due, pause_flag(paused), retry_at, retry_attempt, task_id),
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
                "UPDATE tasks SET last_execution = ?, next_due = ?"
                " WHERE task_id = ? AND registration_id = ?",
                (last_execution, next_due, record.task_id, record.registration_id),
            )

        await self._run(self._tx(start))

    async def finish_execution(self, record: ExecutionRecord, counters: TaskCounters) -> None:
        """Record an execution's end and the task's counters, atomically."""

        def finish(db: sqlite3.Connection) -> None:
            _upsert_execution(db, record)
            db.execute(
                f"UPDATE tasks SET {assignments(COUNTER_COLUMNS)}"
                " WHERE task_id = ? AND registration_id = ?",
                (*counters_row(counters), record.task_id, record.registration_id),
            )

        await self._run(self._tx(finish))

    async def record_process(self, execution_id: str, process: RunProcess) -> None:
        await self._run(
            self._tx(
                lambda db: db.execute(
                    f"UPDATE executions SET {assignments(PROCESS_COLUMNS)}"
                    " WHERE execution_id = ? AND outcome = ?",
                    (*process_row(process), execution_id, Outcome.RUNNING.value),
                )
            )
        )

    async def running_processes(self) -> dict[str, RunProcess]:
        def query(db: sqlite3.Connection) -> dict[str, RunProcess]:
            rows = db.execute(
                f"SELECT execution_id, {names(PROCESS_COLUMNS)} FROM executions"
                " WHERE outcome = ? AND process_id IS NOT NULL",
                (Outcome.RUNNING.value,),
            ).fetchall()
            return {row[0]: RunProcess(*row[1:]) for row in rows}

        return await self._run(self._tx(query))

    async def close_interrupted(self, now: float) -> int:
        """Close runs a crash left ``running`` as ``interrupted``; returns how many."""

        def close(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT task_id, registration_id, COUNT(*) FROM executions WHERE outcome = ?"
                " GROUP BY task_id, registration_id",
                (Outcome.RUNNING.value,),
            ).fetchall()
            for task_id, registration_id, count in rows:
                db.execute(
                    "UPDATE tasks SET execution_count = execution_count + ?,"
                    " failure_count = failure_count + ? WHERE task_id = ? AND registration_id = ?",
                    (count, count, task_id, registration_id),
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
                f"SELECT {names(EXECUTION_COLUMNS)} FROM executions WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
            return None if row is None else execution_from_row(row)

        return await self._run(self._tx(get))

    async def list_executions(
        self,
        *,
        task_id: str | None = None,
        registration_id: str | None = None,
        outcome: Outcome | None = None,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ExecutionRecord], int]:
        """Newest first; returns the page and the number of matching records."""
        where, params = execution_filter(
            "?",
            task_id=task_id,
            registration_id=registration_id,
            outcome=outcome,
            node=node,
            since=since,
            until=until,
        )

        def query(db: sqlite3.Connection) -> tuple[list[ExecutionRecord], int]:
            total = db.execute(f"SELECT COUNT(*) FROM executions{where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT {names(EXECUTION_COLUMNS)} FROM executions{where}"
                " ORDER BY scheduled_at DESC, rowid DESC"
                " LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return [execution_from_row(row) for row in rows], total

        return await self._run(self._tx(query))

    async def recent_executions(
        self, registration_ids: Collection[str], per_task: int
    ) -> dict[str, list[ExecutionRecord]]:
        def query(db: sqlite3.Connection) -> dict[str, list[ExecutionRecord]]:
            found: dict[str, list[ExecutionRecord]] = {}
            for registration_id in registration_ids:  # one indexed query each
                rows = db.execute(
                    f"SELECT {names(EXECUTION_COLUMNS)} FROM executions"
                    " WHERE registration_id = ? AND outcome != 'running'"
                    " ORDER BY scheduled_at DESC, rowid DESC LIMIT ?",
                    (registration_id, per_task),
                ).fetchall()
                if rows:
                    found[registration_id] = [execution_from_row(row) for row in rows]
            return found

        return await self._run(self._tx(query))

    async def known_executions(self, execution_ids: Collection[str]) -> set[str]:
        ids = list(execution_ids)

        def query(db: sqlite3.Connection) -> set[str]:
            known: set[str] = set()
            for start in range(0, len(ids), RETENTION_CHUNK):
                chunk = ids[start : start + RETENTION_CHUNK]
                known.update(
                    row[0]
                    for row in db.execute(
                        "SELECT execution_id FROM executions"
                        f" WHERE execution_id IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    )
                )
            return known

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
async def open_sqlite_store(path: Path) -> AsyncIterator[SQLiteStore]:
    """Open (and create) the database at ``path``; closes it on exit.

    Error handling: a database another daemon holds, or one that cannot be opened or
    created (read-only, not a database, corrupt, disk full), raises StartupError saying
    what is wrong; an existing file is not changed then.
    """
    try:
        file = await trio.to_thread.run_sync(DatabaseFile.open, path)
    except OSError as exc:
        raise StartupError(f"cannot open the database {path}: {exc}") from exc
    store: SQLiteStore | None = None
    try:
        try:
            db = await trio.to_thread.run_sync(connect, path)
        except sqlite3.Error as exc:
            raise StartupError(describe_open_error(path, exc)) from exc
        except OSError as exc:
            raise StartupError(f"cannot open the database {path}: {exc}") from exc
        store = SQLiteStore(db, file)
        yield store
    finally:
        with trio.CancelScope(shield=True):
            if store is not None:
                # (read under the limiter: a restore_file may be swapping the connection)
                opened = store
                await trio.to_thread.run_sync(lambda: opened._db.close(), limiter=opened._limiter)
        (store._file if store is not None and store._file is not None else file).close()


def _upsert_execution(db: sqlite3.Connection, record: ExecutionRecord) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO executions ({names(EXECUTION_COLUMNS)})"
        f" VALUES ({marks(EXECUTION_COLUMNS)})",
        execution_row(record),
    )
