"""Reads of the execution history on PostgreSQL: a part of
:class:`~._postgres.PostgresStore` (see :class:`~omnimind_trio.store.Store`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from ..models import ExecutionRecord, Outcome
from ._postgres_schema import EXECUTIONS, ORDER, RUNNING, Db, escape, record_from, unescape
from ._schema import execution_filter

T = TypeVar("T")


class HistoryReads:
    """The history's reads (mixed into :class:`~._postgres.PostgresStore`)."""

    async def _read(self, fn: Callable[[Db], T], *, snapshot: bool = False) -> T:
        raise NotImplementedError

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        def get(db: Db) -> ExecutionRecord | None:
            row = db.execute(
                f"SELECT {EXECUTIONS} FROM executions WHERE execution_id = %s",
                (escape(execution_id),),
            ).fetchone()
            return None if row is None else record_from(row)

        return await self._read(get)

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
        where, params = execution_filter(
            "%s",
            task_id=None if task_id is None else escape(task_id),
            registration_id=None if registration_id is None else escape(registration_id),
            outcome=outcome,
            node=None if node is None else escape(node),
            since=since,
            until=until,
        )

        def query(db: Db) -> tuple[list[ExecutionRecord], int]:
            count = db.execute(f"SELECT count(*) FROM executions{where}", params).fetchone()
            rows = db.execute(
                f"SELECT {EXECUTIONS} FROM executions{where} {ORDER} LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
            return [record_from(row) for row in rows], 0 if count is None else int(count[0])

        return await self._read(query, snapshot=True)

    async def recent_executions(
        self, registration_ids: Collection[str], per_task: int
    ) -> dict[str, list[ExecutionRecord]]:
        wanted = [escape(r) for r in registration_ids]

        def query(db: Db) -> dict[str, list[ExecutionRecord]]:
            found: dict[str, list[ExecutionRecord]] = {}
            if not wanted:
                return found
            rows = db.execute(
                f"SELECT wanted.id, latest.* FROM unnest(%s::text[]) WITH ORDINALITY"
                f" AS wanted(id, n) CROSS JOIN LATERAL (SELECT {EXECUTIONS} FROM executions"
                f" WHERE registration_id = wanted.id AND outcome <> %s {ORDER} LIMIT %s)"
                " AS latest ORDER BY wanted.n",
                (wanted, RUNNING, per_task),
            ).fetchall()
            for row in rows:
                found.setdefault(unescape(row[0]), []).append(record_from(row[1:]))
            return found

        return await self._read(query)

    async def known_executions(self, execution_ids: Collection[str]) -> set[str]:
        wanted = [escape(i) for i in execution_ids]

        def query(db: Db) -> set[str]:
            rows = db.execute(
                "SELECT execution_id FROM executions WHERE execution_id = ANY(%s::text[])",
                (wanted,),
            ).fetchall()
            return {unescape(row[0]) for row in rows}

        return await self._read(query) if wanted else set()
