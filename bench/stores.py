"""Q. Stores side by side (issue 15): SQLite and PostgreSQL, the two writes a daemon makes
most: adding a task, and a run's final record (``finish_execution``: the record and the
task's counters in one transaction).

Through the ``Store`` API (``open_store``) from Trio, as the daemon calls it: each call is
timed alone, one after the other. SQLite: a file in a temporary folder, WAL,
``synchronous=NORMAL`` (omnimind's settings: no flush at each commit). PostgreSQL: a
throwaway cluster (``tests/pg_cluster.py``: ``initdb`` in a temporary folder, a Unix
socket) with PostgreSQL's defaults, so each commit flushes the WAL (``fsync``,
``synchronous_commit=on``), on the same disk. N/A where PostgreSQL is not installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import trio

from omnimind_trio.models import (
    ExecutionRecord,
    Outcome,
    Priority,
    TaskCounters,
    TaskSpec,
    Trigger,
)
from omnimind_trio.store import StoredTask, open_store
from tests import pg_cluster

from .common import Figure, Mode, log, percentile, skipped, temp_home

CODE = "def execute():\n    return 1\n"


def _task(i: int) -> StoredTask:
    spec = TaskSpec(f"t{i}", f"Task {i}", "a task", Priority.MEDIUM, CODE, repeat_hours=24)
    return StoredTask(spec, TaskCounters(), i, False, 100.0, 200.0, f"{i:032x}")


def _record(i: int) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i}",
        task_id="t0",
        registration_id=f"{0:032x}",
        registered_at=100.0,
        trigger=Trigger.SCHEDULE,
        outcome=Outcome.SUCCEEDED,
        scheduled_at=float(i),
        started_at=float(i),
        finished_at=i + 0.5,
        result={"status": "completed", "i": i},
        stdout="done\n",
    )


async def _measure(location: str | Path, count: int) -> tuple[list[float], list[float]]:
    adds: list[float] = []
    records: list[float] = []
    async with open_store(location) as store:
        for i in range(count):
            t0 = time.perf_counter()
            await store.insert_task(_task(i))
            adds.append((time.perf_counter() - t0) * 1000)
        for i in range(count):
            t0 = time.perf_counter()
            await store.finish_execution(_record(i), TaskCounters(i + 1, i + 1, 0))
            records.append((time.perf_counter() - t0) * 1000)
    return adds, records


def run(mode: Mode) -> list[Figure]:
    count = 300 if mode.repeats <= 3 else 2000
    runs: dict[tuple[str, str, int], list[float]] = {}
    backends: list[tuple[str, Callable[[Path], str | Path]]] = [
        ("SQLite", lambda home: home / "omnimind.db")
    ]
    why = pg_cluster.missing()
    cluster = None if why else pg_cluster.Cluster(durable=True)
    if cluster is not None:
        backends.append(("PostgreSQL", lambda home: cluster.url(cluster.database())))
    try:
        for rep in range(mode.repeats):
            for name, location in backends:
                with temp_home() as home:
                    adds, records = trio.run(_measure, location(home), count)
                for what, values in (("add", adds), ("record", records)):
                    for q in (50, 99):
                        runs.setdefault((name, what, q), []).append(percentile(values, q))
                log(
                    f"Q run {rep + 1} {name}: add p50 {percentile(adds, 50):.2f} ms,"
                    f" record p50 {percentile(records, 50):.2f} ms"
                )
    finally:
        if cluster is not None:
            cluster.close()
    note = f"{count} calls, one at a time, through open_store"
    figures: list[Figure] = []
    number = 1
    for what, label in (("add", "Add a task"), ("record", "Write a run's final record")):
        for name in ("SQLite", "PostgreSQL"):
            for q in (50, 99):
                title = f"{label}, {name}, p{q}"
                if (name, what, q) in runs:
                    figures.append(
                        Figure(f"Q{number}", title, "ms", runs[name, what, q], note=note)
                    )
                else:
                    figures.append(skipped(f"Q{number}", title, "ms", why or "not measured"))
                number += 1
    return figures
