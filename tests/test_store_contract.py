"""The store's contract (``omnimind_trio.store.Store``), run against every backend.

A new backend joins by adding a ``Backend`` to ``BACKENDS``: where its store lives, how to
make it refuse writes, and whether it outlives its ``open_store`` block.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio import Settings, StartupError, StoreError, StoreUnavailable, TaskExists
from omnimind_trio.models import (
    Conditions,
    ExecutionRecord,
    NotifyEvent,
    NotifySpec,
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    TaskCounters,
    TaskSpec,
    Trigger,
)
from omnimind_trio.store import (
    INTERRUPTED_REASON,
    MemoryStore,
    RunProcess,
    SQLiteStore,
    Store,
    StoredTask,
    _memory,
    _postgres,
    _sqlite,
    _sqlite_schema,
    open_store,
)
from omnimind_trio.store._postgres import PostgresStore

REFUSAL = "attempt to write a readonly database"


# -- the backends ----------------------------------------------------------------------


async def refuse_sqlite(store: Store, on: bool) -> None:
    """SQLite's own switch: every write fails with 'attempt to write a readonly database'."""
    assert isinstance(store, SQLiteStore)
    db = store._db
    await store._run(lambda: db.execute(f"PRAGMA query_only = {int(on)}"))


async def refuse_memory(store: Store, on: bool) -> None:
    assert isinstance(store, MemoryStore)
    store.refuse_writes(REFUSAL if on else None)


async def refuse_postgres(store: Store, on: bool) -> None:
    """PostgreSQL's own switch, on the session that writes: every write fails with
    'cannot execute INSERT in a read-only transaction' (UPDATE, DELETE...)."""
    assert isinstance(store, PostgresStore)
    setting = "on" if on else "off"
    await store._write(lambda db: db.execute(f"SET default_transaction_read_only = {setting}"))


@dataclass(frozen=True)
class Backend:
    name: str
    location: Callable[[pytest.FixtureRequest, Path], str | Path]
    refuse: Callable[[Store, bool], Awaitable[None]]
    """Make every write fail (True) or work again (False), as a full disk would."""
    refusal: str
    """The reason (a regular expression) of the writes ``refuse`` makes fail."""
    durable: bool
    """Whether what it holds is there again when the same location is opened again."""
    kind: type


BACKENDS = [
    Backend(
        "sqlite",
        lambda request, tmp: tmp / "omnimind.db",
        refuse_sqlite,
        re.escape(REFUSAL),
        True,
        SQLiteStore,
    ),
    Backend(
        "memory",
        lambda request, tmp: "memory://",
        refuse_memory,
        re.escape(REFUSAL),
        False,
        MemoryStore,
    ),
    Backend(
        # A new database on the session's throwaway cluster (skipped without PostgreSQL).
        "postgresql",
        lambda request, tmp: str(request.getfixturevalue("postgres_url")),
        refuse_postgres,
        r"cannot execute (INSERT|UPDATE|DELETE|SELECT) in a read-only transaction",
        True,
        PostgresStore,
    ),
]


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    return chosen


