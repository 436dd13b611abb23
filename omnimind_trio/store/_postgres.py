"""The PostgreSQL backend of the store: ``OMNIMIND_DATABASE=postgresql://...`` (libpq's URL).

psycopg 3's sync API in worker threads (its async API is asyncio-only). Writes go through
one connection, the one that holds the database's lock (``_postgres_connect.Writer``), one
at a time under a ``CapacityLimiter(1)``: they take effect in the order they are made, each
in its own transaction. Reads go through a small pool (psycopg_pool's ``ConnectionPool``,
:data:`READERS` connections at most, read-only), those of more than one statement in one
snapshot (REPEATABLE READ). psycopg's errors are translated at one place
(:meth:`PostgresStore._run`): a failed call raises ``StoreUnavailable``, saying why; a
pooled connection found lost is replaced and the read tried again.

Open it with :func:`open_postgres_store` (what ``open_store`` does with such a URL).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool, PoolTimeout

from ..exceptions import StartupError, StoreUnavailable, TaskExists
from ..models import ExecutionRecord, Outcome, TaskCounters, TaskSpec
from ._postgres_connect import CONNECT_SECONDS, LockLost, Writer, describe, options, reason
from ._postgres_fleet import PostgresFleet, notify
from ._postgres_history import HistoryReads
from ._postgres_schema import (
    MINE,
    RUNNING,
    UPSERT,
    Db,
    escape,
    escaped,
    record_values,
    unescape,
    unescaped,
    whose,
)
from ._protocol import INTERRUPTED_REASON, RunProcess, StoredTask
from ._schema import (
    COUNTER_COLUMNS,
    PROCESS_COLUMNS,
    SPEC_COLUMNS,
    TASK_COLUMNS,
    assignments,
    counters_row,
    marks,
    names,
    pause_flag,
    process_row,
    spec_row,
    task_from_row,
    task_row,
)

T = TypeVar("T")

READERS = 3
"""The pool's connections at most (the writer is a fourth)."""

MINE_RECORDS = (
    "(execution_id IN (SELECT execution_id FROM claims WHERE node = %s)"
    " OR execution_id NOT IN (SELECT execution_id FROM claims))"
)
"""The records this daemon wrote (its claims name them), or that no claim names (older
than the fleet), for ``%s`` its node name."""

POOL_WAIT_SECONDS = 1.0
"""How long a read waits for a pooled connection before it makes one of its own."""

PROBE_BYTES = 64 * 1024
"""The size of :meth:`PostgresStore.probe_write`'s row (random: it cannot be compressed)."""

RETENTION_CHUNK = 500
"""Rows deleted per transaction by the history retention."""


