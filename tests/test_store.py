"""The SQLite store: history queries and retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omnimind_trio.models import ExecutionRecord, Outcome, Trigger
from omnimind_trio.store import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "db.sqlite") as opened:
        yield opened


def record(i: int, task_id: str = "a", outcome: Outcome = Outcome.SUCCEEDED) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i}",
        task_id=task_id,
        trigger=Trigger.SCHEDULE,
        outcome=outcome,
        scheduled_at=float(i),
        started_at=float(i),
        finished_at=i + 0.5,
    )


async def fill(store: Store) -> None:
    for i in range(10):
        rec = record(i, "a" if i % 2 else "b", Outcome.FAILED if i % 3 == 0 else Outcome.SUCCEEDED)
        await store.start_execution(rec, last_execution=rec.scheduled_at, next_due=None)


async def test_history_is_newest_first_and_filtered(store: Store) -> None:
    await fill(store)
    page, total = await store.list_executions(limit=3)
    assert total == 10
    assert [r.execution_id for r in page] == ["e9", "e8", "e7"]
    page, total = await store.list_executions(task_id="a", outcome=Outcome.FAILED)
    assert [r.execution_id for r in page] == ["e9", "e3"] and total == 2
    page, total = await store.list_executions(since=4, until=6, offset=1)
    assert [r.execution_id for r in page] == ["e4"] and total == 2


async def test_retention_by_count_and_age_spares_running_records(store: Store) -> None:
    await fill(store)
    running = ExecutionRecord(
        execution_id="live",
        task_id="a",
        trigger=Trigger.SCHEDULE,
        outcome=Outcome.RUNNING,
        scheduled_at=0.0,
        started_at=0.0,
    )
    await store.start_execution(running, last_execution=0.0, next_due=None)
    deleted = await store.apply_retention(max_per_task=2, older_than=2.0)
    assert deleted == 6
    page, _ = await store.list_executions()
    assert sorted(r.execution_id for r in page) == ["e6", "e7", "e8", "e9", "live"]
    await store.optimize()


async def test_a_record_round_trips(store: Store) -> None:
    rec = record(1)
    rec.result = {"nested": [1, "two", None]}
    rec.stdout, rec.stderr, rec.reason = "out", "err", "why"
    rec.cpu_seconds, rec.max_rss_mb = 0.25, 12.5
    await store.start_execution(rec, last_execution=1.0, next_due=None)
    assert await store.get_execution("e1") == rec
    assert await store.get_execution("nope") is None
