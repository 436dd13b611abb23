"""The daemon as embedders use it: open_daemon, in-process tasks, state, persistence."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from omnimind_trio import (
    DaemonState,
    ExecutionNotFound,
    FakeSource,
    InvalidInput,
    Outcome,
    Priority,
    Settings,
    StartupError,
    StoreError,
    TaskExists,
    open_daemon,
)
from omnimind_trio.daemon import Daemon
from omnimind_trio.daemon import _writes as writes
from omnimind_trio.exceptions import Conflict, StoreUnavailable
from omnimind_trio.models import ExecutionRecord, TaskSpec, Trigger
from omnimind_trio.scheduling import TrioWallClock
from omnimind_trio.store import MemoryStore, SQLiteStore

from .conftest import leave_a_running_record, make_settings, task_ids

NOON = datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def code_task(
    task_id: str, code: str, priority: Priority = Priority.CRITICAL, **kw: Any
) -> TaskSpec:
    return TaskSpec(task_id, task_id.title(), "test task", priority, code, **kw)


async def wait_for(predicate: Any, seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.01)


async def history(daemon: Daemon, task_id: str) -> list[ExecutionRecord]:
    records, _ = await daemon._store.list_executions(task_id=task_id)
    return records


async def test_embedding_an_in_process_task(settings: Settings, source: FakeSource) -> None:
    calls: list[float] = []

    async def heartbeat() -> dict[str, Any]:
        calls.append(trio.current_time())
        return {"beats": len(calls)}

    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.register("heartbeat", heartbeat, name="Heartbeat", priority=Priority.CRITICAL)
        with pytest.raises(TaskExists):
            await daemon.register("heartbeat", heartbeat, name="Again")
        await wait_for(lambda: daemon.get_task("heartbeat").success_count == 1)
        [record] = await history(daemon, "heartbeat")
        assert record.outcome is Outcome.SUCCEEDED
        assert record.result == {"beats": 1}
        assert record.trigger is Trigger.SCHEDULE
    assert not daemon.running
    assert daemon.state.value == "stopped"


async def test_in_process_failure_and_timeout_are_recorded(
    settings: Settings, source: FakeSource, daemon_clock: trio.testing.MockClock
) -> None:

    async def broken() -> None:
        raise ValueError("no luck")

    async def slow() -> None:
        await trio.sleep(3600)

    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.register("broken", broken, name="Broken", priority=Priority.CRITICAL)
        await daemon.register(
            "slow", slow, name="Slow", priority=Priority.CRITICAL, timeout_seconds=10
        )
        await trio.sleep(11)
        [failed] = await history(daemon, "broken")
        [timed_out] = await history(daemon, "slow")
    assert failed.outcome is Outcome.FAILED
    assert failed.reason is not None and "ValueError: no luck" in failed.reason
    assert timed_out.outcome is Outcome.TIMED_OUT
    assert timed_out.reason == "timed out after 10 s"


async def test_state_follows_the_work(tmp_path: Path, daemon_clock: trio.testing.MockClock) -> None:
    before_midnight = datetime(2026, 1, 1, 23, 59, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    release = trio.Event()

    async def blocker() -> None:
        await release.wait()

    async with open_daemon(
        make_settings(tmp_path, sleep_window="00:00-06:00"),
        metrics_source=FakeSource(cpu_percent=90),
        clock=TrioWallClock(before_midnight),
        autostart=False,
    ) as daemon:
        assert daemon.state.value == "stopped"
        await daemon.start()
        assert daemon.state.value == "idle"
        await daemon.register("blocker", blocker, name="Blocker", priority=Priority.CRITICAL)
        await trio.sleep(0.1)
        assert daemon.state.value == "working"
        assert daemon.status().json_body()["state"] == "working"
        release.set()
        await trio.sleep(0.1)
        assert daemon.state.value == "idle"
        await trio.sleep(61)  # past midnight: the sleep window
        assert daemon.state.value == "sleeping"
        assert daemon.status().json_body()["metrics"]["is_sleep_time"] is True
        assert daemon.stop()
        assert daemon.state.value == "shutting_down"
        await daemon.wait_stopped()
        assert daemon.state.value == "stopped"
        assert daemon.status().json_body()["running"] is False


async def test_is_idle_reports_the_idle_gate_with_its_dwell(
    tmp_path: Path, daemon_clock: trio.testing.MockClock
) -> None:
    source = FakeSource(cpu_percent=90)
    settings = make_settings(tmp_path, gate_open_seconds=5, gate_close_seconds=2)
    async with open_daemon(settings, metrics_source=source, clock=TrioWallClock(NOON)) as daemon:
        await trio.sleep(10)
        assert daemon.status().json_body()["metrics"]["is_idle"] is False
        # The change is first seen by the next sample, at most one interval (1 s) later.
        source.cpu_percent = 5
        await trio.sleep(4.9)
        assert daemon.status().json_body()["metrics"]["is_idle"] is False
        await trio.sleep(1.6)
        assert daemon.status().json_body()["metrics"]["is_idle"] is True
        source.cpu_percent = 90
        await trio.sleep(1.9)
        assert daemon.status().json_body()["metrics"]["is_idle"] is True
        await trio.sleep(1.6)
        assert daemon.status().json_body()["metrics"]["is_idle"] is False


async def test_tasks_and_counters_survive_a_restart(settings: Settings, source: FakeSource) -> None:
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.add_task(code_task("ran", "def execute():\n    return 1", repeat_hours=2))
        await daemon.add_task(code_task("waits", "def execute():\n    return 2", Priority.LOW))
        await wait_for(lambda: daemon.get_task("ran").success_count == 1)
        listed = daemon.list_tasks().tasks
    async with open_daemon(settings, metrics_source=source) as daemon:
        assert daemon.list_tasks().tasks == listed
        assert daemon.get_task("ran").success_count == 1
        # Not run again: its next run is two hours after the first.
        await trio.sleep(0.2)
        assert daemon.get_task("ran").execution_count == 1
        assert len(await history(daemon, "ran")) == 1


async def test_the_daemon_runs_on_a_memory_store(tmp_path: Path, source: FakeSource) -> None:
    """``database="memory://"``: the same daemon, with nothing written to disk."""
    settings = make_settings(tmp_path, database="memory://")
    async with open_daemon(settings, metrics_source=source) as daemon:
        assert isinstance(daemon._store, MemoryStore)
        await daemon.add_task(code_task("job", "def execute():\n    return {'n': 42}\n"))
        with pytest.raises(TaskExists):
            await daemon.add_task(code_task("job", "def execute():\n    return 0\n"))
        entry = daemon._scheduler.get("job")
        await wait_for(lambda: entry.counters.success_count == 1)
        await wait_for(lambda: daemon.state is DaemonState.IDLE)
        [record] = await history(daemon, "job")
        assert (record.outcome, record.result) == (Outcome.SUCCEEDED, {"n": 42})
        assert await daemon.get_execution(record.execution_id) == record
        await daemon.pause_task("job")
        assert [t.paused for t in await daemon._store.load_tasks() if t.spec.task_id == "job"] == [
            True
        ]
        await daemon.delete_task("job")
        assert daemon.status().state == "idle"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("omnimind.db")]


async def test_a_store_handed_to_the_daemon_outlives_it(
    settings: Settings, source: FakeSource
) -> None:
    """``open_daemon(store=...)``: the caller owns the store, so what one daemon saved is
    there for the next (a restart, in memory), runs it left open included."""
    store = MemoryStore()
    async with open_daemon(settings, metrics_source=source, store=store) as daemon:
        await daemon.add_task(code_task("ran", "def execute():\n    return 1", repeat_hours=2))
        await daemon.add_task(code_task("waits", "def execute():\n    return 2", Priority.LOW))
        await wait_for(lambda: daemon.get_task("ran").success_count == 1)
        listed = daemon.list_tasks().tasks
        waits = daemon.get_task("waits")
    dead = ExecutionRecord(
        execution_id="dead",
        task_id="waits",
        registration_id=waits.registration_id,
        registered_at=waits.created_at,
        trigger=Trigger.SCHEDULE,
        outcome=Outcome.RUNNING,
        scheduled_at=1.0,
        started_at=1.0,
    )
    await store.start_execution(dead, last_execution=1.0, next_due=None)  # as a crash leaves
    async with open_daemon(settings, metrics_source=source, store=store) as daemon:
        summaries = daemon.list_tasks().tasks
        assert summaries[:-1] == listed[:-1]  # "waits", last, counts its interrupted run
        assert daemon.get_task("ran").execution_count == 1
        assert daemon.get_task("waits").failure_count == 1
        closed = await daemon.get_execution("dead")
        assert closed.outcome is Outcome.INTERRUPTED
    assert not settings.database_path.exists()  # the settings' file was never opened


async def test_runs_left_open_by_a_crash_are_closed_as_interrupted(
    settings: Settings, source: FakeSource
) -> None:
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        await daemon.add_task(code_task("victim", "def execute():\n    return 1", Priority.LOW))
    await leave_a_running_record(settings, "victim", "dead")
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        record2 = await daemon._store.get_execution("dead")
        counters = daemon._scheduler.tasks["victim"].counters
    assert record2 is not None and record2.outcome is Outcome.INTERRUPTED
    assert record2.finished_at is not None
    assert (counters.execution_count, counters.failure_count) == (1, 1)


async def test_stop_kills_running_executions_and_records_them_cancelled(
    daemon: Daemon, tmp_path: Path
) -> None:
    code = (
        "def execute():\n    import os, time\n"
        f"    open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)"
    )
    await daemon.add_task(code_task("sleeper", code))
    await wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text())
    pid = int((tmp_path / "pid").read_text())
    started = trio.current_time()
    assert daemon.stop()
    assert not daemon.stop()  # already stopping
    await daemon.wait_stopped()
    assert trio.current_time() - started < 1.0
    [record] = await history(daemon, "sleeper")
    assert record.outcome is Outcome.CANCELLED
    assert record.reason == "the daemon was stopped"
    await trio.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    counters = daemon._scheduler.tasks["sleeper"].counters
    assert (counters.execution_count, counters.failure_count) == (1, 1)
    # And it comes back.
    assert await daemon.start()
    await daemon.add_task(code_task("after", "def execute():\n    return 'again'"))
    await wait_for(lambda: daemon.get_task("after").success_count == 1)


async def test_stop_signals_and_wait_stopped_waits_even_during_a_start(
    settings: Settings, source: FakeSource
) -> None:
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        assert not daemon.stop()  # not running
        await daemon.wait_stopped()  # at once
        results: list[bool] = []
        with daemon.subscribe() as events:
            async with trio.open_nursery() as nursery:

                async def start() -> None:
                    results.append(await daemon.start())

                nursery.start_soon(start)
                async for message in events:
                    if message.state == "initializing":
                        break
                assert daemon.stop()  # the supervisor is not up yet: it never comes up
                await daemon.wait_stopped()
        assert results == [True]
        assert not daemon.running
        assert daemon.state.value == "stopped"
        assert await daemon.start()
        assert daemon.running
        assert daemon.stop()
        assert await daemon.start()  # waits for the stop under way, then starts again
        assert daemon.running


async def test_code_task_timeout_and_output_are_recorded(daemon: Daemon) -> None:
    code = "def execute():\n    print('working', flush=True)\n    while True:\n        pass"
    await daemon.add_task(code_task("spin", code, timeout_seconds=0.3))
    await wait_for(lambda: daemon.get_task("spin").execution_count == 1)
    [record] = await history(daemon, "spin")
    assert record.outcome is Outcome.TIMED_OUT
    assert record.reason == "timed out after 0.3 s"
    assert record.stdout == "working\n"
    assert record.duration_seconds is not None and 0.3 <= record.duration_seconds < 1.5


async def test_the_async_example_of_the_api_document(daemon: Daemon) -> None:
    code = (
        "async def execute():\n    import asyncio\n    await asyncio.sleep(1)\n"
        '    return {"status": "completed", "waited": "1 second"}'
    )
    await daemon.add_task(code_task("async_example", code))
    await wait_for(lambda: daemon.get_task("async_example").execution_count == 1)
    [record] = await history(daemon, "async_example")
    assert record.outcome is Outcome.SUCCEEDED
    assert record.result == {"status": "completed", "waited": "1 second"}


async def test_database_optimization_is_a_real_task(tmp_path: Path, source: FakeSource) -> None:
    settings = make_settings(tmp_path, history_max_per_task=2)
    async with open_daemon(settings, metrics_source=source) as daemon:
        tasks = daemon._scheduler.tasks
        await wait_for(lambda: tasks["database_optimization"].counters.success_count == 1)
        await daemon.add_task(code_task("t0", "def execute():\n    return 1"))
        for runs in (1, 2, 3):
            await wait_for(
                lambda runs=runs: (
                    tasks["t0"].running is None and tasks["t0"].counters.execution_count == runs
                )
            )
            if runs < 3:
                daemon._scheduler.run_now("t0")
        assert len(await history(daemon, "t0")) == 3
        daemon._scheduler.run_now("database_optimization")
        await wait_for(lambda: tasks["database_optimization"].counters.success_count == 2)
        newest = (await history(daemon, "database_optimization"))[0]
        assert newest.result == {"status": "completed", "deleted_executions": 1}
        assert len(await history(daemon, "t0")) == 2


async def test_one_daemon_per_database(settings: Settings, source: FakeSource) -> None:
    async with open_daemon(settings, metrics_source=source, autostart=False):
        with pytest.raises(StartupError, match="another omnimind daemon is using"):
            async with open_daemon(settings, metrics_source=source, autostart=False):
                pass  # pragma: no cover


async def test_a_missing_workspace_is_a_clear_startup_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workspace=tmp_path / "nope")
    with pytest.raises(StartupError, match="is not a directory"):
        async with open_daemon(settings, metrics_source=FakeSource()):
            pass  # pragma: no cover


async def test_database_and_its_journal_are_private(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.add_task(code_task("x", "def execute():\n    return 1"))
    for path in tmp_path.glob("omnimind.db*"):
        assert path.stat().st_mode & 0o077 == 0, path


async def test_tasks_never_see_the_dashboard_credentials(
    tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIMIND_DASHBOARD_PASS", "hunter2")
    monkeypatch.setenv("OMNIMIND_VIEWER_USER", "peeker")
    monkeypatch.setenv("OMNIMIND_VIEWER_PASS", "hunter3")
    async with open_daemon(make_settings(tmp_path), metrics_source=source) as daemon:
        code = (
            "def execute():\n    import os\n    return os.environ.get('OMNIMIND_DASHBOARD_PASS')"
            " or os.environ.get('OMNIMIND_VIEWER_PASS')"
        )
        await daemon.add_task(code_task("snoop", code))
        await wait_for(lambda: daemon.get_task("snoop").execution_count == 1)
        [record] = await history(daemon, "snoop")
    assert record.outcome is Outcome.SUCCEEDED and record.result is None


PY312 = Path(os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python3.12"))


@pytest.mark.skipif(not PY312.exists(), reason="needs a Python 3.12 interpreter")
async def test_a_312_task_interpreter_accepts_312_syntax(
    tmp_path: Path, source: FakeSource
) -> None:
    settings = make_settings(tmp_path, task_python=str(PY312))
    async with open_daemon(settings, metrics_source=source) as daemon:
        code = "type Num = int\ndef execute():\n    import sys\n    return sys.version_info[1]"
        await daemon.add_task(code_task("modern", code))
        with pytest.raises(InvalidInput, match="Syntax error in code at line 1"):
            await daemon.add_task(code_task("broken", "def execute(:\n    pass"))
        await wait_for(lambda: daemon.get_task("modern").execution_count == 1)
        [record] = await history(daemon, "modern")
    assert (record.outcome, record.result) == (Outcome.SUCCEEDED, 12)


async def test_a_patched_in_process_task_keeps_its_changes_across_restarts(
    settings: Settings, source: FakeSource
) -> None:
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        changes = {"priority": "LOW", "repeat_hours": 24}
        await daemon.update_task("database_optimization", changes)
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        task = daemon.get_task("database_optimization")
        assert (task.priority, task.repeat_hours) == (Priority.LOW, 24)


async def test_a_pending_retry_survives_a_restart(tmp_path: Path, source: FakeSource) -> None:
    settings = make_settings(tmp_path, retry_base_seconds=600)
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.add_task(code_task("flaky", "def execute():\n    1 / 0", max_retries=2))
        await wait_for(lambda: daemon._scheduler.tasks["flaky"].retry_at is not None)
        retry_at = daemon._scheduler.tasks["flaky"].retry_at

        async def stored_retry() -> float | None:
            by_id = {t.spec.task_id: t for t in await daemon._store.load_tasks()}
            return by_id["flaky"].retry_at

        with trio.fail_after(5):  # the schedule is written in the background
            while await stored_retry() != retry_at:
                await trio.sleep(0.01)
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        entry = daemon._scheduler.tasks["flaky"]
        assert (entry.retry_at, entry.retry_attempt) == (retry_at, 1)
        assert entry.status == "scheduled"
        explained = daemon._scheduler.explain(entry) or {}
        assert explained["reason"] == "backoff"


# -- a database that refuses writes -------------------------------------------------


async def read_only(daemon: Daemon, on: bool = True) -> None:
    """Every write fails with 'attempt to write a readonly database': SQLite's own switch,
    or the memory store's."""
    store = daemon._store
    if isinstance(store, MemoryStore):
        store.refuse_writes("attempt to write a readonly database" if on else None)
        return
    assert isinstance(store, SQLiteStore)
    db = store._db
    await store._run(lambda: db.execute(f"PRAGMA query_only = {int(on)}"))


