"""The fleet on PostgreSQL (see ``_fleet`` for the contract): claims with a unique key per
occurrence, leases renewed by heartbeats and taken over when they run out, fenced final
records, and change notices on LISTEN/NOTIFY.

Every statement here runs on the store's writer (one transaction per call) or its readers;
notices are sent in the writing transaction (``pg_notify``), so another daemon hears of a
change once it is committed, never before. Times are the server's (``now()``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import astuple, replace
from typing import Any, TypeVar

import psycopg
import trio

from ..models import ExecutionRecord, Outcome
from ._fleet import CHANNEL, Claim, NodeRow, Occurrence, occurrence
from ._postgres_schema import (
    MINE,
    RUNNING,
    UPSERT,
    Db,
    escape,
    record_values,
    unescape,
    unescaped,
    whose,
)
from ._records import StoredTask
from ._schema import TASK_COLUMNS, names, task_from_row

log = logging.getLogger(__package__)

T = TypeVar("T")
Call = Callable[[Callable[[Db], T]], Awaitable[T]]

CLAIM_COLUMNS = (
    "occurrence, task_id, registration_id, trigger, scheduled_at, node, claim_id, attempt,"
    " execution_id"
)
LISTEN_RETRY_SECONDS = 2.0
"""After the notices' connection is lost, how long before it is made again."""


class _Stale(Exception):
    """Raised inside a claim's transaction (rolling it back): the occurrence is not what
    the task's stored schedule says is due."""


def notify(db: Db, node: str, **notice: Any) -> None:
    """Send ``notice`` (from ``node``) to the fleet when the transaction commits."""
    db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"node": node, **notice})))


def _close_record(db: Db, execution_id: str, reason: str) -> None:
    """Close a run's record left ``running`` as interrupted (finished now, by the server's
    clock), and count it for its task if the task is still its registration."""
    db.execute(
        "WITH closed AS (UPDATE executions SET outcome = %s, reason = %s,"
        " finished_at = extract(epoch FROM now()), process_id = NULL, process_start = NULL"
        " WHERE execution_id = %s AND outcome = %s RETURNING task_id, registration_id)"
        " UPDATE tasks SET execution_count = execution_count + 1,"
        " failure_count = failure_count + 1 FROM closed"
        " WHERE tasks.task_id = closed.task_id AND tasks.registration_id = closed.registration_id",
        (Outcome.INTERRUPTED.value, escape(reason), escape(execution_id), RUNNING),
    )