class PostgresStore(HistoryReads):
    """The PostgreSQL store (see :class:`~omnimind_trio.store.Store` for the contract).
    Open it with :func:`open_postgres_store`."""

    def __init__(
        self, writer: Writer, pool: ConnectionPool[Any], *, lease_seconds: float = 30.0
    ) -> None:
        self._writer = writer
        self._pool = pool
        self._reader_options = options(writer.url, writer.identity.name)
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(READERS)
        self.node = writer.node
        self.fleet = PostgresFleet(
            node=writer.node,
            lease_seconds=lease_seconds,
            write=self._write,
            read=self._read,
            connect=lambda: psycopg.connect(**self._reader_options),
        )
        """Claims, leases and notices: every daemon on PostgreSQL is one of a fleet."""

    def _notify(self, db: Db, task_id: str) -> None:
        notify(db, self.node, task=task_id)

    async def _run(self, call: Callable[[], T], limiter: trio.CapacityLimiter) -> T:
        try:
            return await trio.to_thread.run_sync(call, limiter=limiter)
        except (psycopg.Error, LockLost) as exc:
            raise StoreUnavailable(reason(exc, self._writer.url)) from exc

    async def _write(self, fn: Callable[[Db], T]) -> T:
        """``fn(connection)`` on the writer, in one transaction."""
        return await self._run(lambda: self._writer.run(fn), self._write_limiter)

    async def _read(self, fn: Callable[[Db], T], *, snapshot: bool = False) -> T:
        """``fn(connection)`` on a pooled connection; with ``snapshot``, in one transaction
        (its statements see the same data; a single statement needs none). A pooled
        connection found lost (the server restarted) is replaced, and the read tried
        again. When the pool has none ready within POOL_WAIT_SECONDS (it is connecting
        again, after an outage), a connection of the read's own: it fails at once, saying
        why, while the server is away, and works as soon as it is back."""

        def read() -> T:
            for attempt in range(READERS + 1):
                try:
                    db = self._pool.getconn(timeout=POOL_WAIT_SECONDS)
                except PoolTimeout:
                    with psycopg.connect(**self._reader_options) as own:
                        _read_only(own)
                        return _in(own, fn, snapshot)
                try:
                    return _in(db, fn, snapshot)
                except psycopg.OperationalError:
                    if not db.broken or attempt == READERS:
                        raise
                finally:
                    self._pool.putconn(db)
            raise AssertionError("unreachable")

        return await self._run(read, self._read_limiter)

    # -- tasks ---------------------------------------------------------------

    async def load_tasks(self) -> list[StoredTask]:
        def load(db: Db) -> list[StoredTask]:
            rows = db.execute(
                f"SELECT {names(TASK_COLUMNS)} FROM tasks ORDER BY seq, position"
            ).fetchall()
            return [task_from_row(unescaped(row, TASK_COLUMNS)) for row in rows]

        return await self._read(load)

    async def insert_task(self, task: StoredTask) -> None:
        row = escaped(task_row(task), TASK_COLUMNS)

        def insert(db: Db) -> int:
            count = db.execute(
                f"INSERT INTO tasks ({names(TASK_COLUMNS)})"
                f" VALUES ({marks(TASK_COLUMNS, '%s')}) ON CONFLICT (task_id) DO NOTHING",
                row,
            ).rowcount
            self._notify(db, task.spec.task_id)
            return count

        if await self._write(insert) == 0:
            raise TaskExists(task.spec.task_id)

    async def update_task(self, spec: TaskSpec, *, next_due: float | None) -> None:
        row = escaped(spec_row(spec), SPEC_COLUMNS)

        def update(db: Db) -> None:
            db.execute(
                f"UPDATE tasks SET {assignments(SPEC_COLUMNS, '%s')}, next_due = %s"
                " WHERE task_id = %s",
                (*row, next_due, escape(spec.task_id)),
            )
            self._notify(db, spec.task_id)

        await self._write(update)

    async def delete_task(self, task_id: str) -> None:
        def delete(db: Db) -> None:
            db.execute("DELETE FROM tasks WHERE task_id = %s", (escape(task_id),))
            self._notify(db, task_id)

        await self._write(delete)

    async def probe_write(self) -> None:
        """A PROBE_BYTES row of random bytes inserted and deleted, in one transaction: it
        needs new space in the table and in the WAL, and leaves nothing behind."""
        data = os.urandom(PROBE_BYTES)

        def probe(db: Db) -> None:
            db.execute("INSERT INTO space_probe (data) VALUES (%s)", (data,))
            db.execute("DELETE FROM space_probe")

        await self._write(probe)

    async def check_file(self) -> str | None:
        """No file of ours: whether this daemon still holds the database. The writer's
        connection is tried (a round trip): lost (the server restarted), it is made again
        and takes the lock again at once, not at the next write, which may be hours away
        (meanwhile a second daemon could start on the database). Another daemon holding it
        is the problem said."""
        return await trio.to_thread.run_sync(self._writer.check, limiter=self._write_limiter)

    async def restore_file(self) -> str:
        """Take the database back from the daemon that took it (once that one is gone)."""
        await self._write(lambda db: None)
        return "this daemon holds the database again"

    async def set_schedule(
        self,
        task_id: str,
        *,
        next_due: float | None,
        paused: bool | None,
        retry_at: float | None = None,
        retry_attempt: int = 0,
    ) -> None:
        def update(db: Db) -> None:
            db.execute(
                "UPDATE tasks SET next_due = %s, paused = coalesce(%s, paused), retry_at = %s,"
                " retry_attempt = %s WHERE task_id = %s",
                (next_due, pause_flag(paused), retry_at, retry_attempt, escape(task_id)),
            )
            self._notify(db, task_id)

        await self._write(update)

    # -- executions ------------------------------------------------------------

    async def start_execution(
        self, record: ExecutionRecord, *, last_execution: float, next_due: float | None
    ) -> None:
        values = (*record_values(record), last_execution, next_due, *whose(record))
        await self._write(
            lambda db: db.execute(
                f"WITH written AS ({UPSERT})"
                f" UPDATE tasks SET last_execution = %s, next_due = %s {MINE}",
                values,
            )
        )

    async def finish_execution(self, record: ExecutionRecord, counters: TaskCounters) -> None:
        values = (*record_values(record), *counters_row(counters), *whose(record))
        await self._write(
            lambda db: db.execute(
                f"WITH written AS ({UPSERT})"
                f" UPDATE tasks SET {assignments(COUNTER_COLUMNS, '%s')} {MINE}",
                values,
            )
        )

    async def record_process(self, execution_id: str, process: RunProcess) -> None:
        await self._write(
            lambda db: db.execute(
                f"UPDATE executions SET {assignments(PROCESS_COLUMNS, '%s')}"
                " WHERE execution_id = %s AND outcome = %s",
                (*process_row(process), escape(execution_id), RUNNING),
            )
        )

    async def running_processes(self) -> dict[str, RunProcess]:
        def query(db: Db) -> dict[str, RunProcess]:
            rows = db.execute(
                f"SELECT execution_id, {names(PROCESS_COLUMNS)} FROM executions"
                f" WHERE outcome = %s AND process_id IS NOT NULL AND {MINE_RECORDS}",
                (RUNNING, escape(self.node)),
            ).fetchall()
            return {unescape(row[0]): RunProcess(*row[1:]) for row in rows}

        return await self._read(query)

    async def close_interrupted(self, now: float) -> int:
        """One statement: the records closed (in place: their order stays), and each
        registration's count added to its task's counters. Only this daemon's: the other
        daemons of the fleet may be running theirs."""

        def close(db: Db) -> int:
            row = db.execute(
                "WITH closed AS (UPDATE executions SET outcome = %s, reason = %s,"
                f" finished_at = %s WHERE outcome = %s AND {MINE_RECORDS}"
                " RETURNING task_id, registration_id),"
                " counts AS (SELECT task_id, registration_id, count(*) AS n FROM closed"
                "  GROUP BY task_id, registration_id),"
                " counted AS (UPDATE tasks SET execution_count = execution_count + counts.n,"
                "  failure_count = failure_count + counts.n FROM counts"
                "  WHERE tasks.task_id = counts.task_id"
                "  AND tasks.registration_id = counts.registration_id)"
                " SELECT count(*) FROM closed",
                (
                    Outcome.INTERRUPTED.value,
                    escape(INTERRUPTED_REASON),
                    now,
                    RUNNING,
                    escape(self.node),
                ),
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._write(close)

    async def apply_retention(self, *, max_per_task: int, older_than: float) -> int:
        """Delete finished records beyond the per-task count or older than ``older_than``,
        in chunks of RETENTION_CHUNK rows, each its own short transaction. A record written
        again since it was judged (``written`` changed) is left for the next call."""

        def doomed(db: Db) -> list[tuple[str, int]]:
            rows = db.execute(
                "SELECT execution_id, written FROM executions"
                " WHERE outcome <> %s AND scheduled_at < %s"
                " UNION SELECT execution_id, written FROM (SELECT execution_id, written,"
                "  ROW_NUMBER() OVER (PARTITION BY task_id ORDER BY scheduled_at DESC,"
                "  written DESC) AS n FROM executions WHERE outcome <> %s) AS ranked"
                " WHERE n > %s",
                (RUNNING, older_than, RUNNING, max_per_task),
            ).fetchall()
            return [(row[0], row[1]) for row in rows]

        found = await self._write(doomed)
        for start in range(0, len(found), RETENTION_CHUNK):
            chunk = found[start : start + RETENTION_CHUNK]

            def delete(db: Db, chunk: list[tuple[str, int]] = chunk) -> None:
                db.execute(
                    "DELETE FROM executions USING unnest(%s::text[], %s::bigint[])"
                    " AS doomed(id, written) WHERE executions.execution_id = doomed.id"
                    " AND executions.written = doomed.written",
                    ([c[0] for c in chunk], [c[1] for c in chunk]),
                )

            await self._write(delete)
        return len(found)

    async def optimize(self) -> None:
        """Refresh the planner's statistics after retention (autovacuum frees the space)."""
        await self._write(lambda db: db.execute("ANALYZE tasks, executions"))


@asynccontextmanager
async def open_postgres_store(
    url: str, *, node: str, lease_seconds: float = 30.0
) -> AsyncIterator[PostgresStore]:
    """Connect to the database at ``url`` (created tables, or migrated) as the fleet's
    daemon ``node``, holding that name against a second daemon; closes every connection
    on exit.

    Error handling: a server that cannot be reached, a bad URL or password, a missing
    database, another daemon of that name holding it, a newer schema, a role that may not
    create the tables raise StartupError saying so (the password masked); nothing is
    changed then.
    """
    writer = await trio.to_thread.run_sync(Writer.open, url, node)
    pool: ConnectionPool[Any] | None = None
    store: PostgresStore | None = None
    try:
        pool = ConnectionPool(
            kwargs=options(url, writer.identity.name),
            min_size=1,
            max_size=READERS,
            open=False,
            configure=_read_only,
            timeout=CONNECT_SECONDS,
            name="omnimind-readers",
            num_workers=1,
        )
        opened = pool
        try:
            await trio.to_thread.run_sync(lambda: opened.open(wait=True, timeout=CONNECT_SECONDS))
        except psycopg.Error as exc:
            raise StartupError(describe(url, exc)) from None
        store = PostgresStore(writer, pool, lease_seconds=lease_seconds)
        yield store
    finally:
        with trio.CancelScope(shield=True):
            if pool is not None:
                await trio.to_thread.run_sync(pool.close)
            # (under the writer's limiter: a write still running ends first)
            limiter = None if store is None else store._write_limiter
            await trio.to_thread.run_sync(writer.close, limiter=limiter)


def _in(db: Db, fn: Callable[[Db], T], snapshot: bool) -> T:
    if not snapshot:
        return fn(db)
    with db.transaction():
        return fn(db)


def _read_only(db: Db) -> None:
    """A pooled connection: snapshots for reads of several statements, and no writes
    (a statement outside a transaction too)."""
    db.execute("SET default_transaction_read_only = on")
    db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