@pytest.fixture
def location(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    return backend.location(request, tmp_path)


@pytest.fixture
async def store(location: str | Path, backend: Backend) -> AsyncIterator[Store]:
    async with open_store(location) as opened:
        assert isinstance(opened, backend.kind)
        yield opened


# -- records -----------------------------------------------------------------------------


CODE = "def execute():\n    return 1\n"


def spec(task_id: str = "a", **fields: Any) -> TaskSpec:
    values: dict[str, Any] = {
        "task_id": task_id,
        "name": task_id.title(),
        "description": "a task",
        "priority": Priority.MEDIUM,
        "code": CODE,
    }
    values.update(fields)
    return TaskSpec(**values)


def registration(task_id: str, n: int = 1) -> str:
    """The ``n``-th registration of ``task_id``: 32 hex digits, as the daemon makes."""
    return hashlib.md5(f"{task_id}/{n}".encode()).hexdigest()


def task(task_id: str = "a", seq: int = 1, **fields: Any) -> StoredTask:
    values: dict[str, Any] = {
        "paused": False, "created_at": 100.0, "next_due": 200.0,
        "registration_id": registration(task_id), **fields,
    }  # fmt: skip
    return StoredTask(spec=spec(task_id), counters=TaskCounters(), seq=seq, **values)


def full_spec(task_id: str = "full") -> TaskSpec:
    """A definition with every field away from its default."""
    return TaskSpec(
        task_id=task_id,
        name="Full",
        description="every field set",
        priority=Priority.HIGH,
        code="async def execute():\n    return {'x': 'é'}\n",
        repeat_hours=6,
        timeout_seconds=12.5,
        max_memory_mb=256,
        max_cpu_seconds=30,
        on_busy=OnBusy.CANCEL,
        overlap=Overlap.REPLACE,
        on_missed=OnMissed.SKIP,
        max_retries=3,
        max_delay_hours=1.5,
        # The store keeps what it is given: one definition may hold every schedule field
        # (the API allows one of them; that is checked before a store sees it).
        repeat_minutes=90,
        cron="30 2 * * 1-5",
        timezone="Europe/Paris",
        after=("upstream_a", "upstream_b"),
        machines=("desktop", "nas-2.home"),
        notify=NotifySpec(
            on=(NotifyEvent.FAILURE, NotifyEvent.SUCCESS),
            webhook="https://hooks.example/x",
            desktop=True,
        ),
        conditions=Conditions(user_away=True, unmetered_network=True),
        env={"BACKUP_DIR": "/srv/backup", "LANG": "C.UTF-8"},
        secrets={"TOKEN": "s3crét"},
        python="/opt/venv/bin/python",
    )


def full_task() -> StoredTask:
    return StoredTask(
        spec=full_spec(),
        counters=TaskCounters(
            execution_count=7, success_count=5, failure_count=2, last_execution=150.25
        ),
        seq=42,
        paused=True,
        created_at=99.5,
        next_due=300.75,
        registration_id=registration("full"),
        retry_at=320.5,
        retry_attempt=2,
    )


def record(
    i: int, task_id: str = "a", outcome: Outcome = Outcome.SUCCEEDED, **fields: Any
) -> ExecutionRecord:
    values: dict[str, Any] = {
        "execution_id": f"e{i}",
        "task_id": task_id,
        "registration_id": registration(task_id),
        "registered_at": 100.0,
        "trigger": Trigger.SCHEDULE,
        "outcome": outcome,
        "scheduled_at": float(i),
        "started_at": float(i),
        "finished_at": None if outcome is Outcome.RUNNING else i + 0.5,
    }
    values.update(fields)
    return ExecutionRecord(**values)


def full_record() -> ExecutionRecord:
    """A record with every field away from its default."""
    return ExecutionRecord(
        execution_id="full-1",
        task_id="full",
        registration_id=registration("full"),
        registered_at=99.5,
        node="laptop",
        trigger=Trigger.RETRY,
        outcome=Outcome.FAILED,
        scheduled_at=10.0,
        started_at=10.25,
        finished_at=12.5,
        reason="ValueError: no",
        result={"nested": [1, "two", None, 3.5, {"é": True}]},
        stdout="out\n",
        stderr="err\n",
        cpu_seconds=0.25,
        max_rss_mb=12.5,
        attempt=2,
        pauses=[(10.5, 11.0), (11.5, None)],
    )


def fields_at_default(obj: Any) -> list[str]:
    """The fields of a record still at their default value. A round trip must set every
    field, or a field the store forgets would pass unseen."""
    if dataclasses.is_dataclass(obj):
        left = []
        for f in dataclasses.fields(obj):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                continue
            if getattr(obj, f.name) == default:
                left.append(f.name)
        return left
    return [  # a pydantic model
        name
        for name, info in type(obj).model_fields.items()
        if not info.is_required()
        and getattr(obj, name) == info.get_default(call_default_factory=True)
    ]


async def ids(store: Store, **filters: Any) -> list[str]:
    page, _ = await store.list_executions(limit=1000, **filters)
    return [r.execution_id for r in page]


async def tasks_by_id(store: Store) -> dict[str, StoredTask]:
    return {t.spec.task_id: t for t in await store.load_tasks()}


async def snapshot(store: Store) -> tuple[list[StoredTask], list[ExecutionRecord]]:
    page, _ = await store.list_executions(limit=1000)
    return await store.load_tasks(), page


async def fill(store: Store) -> None:
    """Ten finished records, e0..e9: odd ones of task a, even ones of b; e0, e3, e6, e9
    failed."""
    for i in range(10):
        rec = record(i, "a" if i % 2 else "b", Outcome.FAILED if i % 3 == 0 else Outcome.SUCCEEDED)
        await store.start_execution(rec, last_execution=rec.scheduled_at, next_due=None)


# -- tasks -------------------------------------------------------------------------------


async def test_a_task_round_trips_with_every_field(store: Store) -> None:
    full = full_task()
    assert fields_at_default(full) == []
    assert fields_at_default(full.spec) == []
    assert fields_at_default(full.counters) == []
    in_process = task("in_process")
    in_process.spec = spec("in_process", code=None)
    await store.insert_task(full)
    await store.insert_task(in_process)
    assert await store.load_tasks() == [in_process, full]


async def test_tasks_load_in_seq_order(store: Store) -> None:
    for task_id, seq in [("c", 3), ("a", 1), ("d", 4), ("b", 2)]:
        await store.insert_task(task(task_id, seq))
    assert [t.spec.task_id for t in await store.load_tasks()] == ["a", "b", "c", "d"]
    assert await store.load_tasks() == await store.load_tasks()


async def test_an_existing_task_id_raises_task_exists_and_changes_nothing(store: Store) -> None:
    await store.insert_task(task("a"))
    clash = task("a", seq=2)
    clash.spec = spec("a", name="Other")
    with pytest.raises(TaskExists) as raised:
        await store.insert_task(clash)
    assert raised.value.task_id == "a"
    assert raised.value.detail == "Task already exists: a"
    assert await store.load_tasks() == [task("a")]


async def test_concurrent_inserts_of_one_id_let_exactly_one_in(store: Store) -> None:
    outcomes: list[str] = []

    async def insert(seq: int) -> None:
        try:
            await store.insert_task(task("same", seq))
            outcomes.append("inserted")
        except TaskExists:
            outcomes.append("exists")

    async with trio.open_nursery() as nursery:
        for seq in range(5):
            nursery.start_soon(insert, seq)
    assert sorted(outcomes) == ["exists"] * 4 + ["inserted"]
    assert len(await store.load_tasks()) == 1


async def test_update_task_replaces_the_definition_and_next_due_only(store: Store) -> None:
    original = full_task()
    await store.insert_task(original)
    new_spec = spec("full", priority=Priority.LOW, code=None, repeat_hours=None)
    await store.update_task(new_spec, next_due=None)
    (stored,) = await store.load_tasks()
    assert stored.spec == new_spec
    assert stored.next_due is None
    expected = copy.deepcopy(original)
    expected.spec, expected.next_due = new_spec, None
    assert stored == expected  # counters, seq, paused, created_at and retry untouched


async def test_delete_task_forgets_the_task_and_keeps_its_history(store: Store) -> None:
    await store.insert_task(task("a"))
    await store.insert_task(task("b", 2))
    await store.start_execution(record(1, "a"), last_execution=1.0, next_due=None)
    await store.delete_task("a")
    assert list(await tasks_by_id(store)) == ["b"]
    assert await store.get_execution("e1") == record(1, "a")
    await store.insert_task(task("a", 3))  # the id is free again
    assert list(await tasks_by_id(store)) == ["b", "a"]


async def test_changes_to_an_unknown_task_change_nothing(store: Store) -> None:
    await store.insert_task(task("a"))
    before = await store.load_tasks()
    await store.update_task(spec("ghost"), next_due=1.0)
    await store.set_schedule("ghost", next_due=1.0, paused=True)
    await store.delete_task("ghost")
    assert await store.load_tasks() == before
    # Executions may name a task that is not stored (it was deleted meanwhile).
    await store.start_execution(record(1, "ghost"), last_execution=1.0, next_due=2.0)
    await store.finish_execution(record(1, "ghost"), TaskCounters(1, 1, 0))
    assert await store.load_tasks() == before
    assert await ids(store, task_id="ghost") == ["e1"]


async def test_set_schedule_sets_the_schedule_only(store: Store) -> None:
    original = full_task()
    await store.insert_task(original)
    await store.set_schedule("full", next_due=500.0, paused=False, retry_at=None)
    (stored,) = await store.load_tasks()
    assert (stored.next_due, stored.paused, stored.retry_at, stored.retry_attempt) == (
        500.0,
        False,
        None,
        0,
    )
    assert (stored.spec, stored.counters, stored.seq, stored.created_at) == (
        original.spec,
        original.counters,
        original.seq,
        original.created_at,
    )
    await store.set_schedule("full", next_due=None, paused=True, retry_at=510.0, retry_attempt=4)
    (stored,) = await store.load_tasks()
    assert (stored.next_due, stored.paused, stored.retry_at, stored.retry_attempt) == (
        None,
        True,
        510.0,
        4,
    )
    # paused None: the pause stays as stored (the scheduler's saves leave a user's alone)
    await store.set_schedule("full", next_due=520.0, paused=None, retry_at=None)
    (stored,) = await store.load_tasks()
    assert (stored.next_due, stored.paused, stored.retry_at) == (520.0, True, None)
    await store.set_schedule("full", next_due=530.0, paused=False)
    await store.set_schedule("full", next_due=540.0, paused=None)
    (stored,) = await store.load_tasks()
    assert (stored.next_due, stored.paused) == (540.0, False)


@pytest.fixture
def durable(backend: Backend) -> Backend:
    """A backend whose store is there again when its location is reopened. (A skip in an
    async test loses its reason under pytest-trio: this one is synchronous.)"""
    if not backend.durable:
        pytest.skip(f"{backend.name}: a new, empty store at each open, by design")
    return backend


async def test_what_is_stored_is_there_after_a_reopen(
    durable: Backend, location: str | Path
) -> None:
    async with open_store(location) as store:
        await store.insert_task(full_task())
        await store.set_schedule("full", next_due=600.0, paused=False, retry_at=610.0)
        await store.start_execution(full_record(), last_execution=10.25, next_due=600.0)
        expected = await snapshot(store)
    async with open_store(location) as store:
        assert await snapshot(store) == expected
        (stored,) = await store.load_tasks()
        assert (stored.next_due, stored.paused, stored.retry_at) == (600.0, False, 610.0)


async def test_probe_write_changes_nothing(store: Store) -> None:
    await store.probe_write()  # on an empty store too
    await store.insert_task(full_task())
    await fill(store)
    before = await snapshot(store)
    await store.probe_write()
    assert await snapshot(store) == before


# -- executions ----------------------------------------------------------------------------


async def test_an_execution_round_trips_with_every_field(store: Store) -> None:
    full = full_record()
    assert fields_at_default(full) == []
    await store.start_execution(full, last_execution=10.25, next_due=None)
    assert await store.get_execution("full-1") == full
    assert await store.get_execution("nope") is None
    running = record(2, "full", Outcome.RUNNING)  # the fields at their defaults, too
    await store.start_execution(running, last_execution=2.0, next_due=None)
    assert await store.get_execution("e2") == running


async def test_any_text_round_trips_nul_characters_too(store: Store) -> None:
    """A task may print a NUL byte (PostgreSQL's text cannot hold one: it is escaped, and
    so is the escape character)."""
    odd = "a\x00b\x01c\x01\x02d\x01\x01\x00"
    stored = task("odd")
    stored.spec = spec("odd", description=odd, name="\x01")
    await store.insert_task(stored)
    await store.update_task(spec("odd", description=odd + "!"), next_due=1.0)
    written = record(1, "odd", stdout=odd, stderr="\x00", reason=odd, result={odd: [odd]})
    await store.finish_execution(written, TaskCounters(1, 1, 0))
    ((loaded,),) = [await store.load_tasks()]
    assert loaded.spec.description == odd + "!"
    assert await store.get_execution("e1") == written
    assert await store.list_executions(task_id="odd") == ([written], 1)
    assert await store.recent_executions([registration("odd")], 5) == {
        registration("odd"): [written]
    }
    assert await store.get_execution("e1\x00") is None
    assert await store.known_executions(["e1", "e1\x00", "\x01"]) == {"e1"}
    assert await ids(store, task_id="odd\x00") == []


async def test_start_execution_sets_the_tasks_last_run_and_next_due(store: Store) -> None:
    original = full_task()
    await store.insert_task(original)
    await store.start_execution(
        record(1, "full", Outcome.RUNNING), last_execution=400.0, next_due=700.0
    )
    (stored,) = await store.load_tasks()
    assert (stored.counters.last_execution, stored.next_due) == (400.0, 700.0)
    assert stored.counters.execution_count == original.counters.execution_count
    assert (stored.spec, stored.paused, stored.retry_at) == (
        original.spec,
        original.paused,
        original.retry_at,
    )


async def test_finish_execution_replaces_the_record_and_sets_the_counters(store: Store) -> None:
    await store.insert_task(full_task())
    await store.start_execution(
        record(1, "full", Outcome.RUNNING), last_execution=400.0, next_due=700.0
    )
    final = record(1, "full", Outcome.SUCCEEDED, result={"ok": 1}, stdout="done")
    await store.finish_execution(final, TaskCounters(8, 6, 2, last_execution=999.0))
    assert await store.get_execution("e1") == final
    assert await store.list_executions() == ([final], 1)  # replaced, not added
    (stored,) = await store.load_tasks()
    assert stored.counters == TaskCounters(8, 6, 2, last_execution=999.0)
    assert stored.next_due == 700.0


async def test_close_interrupted_closes_running_records_and_counts_them(store: Store) -> None:
    await store.insert_task(task("a"))
    await store.insert_task(task("b", 2))
    a_counts = TaskCounters(3, 2, 1)
    await store.finish_execution(record(1, "a"), a_counts)
    for i, task_id in [(2, "a"), (3, "b"), (4, "a"), (5, "gone")]:
        await store.start_execution(
            record(i, task_id, Outcome.RUNNING), last_execution=float(i), next_due=None
        )
    # Written after e2, at the same time: listed before it, before and after the closing.
    await store.finish_execution(
        record(2, "b", execution_id="tie"), TaskCounters(1, 1, 0, last_execution=3.0)
    )
    order = await ids(store)
    assert order[-3:] == ["tie", "e2", "e1"]

    assert await store.close_interrupted(now=50.0) == 4
    for i in (2, 3, 4, 5):
        closed = await store.get_execution(f"e{i}")
        assert closed is not None
        assert (closed.outcome, closed.reason, closed.finished_at) == (
            Outcome.INTERRUPTED,
            INTERRUPTED_REASON,
            50.0,
        )
        assert closed.started_at == float(i)
    assert await store.get_execution("e1") == record(1, "a")
    stored = await tasks_by_id(store)
    assert stored["a"].counters == TaskCounters(5, 2, 3, last_execution=4.0)
    assert stored["b"].counters == TaskCounters(2, 1, 1, last_execution=3.0)
    assert await ids(store) == order  # closing moves nothing in the history
    assert await store.close_interrupted(now=60.0) == 0


async def test_the_process_of_a_running_record_is_kept_until_it_is_written_again(
    store: Store,
) -> None:
    await store.insert_task(task("a"))
    for i in (1, 2, 3):
        await store.start_execution(
            record(i, "a", Outcome.RUNNING), last_execution=float(i), next_due=None
        )
    await store.finish_execution(record(4, "a"), TaskCounters(1, 1))
    assert await store.running_processes() == {}
    await store.record_process("e1", RunProcess(101, "boot/11"))
    await store.record_process("e2", RunProcess(102, None))
    await store.record_process("e4", RunProcess(104, "boot/14"))  # finished: ignored
    await store.record_process("nope", RunProcess(105, "boot/15"))  # unknown: ignored
    assert await store.running_processes() == {
        "e1": RunProcess(101, "boot/11"),
        "e2": RunProcess(102, None),
    }
    assert await store.get_execution("e1") == record(1, "a", Outcome.RUNNING)  # not in it
    await store.finish_execution(record(2, "a"), TaskCounters(2, 2))
    assert await store.running_processes() == {"e1": RunProcess(101, "boot/11")}
    await store.close_interrupted(now=50.0)
    assert await store.running_processes() == {}
    assert await store.apply_retention(max_per_task=0, older_than=0.0) == 4


async def test_a_version_2_database_gets_the_process_columns(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    async with _sqlite.open_sqlite_store(path) as store:
        await store.insert_task(task("a"))
        await store.start_execution(
            record(1, "a", Outcome.RUNNING), last_execution=1.0, next_due=None
        )
    with sqlite3.connect(path) as db:  # as version 2 wrote it: no process columns
        for column in ("process_id", "process_start"):
            db.execute(f"ALTER TABLE executions DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 2")
    db.close()
    async with _sqlite.open_sqlite_store(path) as store:
        assert await store.running_processes() == {}
        await store.record_process("e1", RunProcess(7, "boot/7"))
        assert await store.running_processes() == {"e1": RunProcess(7, "boot/7")}
        assert await store.get_execution("e1") == record(1, "a", Outcome.RUNNING)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == _sqlite_schema.SCHEMA_VERSION
    db.close()


# -- registrations: a task id deleted and added again is another task ------------------------


async def test_a_run_of_an_earlier_registration_changes_no_task(store: Store) -> None:
    """A run in flight when its task is deleted, then added again under its id, ends
    later: its record is written, under its own registration, and the new task's counters
    and schedule are left alone; a crash's leftovers count for their own registration."""
    first, second = registration("a", 1), registration("a", 2)
    await store.insert_task(task("a"))
    await store.start_execution(record(1, "a", Outcome.RUNNING), last_execution=1.0, next_due=50.0)
    await store.start_execution(record(2, "a", Outcome.RUNNING), last_execution=2.0, next_due=50.0)
    await store.delete_task("a")
    await store.insert_task(task("a", 2, registration_id=second, created_at=300.0))
    fresh = (await tasks_by_id(store))["a"]
    await store.finish_execution(record(1, "a"), TaskCounters(9, 9, 0, last_execution=1.0))
    await store.start_execution(
        record(3, "a", Outcome.RUNNING), last_execution=3.0, next_due=60.0
    )  # (e3: of the first registration, and it has not started before its delete)
    assert (await tasks_by_id(store))["a"] == fresh
    assert (await store.get_execution("e1")) == record(1, "a")  # written all the same
    # A run of the new registration changes it.
    ours = record(4, "a", Outcome.RUNNING, registration_id=second, registered_at=300.0)
    await store.start_execution(ours, last_execution=4.0, next_due=70.0)
    # A crash: e2, e3 (first registration) and e4 (second) were left running.
    assert await store.close_interrupted(now=80.0) == 3
    stored = (await tasks_by_id(store))["a"]
    assert stored.counters == TaskCounters(1, 0, 1, last_execution=4.0)  # e4 only
    assert stored.next_due == 70.0 and stored.registration_id == second
    for execution_id, whose in (("e1", first), ("e2", first), ("e3", first), ("e4", second)):
        got = await store.get_execution(execution_id)
        assert got is not None and got.registration_id == whose, execution_id


async def test_the_history_can_be_read_by_registration(store: Store) -> None:
    """``registration_id`` selects one registration's runs (a task's history); with
    ``task_id`` alone, every registration of the id; with both, those of the registration
    if it is of that id."""
    first, second = registration("a", 1), registration("a", 2)
    for i in range(6):  # e0..e5: the first registration's, then the second's
        whose = first if i < 3 else second
        outcome = Outcome.FAILED if i in (1, 4) else Outcome.SUCCEEDED
        await store.finish_execution(record(i, "a", outcome, registration_id=whose), TaskCounters())
    await store.finish_execution(record(6, "b"), TaskCounters())
    await store.finish_execution(record(7, "a", registration_id=None), TaskCounters())
    assert await ids(store, registration_id=second) == ["e5", "e4", "e3"]
    assert await ids(store, registration_id=first) == ["e2", "e1", "e0"]
    assert await ids(store, task_id="a") == ["e7", "e5", "e4", "e3", "e2", "e1", "e0"]
    assert await ids(store, task_id="a", registration_id=second) == ["e5", "e4", "e3"]
    assert await ids(store, task_id="b", registration_id=second) == []
    assert await ids(store, registration_id=registration("nobody")) == []
    page, total = await store.list_executions(
        registration_id=second, outcome=Outcome.SUCCEEDED, limit=1, offset=1
    )
    assert [r.execution_id for r in page] == ["e3"] and total == 2
    page, total = await store.list_executions(registration_id=first, since=1, until=3, limit=1)
    assert [r.execution_id for r in page] == ["e2"] and total == 2
    assert await store.apply_retention(max_per_task=2, older_than=0.0) == 5  # per task id
    assert await ids(store, task_id="a") == ["e7", "e5"]
    assert await ids(store, registration_id=first) == []
    assert await ids(store, registration_id=second) == ["e5"]


async def test_a_version_3_database_gets_registrations(tmp_path: Path) -> None:
    """The step to version 4: each stored task gets a registration, its runs due since it
    was added get it too; the runs of deleted tasks, and those due before the stored task
    of their id was added (an earlier task under that id), get none (NULL: unknown)."""
    path = tmp_path / "v3.db"
    async with _sqlite.open_sqlite_store(path) as store:
        await store.insert_task(task("a"))  # created at 100
        await store.insert_task(task("b", 2, created_at=5.0))
        for i, task_id, outcome in [
            (50, "a", Outcome.FAILED),  # before a was added: an earlier a's
            (100, "a", Outcome.SUCCEEDED),  # due as it was added: its first run
            (150, "a", Outcome.SUCCEEDED),
            (160, "a", Outcome.RUNNING),  # a crash left it running
            (10, "b", Outcome.SUCCEEDED),
            (120, "gone", Outcome.SUCCEEDED),  # its task was deleted
        ]:
            await store.finish_execution(record(i, task_id, outcome), TaskCounters())
        await store.set_schedule("a", next_due=None, paused=True)
    with sqlite3.connect(path) as db:  # as version 3 wrote it: no registrations
        db.execute("DROP INDEX executions_by_registration")
        for table, column in [
            ("tasks", "registration_id"),
            ("executions", "registration_id"),
            ("executions", "registered_at"),
        ]:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 3")
    db.close()

    async with _sqlite.open_sqlite_store(path) as store:
        tasks = await tasks_by_id(store)
        a, b = tasks["a"].registration_id, tasks["b"].registration_id
        assert re.fullmatch("[0-9a-f]{32}", a) and re.fullmatch("[0-9a-f]{32}", b) and a != b
        assert tasks["a"].paused and tasks["a"].created_at == 100.0  # the rest as it was
        assert await ids(store, registration_id=a) == ["e160", "e150", "e100"]
        assert await ids(store, registration_id=b) == ["e10"]
        for execution_id in ("e50", "e120"):
            unknown = await store.get_execution(execution_id)
            assert unknown is not None
            assert (unknown.registration_id, unknown.registered_at) == (None, None)
        mine = await store.get_execution("e150")
        assert mine == record(150, "a", registration_id=a, registered_at=100.0)
        assert await ids(store, task_id="a") == ["e160", "e150", "e100", "e50"]
        # The crash's leftover counts for a; the unknown runs count for no task.
        assert await store.close_interrupted(now=200.0) == 1
        assert (await tasks_by_id(store))["a"].counters.failure_count == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == _sqlite_schema.SCHEMA_VERSION
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM executions WHERE registration_id = ?"
            " ORDER BY scheduled_at DESC",
            (a,),
        ).fetchall()
    db.close()
    assert "executions_by_registration" in str(plan)
    async with _sqlite.open_sqlite_store(path) as store:  # once only: the ids stay
        assert (await tasks_by_id(store))["a"].registration_id == a


async def test_history_is_newest_first_and_filtered(store: Store) -> None:
    await fill(store)
    page, total = await store.list_executions(limit=3)
    assert total == 10
    assert [r.execution_id for r in page] == ["e9", "e8", "e7"]
    page, total = await store.list_executions(task_id="a", outcome=Outcome.FAILED)
    assert [r.execution_id for r in page] == ["e9", "e3"] and total == 2
    page, total = await store.list_executions(since=4, until=6, offset=1)
    assert [r.execution_id for r in page] == ["e4"] and total == 2
    assert await ids(store, task_id="b") == ["e8", "e6", "e4", "e2", "e0"]
    assert await ids(store, outcome=Outcome.SUCCEEDED, since=5) == ["e8", "e7", "e5"]
    assert await ids(store, until=2.5) == ["e2", "e1", "e0"]
    assert await ids(store, since=3, until=3) == []
    assert await ids(store, since=7, until=3) == []
    assert await ids(store, task_id="nobody") == []
    assert await ids(store, outcome=Outcome.RUNNING) == []


async def test_history_is_filtered_by_node(store: Store) -> None:
    """Each record names the daemon that ran it; one written before nodes were kept names
    none and matches no node."""
    for i, node in enumerate(["laptop", "desktop", None, "laptop", "desktop"]):
        await store.finish_execution(record(i, node=node), TaskCounters())
    assert await ids(store, node="laptop") == ["e3", "e0"]
    assert await ids(store, node="desktop", since=2) == ["e4"]
    assert await ids(store, node="desktop", outcome=Outcome.FAILED) == []
    assert await ids(store, node="server") == []
    page, total = await store.list_executions(node="laptop", limit=1, offset=1)
    assert [r.execution_id for r in page] == ["e0"] and total == 2
    assert (await store.get_execution("e2") or full_record()).node is None


async def test_a_version_4_database_gets_the_node_of_each_run(tmp_path: Path) -> None:
    """The step to version 5: the executions gain ``node``; the runs recorded before name
    none (NULL: not known), and the tasks are as they were."""
    path = tmp_path / "v4.db"
    async with _sqlite.open_sqlite_store(path) as store:
        await store.insert_task(task("a"))
        await store.finish_execution(record(1, node="laptop"), TaskCounters(1, 1, 0, 1.0))
    with sqlite3.connect(path) as db:  # as version 4 wrote it: no node
        db.execute("DROP INDEX executions_by_node")
        db.execute("ALTER TABLE executions DROP COLUMN node")
        db.execute("PRAGMA user_version = 4")
    db.close()

    async with _sqlite.open_sqlite_store(path) as store:
        assert await store.get_execution("e1") == record(1)  # node None: not known
        assert (await tasks_by_id(store))["a"].counters.success_count == 1
        await store.finish_execution(record(2, node="desktop"), TaskCounters())
        assert await ids(store, node="desktop") == ["e2"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 5
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM executions WHERE node = ? ORDER BY scheduled_at DESC",
            ("desktop",),
        ).fetchall()
    db.close()
    assert "executions_by_node" in str(plan)


async def test_history_pages_add_up_to_the_whole(store: Store) -> None:
    await fill(store)
    everything = await ids(store)
    for filters in [{}, {"task_id": "a"}, {"outcome": Outcome.SUCCEEDED}, {"since": 2.0}]:
        whole = await ids(store, **filters)
        pages: list[str] = []
        for offset in range(0, 12, 3):
            page, total = await store.list_executions(limit=3, offset=offset, **filters)
            assert total == len(whole), filters
            pages += [r.execution_id for r in page]
        assert pages == whole, filters
        assert set(whole) <= set(everything)
    assert await store.list_executions(limit=0) == ([], 10)
    assert await store.list_executions(offset=10) == ([], 10)
    assert await store.list_executions(offset=50, outcome=Outcome.FAILED) == ([], 4)


async def test_recent_executions_are_each_registrations_latest_finished_newest_first(
    store: Store,
) -> None:
    await fill(store)
    running = record(20, "a", Outcome.RUNNING)
    await store.start_execution(running, last_execution=20.0, next_due=None)
    # A later registration of a: its runs are not the first one's, nor the other way.
    again = registration("a", 2)
    await store.finish_execution(record(21, "a", registration_id=again), TaskCounters())
    a, b = registration("a"), registration("b")
    recent = await store.recent_executions([a, b, again, registration("nobody")], 3)
    assert {key: [r.execution_id for r in page] for key, page in recent.items()} == {
        a: ["e9", "e7", "e5"],  # e20 runs: not finished
        b: ["e8", "e6", "e4"],
        again: ["e21"],
    }
    assert recent[a][0] == record(9, "a", Outcome.FAILED)
    assert await store.recent_executions([], 3) == {}


async def test_known_executions_are_the_ids_with_a_record(store: Store) -> None:
    await fill(store)
    asked = [f"e{i}" for i in range(0, 1200, 2)]  # more than one SQL statement's parameters
    assert await store.known_executions(asked) == {"e0", "e2", "e4", "e6", "e8"}
    assert await store.known_executions([]) == set()


async def test_equal_times_list_the_last_written_first(store: Store) -> None:
    for i in (1, 2, 3):
        await store.start_execution(
            record(i, outcome=Outcome.RUNNING, scheduled_at=5.0), last_execution=5.0, next_due=None
        )
    assert await ids(store) == ["e3", "e2", "e1"]
    await store.finish_execution(record(1, scheduled_at=5.0), TaskCounters(1, 1, 0))
    assert await ids(store) == ["e1", "e3", "e2"]
    assert await ids(store, task_id="a", since=5.0, until=5.5) == ["e1", "e3", "e2"]


async def test_retention_by_count_and_age_spares_running_records(store: Store) -> None:
    await fill(store)
    running = record(0, outcome=Outcome.RUNNING, execution_id="live")
    await store.start_execution(running, last_execution=0.0, next_due=None)
    deleted = await store.apply_retention(max_per_task=2, older_than=2.0)
    assert deleted == 6
    assert sorted(await ids(store)) == ["e6", "e7", "e8", "e9", "live"]
    await store.optimize()
    assert sorted(await ids(store)) == ["e6", "e7", "e8", "e9", "live"]


async def test_retention_by_count_alone_keeps_the_newest_finished(store: Store) -> None:
    await fill(store)
    # A running record, the newest of a: neither deleted nor counted.
    await store.start_execution(
        record(20, "a", Outcome.RUNNING), last_execution=20.0, next_due=None
    )
    await store.finish_execution(record(21, "a", Outcome.SKIPPED), TaskCounters())
    assert await store.apply_retention(max_per_task=3, older_than=0.0) == 5
    assert await ids(store, task_id="a") == ["e21", "e20", "e9", "e7"]
    assert await ids(store, task_id="b") == ["e8", "e6", "e4"]
    assert await store.apply_retention(max_per_task=3, older_than=0.0) == 0


async def test_retention_by_age_alone(store: Store) -> None:
    await fill(store)
    running = record(1, "c", Outcome.RUNNING, execution_id="c1")
    await store.start_execution(running, last_execution=1.0, next_due=None)
    assert await store.apply_retention(max_per_task=1000, older_than=4.0) == 4
    assert await ids(store) == ["e9", "e8", "e7", "e6", "e5", "e4", "c1"]


async def test_retention_in_steps_gives_the_same_answer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many records: the backends work in steps (SQLite: chunks of rows, each its own
    transaction; memory: a checkpoint every few records)."""
    monkeypatch.setattr(_sqlite, "RETENTION_CHUNK", 7)
    monkeypatch.setattr(_memory, "STEP", 7)
    monkeypatch.setattr(_postgres, "RETENTION_CHUNK", 7)
    for i in range(60):
        await store.finish_execution(record(i, f"t{i % 4}"), TaskCounters())
        await store.insert_task(task(f"x{i}", seq=i))
    assert await store.apply_retention(max_per_task=5, older_than=10.0) == 40
    assert await ids(store) == [f"e{i}" for i in range(59, 39, -1)]
    assert [t.spec.task_id for t in await store.load_tasks()] == [f"x{i}" for i in range(60)]


async def test_optimize_keeps_everything(store: Store) -> None:
    await store.insert_task(full_task())
    await fill(store)
    before = await snapshot(store)
    await store.optimize()
    assert await snapshot(store) == before


# -- the contract's general rules ----------------------------------------------------------


async def test_the_store_keeps_copies(store: Store) -> None:
    """Changing what went in, or what came out, does not change what is stored."""
    given = full_task()
    await store.insert_task(given)
    given.counters.execution_count = 99
    given.next_due = -1.0
    (loaded,) = await store.load_tasks()
    assert loaded == full_task()
    loaded.counters.success_count = 99
    loaded.paused = False
    assert await store.load_tasks() == [full_task()]

    rec = full_record()
    await store.start_execution(rec, last_execution=0.0, next_due=None)
    rec.result["nested"].append("more")
    rec.pauses.append((1.0, 2.0))
    rec.stdout = "changed"
    got = await store.get_execution("full-1")
    assert got == full_record()
    assert got is not None
    got.result["nested"].clear()
    got.outcome = Outcome.KILLED
    (listed,), _ = await store.list_executions()
    assert listed == full_record()
    listed.pauses.clear()
    assert await store.get_execution("full-1") == full_record()


async def test_a_call_cancelled_before_it_starts_changes_nothing(store: Store) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.insert_task(task("a"))
    assert scope.cancelled_caught
    assert await store.load_tasks() == []


async def test_refused_writes_raise_store_unavailable_and_change_nothing(
    store: Store, backend: Backend
) -> None:
    await store.insert_task(full_task())
    await store.insert_task(task("a", 2))
    await fill(store)
    await store.start_execution(record(30, "a", Outcome.RUNNING), last_execution=30, next_due=1)
    before = await snapshot(store)
    await backend.refuse(store, True)

    writes: dict[str, Callable[[], Awaitable[object]]] = {
        "insert_task": lambda: store.insert_task(task("new", 3)),
        "update_task": lambda: store.update_task(spec("a", name="New"), next_due=5.0),
        "delete_task": lambda: store.delete_task("a"),
        "probe_write": store.probe_write,
        "set_schedule": lambda: store.set_schedule("a", next_due=9.0, paused=True),
        "start_execution": lambda: store.start_execution(
            record(40, "a", Outcome.RUNNING), last_execution=40.0, next_due=41.0
        ),
        "finish_execution": lambda: store.finish_execution(record(30, "a"), TaskCounters(1, 1)),
        "close_interrupted": lambda: store.close_interrupted(99.0),
        "record_process": lambda: store.record_process("e30", RunProcess(1, "b/1")),
        "apply_retention": lambda: store.apply_retention(max_per_task=1, older_than=5.0),
    }
    for name, write in writes.items():
        with pytest.raises(StoreUnavailable) as refused:
            await write()
        assert re.fullmatch(backend.refusal, refused.value.reason), (name, refused.value)
        assert isinstance(refused.value, StoreError), name  # HTTP 503 if it gets that far
        assert await snapshot(store) == before, name  # reads still work

    await backend.refuse(store, False)
    await store.probe_write()
    await store.set_schedule("a", next_due=9.0, paused=True)
    assert (await tasks_by_id(store))["a"].paused


# -- choosing a backend ------------------------------------------------------------------------


async def test_open_store_picks_the_backend_from_the_location(tmp_path: Path) -> None:
    async with open_store(tmp_path / "a.db") as store:
        assert isinstance(store, SQLiteStore)
    async with open_store(str(tmp_path / "b.db")) as store:
        assert isinstance(store, SQLiteStore)
    assert (tmp_path / "a.db").is_file() and (tmp_path / "b.db").is_file()
    for url in ("memory://", ":memory:"):
        async with open_store(url) as store:
            assert isinstance(store, MemoryStore)
    assert not (Path.cwd() / ":memory:").exists()
    with pytest.raises(StartupError, match=r"unknown database 'mysql://u:\*\*\*@x/db'"):
        open_store("mysql://u:pass@x/db")  # (the password masked)


async def test_each_memory_store_starts_empty() -> None:
    async with open_store("memory://") as store:
        await store.insert_task(task("a"))
    async with open_store("memory://") as store:
        assert await store.load_tasks() == []


async def test_a_sqlite_database_is_used_by_one_store_at_a_time(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db.sqlite"):
        with pytest.raises(StartupError, match="another omnimind daemon is using"):
            async with open_store(tmp_path / "db.sqlite"):
                pass  # pragma: no cover


async def test_a_file_that_is_not_a_database_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "db.sqlite").write_bytes(b"not a database, " * 512)
    with pytest.raises(StartupError, match="is not a SQLite database"):
        async with open_store(tmp_path / "db.sqlite"):
            pass  # pragma: no cover
    assert (tmp_path / "db.sqlite").read_bytes() == b"not a database, " * 512


def test_settings_name_the_database_location(tmp_path: Path) -> None:
    default = Settings(home=tmp_path)
    assert default.database_location == default.database_path == tmp_path / "omnimind.db"
    in_file = Settings(home=tmp_path, database=str(tmp_path / "x.db"))
    assert in_file.database_path == tmp_path / "x.db"
    in_memory = Settings(home=tmp_path, database="memory://")
    assert in_memory.database_location == "memory://"
    with pytest.raises(ValueError, match="not a file"):
        in_memory.database_path  # noqa: B018


# -- the memory backend's own promises ----------------------------------------------------------


async def test_a_large_memory_store_loads_without_blocking_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_memory, "STEP", 10)
    store = MemoryStore()
    for seq in range(95):
        await store.insert_task(task(f"t{seq}", seq))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        loaded = await store.load_tasks()
        nursery.cancel_scope.cancel()
    assert [t.seq for t in loaded] == list(range(95))
    assert ticks >= 5  # it ran between the steps


async def test_memory_refusal_can_be_switched_off() -> None:
    store = MemoryStore()
    store.refuse_writes("database or disk is full")
    with pytest.raises(StoreUnavailable, match=r"unavailable \(database or disk is full\)"):
        await store.insert_task(task("a"))
    assert await store.load_tasks() == []
    store.refuse_writes(None)
    await store.insert_task(task("a"))
    assert len(await store.load_tasks()) == 1