class PostgresFleet:
    """The fleet of a :class:`~._postgres.PostgresStore` (its ``fleet``)."""

    def __init__(
        self,
        *,
        node: str,
        lease_seconds: float,
        write: Call[Any],
        read: Call[Any],
        connect: Callable[[], Db],
    ) -> None:
        self.node = node
        self.lease_seconds = lease_seconds
        self._write = write
        self._read = read
        self._connect = connect

    def _new_claim(self, record: ExecutionRecord, run: Occurrence) -> Claim:
        assert record.registration_id is not None
        return Claim(
            occurrence=occurrence(record.registration_id, run.key),
            task_id=record.task_id,
            registration_id=record.registration_id,
            trigger=record.trigger.value,
            scheduled_at=record.scheduled_at,
            node=self.node,
            claim_id=uuid.uuid4().hex,
            attempt=0,
            execution_id=record.execution_id,
        )

    def _insert_claim(self, db: Db, claim: Claim, *, finished: bool) -> bool:
        row = db.execute(
            f"INSERT INTO claims ({CLAIM_COLUMNS}, lease_until, finished)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " now() + make_interval(secs => %s), %s)"
            " ON CONFLICT (occurrence) DO NOTHING RETURNING 1",
            (*_claim_row(claim), self.lease_seconds, finished),
        ).fetchone()
        return row is not None

    def _held(self, db: Db, claim: Claim) -> bool:
        """Whether ``claim`` is still this daemon's (locked for the transaction)."""
        row = db.execute(
            "SELECT 1 FROM claims WHERE occurrence = %s AND claim_id = %s AND attempt = %s"
            " AND node = %s AND NOT finished FOR UPDATE",
            (escape(claim.occurrence), claim.claim_id, claim.attempt, escape(self.node)),
        ).fetchone()
        return row is not None

    def _notify_run(self, db: Db, record: ExecutionRecord, event: str) -> None:
        notify(db, self.node, task=record.task_id, execution=record.execution_id, event=event)

    async def claim(
        self,
        record: ExecutionRecord,
        run: Occurrence,
        *,
        last_execution: float,
        next_due: float | None,
    ) -> Claim | None:
        claim = self._new_claim(record, run)
        values: tuple[Any, ...] = ()
        if run.kind == "retry":
            change = "retry_at = NULL"
        else:
            change, values = "next_due = %s", (next_due,)

        def write(db: Db) -> None:
            if not self._insert_claim(db, claim, finished=False):
                raise _Stale
            row = db.execute(
                f"WITH written AS ({UPSERT}) UPDATE tasks SET last_execution = %s, {change}"
                f" {MINE}{_still_due(run)} RETURNING 1",
                (*record_values(record), last_execution, *values, *whose(record), *_at(run)),
            ).fetchone()
            if row is None and run.kind != "request":
                raise _Stale  # (rolled back: the claim and the record with it)
            self._notify_run(db, record, "execution_started")

        try:
            await self._write(write)
        except _Stale:
            return None
        return claim

    async def claim_skip(self, record: ExecutionRecord, run: Occurrence) -> bool:
        claim = self._new_claim(record, run)

        def write(db: Db) -> None:
            if not self._insert_claim(db, claim, finished=True):
                raise _Stale
            if run.kind != "request":
                row = db.execute(
                    f"SELECT 1 FROM tasks {MINE}{_still_due(run)}", (*whose(record), *_at(run))
                ).fetchone()
                if row is None:
                    raise _Stale
            db.execute(UPSERT, record_values(record))
            self._notify_run(db, record, "execution_finished")

        try:
            await self._write(write)
        except _Stale:
            return False
        return True

    async def start_claimed(self, record: ExecutionRecord, claim: Claim) -> bool:
        def write(db: Db) -> bool:
            if not self._held(db, claim):
                return False
            db.execute(
                f"WITH written AS ({UPSERT}) UPDATE tasks SET last_execution = %s {MINE}",
                (*record_values(record), record.started_at, *whose(record)),
            )
            self._notify_run(db, record, "execution_started")
            return True

        return bool(await self._write(write))

    async def finish(
        self, record: ExecutionRecord, claim: Claim | None, *, release: bool = False
    ) -> bool:
        counted = record.outcome.counts_as_run
        succeeded = int(counted and record.outcome.is_success)
        failed = int(counted and not record.outcome.is_success)

        def write(db: Db) -> bool:
            if claim is not None and not self._held(db, claim):
                return False
            db.execute(
                f"WITH written AS ({UPSERT}) UPDATE tasks SET"
                " execution_count = execution_count + %s, success_count = success_count + %s,"
                f" failure_count = failure_count + %s {MINE}",
                (*record_values(record), int(counted), succeeded, failed, *whose(record)),
            )
            if claim is not None:
                db.execute(
                    "UPDATE claims SET finished = NOT %s, lease_until = now()"
                    " WHERE occurrence = %s",
                    (release, escape(claim.occurrence)),
                )
            self._notify_run(db, record, "execution_finished")
            return True

        return bool(await self._write(write))

    async def heartbeat(
        self,
        *,
        state: str,
        running_count: int,
        version: str,
        started_at: float,
        holding: Collection[str],
    ) -> set[str]:
        def write(db: Db) -> set[str]:
            db.execute(
                "INSERT INTO nodes (node, state, running_count, version, started_at, heartbeat)"
                " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (node) DO UPDATE SET"
                " state = EXCLUDED.state, running_count = EXCLUDED.running_count,"
                " version = EXCLUDED.version, started_at = EXCLUDED.started_at,"
                " heartbeat = EXCLUDED.heartbeat",
                (escape(self.node), state, running_count, version, started_at),
            )
            # A claim not in ``holding`` that is younger than a lease may be one whose run
            # had not yet heard it was made: it is left to run out, not ended.
            rows = db.execute(
                "UPDATE claims SET lease_until = CASE WHEN claim_id = ANY(%s::text[])"
                " THEN now() + make_interval(secs => %s)"
                " WHEN claimed_at < now() - make_interval(secs => %s)"
                " THEN least(lease_until, now()) ELSE lease_until END"
                " WHERE node = %s AND NOT finished RETURNING claim_id, lease_until > now()",
                (list(holding), self.lease_seconds, self.lease_seconds, escape(self.node)),
            ).fetchall()
            return {row[0] for row in rows if row[1] and row[0] in holding}

        return set(await self._write(write))

    async def take_over(self, registration_ids: Collection[str], limit: int) -> list[Claim]:
        wanted = [escape(r) for r in registration_ids]

        def write(db: Db) -> list[Claim]:
            # Claims of registrations no longer stored: closed, never run again.
            for old_execution, old_node in db.execute(
                "UPDATE claims SET finished = true WHERE NOT finished AND lease_until < now()"
                " AND registration_id NOT IN (SELECT registration_id FROM tasks)"
                " RETURNING execution_id, node"
            ).fetchall():
                _close_record(db, old_execution, _lost(old_node, None))
            expired = db.execute(
                f"SELECT {CLAIM_COLUMNS} FROM claims WHERE NOT finished"
                " AND lease_until < now() AND registration_id = ANY(%s::text[])"
                " ORDER BY lease_until LIMIT %s FOR UPDATE SKIP LOCKED",
                (wanted, limit),
            ).fetchall()
            taken = []
            for row in expired:
                plain: list[Any] = [unescape(v) if isinstance(v, str) else v for v in row]
                old = Claim(*plain)
                new = replace(
                    old,
                    node=self.node,
                    claim_id=uuid.uuid4().hex,
                    attempt=old.attempt + 1,
                    execution_id=uuid.uuid4().hex,
                )
                db.execute(
                    "UPDATE claims SET node = %s, claim_id = %s, attempt = %s,"
                    " execution_id = %s, claimed_at = now(),"
                    " lease_until = now() + make_interval(secs => %s) WHERE occurrence = %s",
                    (
                        escape(self.node),
                        new.claim_id,
                        new.attempt,
                        new.execution_id,
                        self.lease_seconds,
                        escape(old.occurrence),
                    ),
                )
                _close_record(db, old.execution_id, _lost(old.node, self.node))
                notify(db, self.node, task=old.task_id)
                taken.append(new)
            return taken

        return list(await self._write(write))

    async def release_mine(self) -> int:
        def write(db: Db) -> int:
            return db.execute(
                "UPDATE claims SET lease_until = now() WHERE node = %s AND NOT finished",
                (escape(self.node),),
            ).rowcount

        return int(await self._write(write))

    async def nodes(self) -> list[NodeRow]:
        def read(db: Db) -> list[NodeRow]:
            rows = db.execute(
                "SELECT node, state, running_count, version, started_at,"
                " extract(epoch FROM heartbeat)::float8,"
                " extract(epoch FROM now() - heartbeat)::float8 FROM nodes ORDER BY node"
            ).fetchall()
            return [NodeRow(unescape(row[0]), *row[1:]) for row in rows]

        return list(await self._read(read))

    async def load_task(self, task_id: str) -> StoredTask | None:
        def read(db: Db) -> StoredTask | None:
            row = db.execute(
                f"SELECT {names(TASK_COLUMNS)} FROM tasks WHERE task_id = %s", (escape(task_id),)
            ).fetchone()
            return None if row is None else task_from_row(unescaped(row, TASK_COLUMNS))

        found: StoredTask | None = await self._read(read)
        return found

    async def forget_claims(self, older_than_seconds: float) -> int:
        def write(db: Db) -> int:
            return db.execute(
                "DELETE FROM claims WHERE finished"
                " AND claimed_at < now() - make_interval(secs => %s)",
                (older_than_seconds,),
            ).rowcount

        return int(await self._write(write))

    async def listen(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        while True:
            try:
                db = await trio.to_thread.run_sync(self._connect)
            except psycopg.Error as exc:
                log.warning("cannot listen to the fleet's changes: %s", exc)
                await trio.sleep(LISTEN_RETRY_SECONDS)
                continue
            try:
                await trio.to_thread.run_sync(db.execute, f"LISTEN {CHANNEL}")
                deliver({"resync": True})  # what was said while no one listened
                await self._receive(db, deliver)
            except psycopg.Error as exc:
                log.warning("lost the fleet's change notices (%s): listening again", exc)
            finally:
                with trio.CancelScope(shield=True):  # (a network write: off the loop)
                    await trio.to_thread.run_sync(db.close)
            await trio.sleep(LISTEN_RETRY_SECONDS)

    async def _receive(self, db: Db, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Notices as they come: the socket waited on by Trio (psycopg's own waiting is
        asyncio's or blocking), then read without blocking."""
        pgconn = db.pgconn
        while True:
            await trio.lowlevel.wait_readable(pgconn.socket)
            pgconn.consume_input()
            if pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("the connection was closed")
            while (note := pgconn.notifies()) is not None:
                try:
                    notice = json.loads(note.extra.decode())
                except ValueError:
                    continue
                if isinstance(notice, dict) and notice.get("node") != self.node:
                    deliver(notice)


def _still_due(run: Occurrence) -> str:
    """The condition on the task's row that ``run`` is still what its schedule says is due
    (nothing for a request), for :func:`_at`'s value."""
    return {"due": " AND next_due = %s", "retry": " AND retry_at = %s"}.get(run.kind, "")


def _at(run: Occurrence) -> tuple[float, ...]:
    return () if run.kind == "request" else (run.at,)


def _lost(old_node: str, new_node: str | None) -> str:
    gone = f"the daemon running it ({old_node}) stopped renewing its claim"
    if new_node is None:
        return f"{gone}, and its task was deleted"
    return f"{gone}: taken over by {new_node}"


def _claim_row(claim: Claim) -> tuple[Any, ...]:
    return tuple(escape(v) if isinstance(v, str) else v for v in astuple(claim))