@pytest.fixture(params=["sqlite", "memory"])
async def any_daemon(
    request: pytest.FixtureRequest, tmp_path: Path, source: FakeSource
) -> AsyncIterator[Daemon]:
    """A daemon on each store backend."""
    database = tmp_path / "omnimind.db" if request.param == "sqlite" else "memory://"
    async with open_daemon(make_settings(tmp_path, database=database), metrics_source=source) as d:
        yield d


async def stored(daemon: Daemon) -> dict[str, Any]:
    return {t.spec.task_id: t for t in await daemon._store.load_tasks()}


async def test_a_refused_write_changes_nothing_and_says_so(any_daemon: Daemon) -> None:
    """Disk full, read-only file system, I/O error: the change is not made, in memory or
    on disk, and the caller is told why (StoreError, HTTP 503)."""
    daemon = any_daemon
    await daemon.add_task(code_task("keep", "def execute():\n    return 1\n", Priority.LOW))
    await daemon.pause_task("keep")
    before = await stored(daemon)
    await read_only(daemon)

    attempts = {
        "add": lambda: daemon.add_task(code_task("new", "def execute():\n    return 2\n")),
        "resume": lambda: daemon.resume_task("keep"),
        "update": lambda: daemon.update_task("keep", {"priority": "HIGH"}),
        "delete": lambda: daemon.delete_task("keep"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(StoreError, match="readonly database") as refused:
            await attempt()
        assert "nothing was changed" in refused.value.detail, name
        entry = daemon._scheduler.get("keep")
        assert entry.paused, name
        assert entry.spec.priority is Priority.LOW, name
        assert "new" not in task_ids(daemon), name

    await read_only(daemon, on=False)
    after = await stored(daemon)
    assert after.keys() == before.keys()
    assert after["keep"].paused and after["keep"].spec.priority is Priority.LOW
    await daemon.resume_task("keep")  # and once the database accepts writes again
    assert not (await stored(daemon))["keep"].paused


async def test_a_refused_pause_leaves_the_task_scheduled(daemon: Daemon) -> None:
    await daemon.add_task(
        code_task("daily", "def execute():\n    return 1\n", Priority.LOW, repeat_hours=24)
    )
    entry = daemon._scheduler.get("daily")

    def schedule() -> tuple[Any, ...]:
        fields = ("paused", "next_due", "ready_since", "ready_trigger", "retry_at")
        return tuple(getattr(entry, name) for name in fields)

    await wait_for(lambda: entry.ready_since is not None)  # waiting for the sleep window
    before = schedule()
    await read_only(daemon)
    with pytest.raises(StoreError):
        await daemon.pause_task("daily")
    assert schedule() == before  # still waiting, since the same time
    assert daemon._scheduler.pending_count == 1
    await read_only(daemon, on=False)
    assert not (await stored(daemon))["daily"].paused


async def test_a_change_whose_caller_goes_away_is_saved_all_the_same(daemon: Daemon) -> None:
    """quart-trio cancels a request whose client disconnects. A pause already made in
    memory must still reach the store, or the task would come back unpaused at the next
    start."""
    await daemon.add_task(code_task("nap", "def execute():\n    return 1\n", Priority.LOW))
    requests: list[trio.CancelScope] = []

    async def request() -> None:
        with trio.CancelScope() as scope:
            requests.append(scope)
            await daemon.pause_task("nap")

    async with trio.open_nursery() as nursery:
        await daemon._store._limiter.acquire()  # the store is busy: the write has to wait
        try:
            nursery.start_soon(request)
            await trio.testing.wait_all_tasks_blocked()
            requests[0].cancel()  # the client went away
            await trio.testing.wait_all_tasks_blocked()
        finally:
            daemon._store._limiter.release()
    assert daemon._scheduler.get("nap").paused
    assert (await stored(daemon))["nap"].paused


async def test_a_database_that_refuses_writes_does_not_stop_the_daemon(
    any_daemon: Daemon,
) -> None:
    """A full disk must not kill a 24/7 daemon: tasks keep running (what cannot be saved
    is lost and logged), the state says ``error`` and why, and the next write that works
    clears it."""
    daemon = any_daemon
    await daemon.add_task(code_task("job", "def execute():\n    return 42\n"))
    entry = daemon._scheduler.get("job")
    await wait_for(lambda: entry.counters.execution_count == 1)
    records = await history(daemon, "job")
    while not records or records[0].outcome is not Outcome.SUCCEEDED:  # its final write
        await trio.sleep(0.01)
        records = await history(daemon, "job")
    await wait_for(lambda: daemon.state is DaemonState.IDLE)
    await read_only(daemon)

    with daemon.subscribe() as events:
        daemon.run_task_now("job")
        await wait_for(lambda: entry.counters.execution_count == 2)
        # The counters move before the final record is written (and refused): wait for it.
        await wait_for(lambda: daemon.state is DaemonState.ERROR)
        changes = []
        while True:
            try:
                message = json.loads(events.receive_nowait().as_json())
            except trio.WouldBlock:
                break
            if message["type"] == "state_changed":
                changes.append(message["data"])
    # From working, or from idle when the refused write came before the run's start was
    # published (the memory store refuses at once, with no thread in between).
    assert any(
        change["state"] == "error"
        and change["previous"] in ("working", "idle")
        and change["reason"] == "the database refuses writes (attempt to write a readonly database)"
        for change in changes
    ), changes
    assert entry.counters.success_count == 2  # it ran, and succeeded
    assert daemon.running
    assert daemon.state is DaemonState.ERROR
    assert daemon.status().json_body()["state"] == "error"
    assert daemon.error == "the database refuses writes (attempt to write a readonly database)"
    assert b"omnimind_database_writable 0.0" in daemon.prometheus()
    assert len(await history(daemon, "job")) == 1  # the second run's record is lost

    await read_only(daemon, on=False)
    daemon.run_task_now("job")
    await wait_for(lambda: entry.counters.execution_count == 3)
    while len(await history(daemon, "job")) < 2:  # saved again...
        await trio.sleep(0.01)
    # ... but a write that works is no proof: on a full disk, one that fits in place does.
    # The error clears after a quiet spell, on a probe that needs new space (on a fake
    # clock: test_the_error_clears_soon_after_the_database_accepts_writes_again).
    assert daemon.state is DaemonState.ERROR


async def test_a_start_up_while_the_database_refuses_writes_goes_on(
    settings: Settings,
    source: FakeSource,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restart during a full-disk outage: the runs a crash left open cannot be closed
    now (they will be at a later start), and that must not keep the daemon down."""
    async with open_daemon(settings, metrics_source=source):
        pass  # the database and its built-in task exist

    async def refused(self: SQLiteStore, now: float) -> int:
        raise StoreUnavailable("database or disk is full")

    monkeypatch.setattr(SQLiteStore, "close_interrupted", refused)
    async with open_daemon(settings, metrics_source=source) as daemon:
        assert daemon.running
        assert "database or disk is full" in caplog.text
        assert "closing interrupted runs" in caplog.text


async def test_the_error_clears_soon_after_the_database_accepts_writes_again(
    settings: Settings, source: FakeSource, daemon_clock: trio.testing.MockClock
) -> None:
    """Even when the daemon has nothing to save (its tasks run every few hours), a probe
    finds out that space was freed: once no write was refused for QUIET_SECONDS, within
    PROBE_SECONDS."""
    async with open_daemon(settings, metrics_source=source) as daemon:
        await read_only(daemon)
        with pytest.raises(StoreError):
            await daemon.pause_task("database_optimization")
        refused = trio.current_time()
        assert daemon.state is DaemonState.ERROR
        await trio.sleep_until(refused + writes.QUIET_SECONDS - 1)
        await read_only(daemon, on=False)
        assert daemon.state is DaemonState.ERROR  # no probe yet: not quiet long enough
        await trio.sleep_until(refused + writes.QUIET_SECONDS + writes.PROBE_SECONDS + 1)
        assert daemon.state is not DaemonState.ERROR
        assert daemon.error is None
        assert b"omnimind_database_writable 1.0" in daemon.prometheus()


async def test_a_start_while_a_stop_is_in_progress_starts_after_it(daemon: Daemon) -> None:
    await daemon.add_task(code_task("long", "import time\ndef execute():\n    time.sleep(30)\n"))
    await wait_for(lambda: daemon.get_task("long").running_execution_id is not None)
    assert daemon.stop()
    assert await daemon.start()  # not "already running": the stop ends, then it starts
    assert daemon.running
    [record] = await history(daemon, "long")
    assert record.outcome is Outcome.CANCELLED


async def test_run_now_promises_an_execution_id_and_wait_execution_returns_its_record(
    daemon: Daemon,
) -> None:
    await daemon.add_task(code_task("low", "def execute():\n    return 7\n", Priority.LOW))
    await daemon.pause_task("low")  # its first, scheduled run must not be the one we wait on
    first = daemon.run_task_now("low")
    with pytest.raises(Conflict, match=f"already has a run requested: low .execution {first}"):
        daemon.run_task_now("low")  # overlap=skip: a second request is refused, not merged
    with trio.fail_after(10):
        record = await daemon.wait_execution(first)
    assert (record.execution_id, record.trigger, record.outcome, record.result) == (
        first,
        Trigger.RUN_NOW,
        Outcome.SUCCEEDED,
        7,
    )
    assert await daemon.wait_execution(first) == record  # a finished one answers at once
    with pytest.raises(ExecutionNotFound):
        await daemon.wait_execution("no-such-run")


async def test_waiting_on_a_run_that_is_dropped_before_it_starts_raises(
    settings: Settings, source: FakeSource
) -> None:
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        await daemon.add_task(code_task("later", "def execute():\n    return 1\n"))
        promised = daemon.run_task_now("later")  # stopped: it waits for a start
        async with trio.open_nursery() as nursery:
            outcome: list[str] = []

            async def wait() -> None:
                try:
                    await daemon.wait_execution(promised)
                except ExecutionNotFound:
                    outcome.append("dropped")

            nursery.start_soon(wait)
            await trio.sleep(0.05)
            await daemon.delete_task("later")
        assert outcome == ["dropped"]
