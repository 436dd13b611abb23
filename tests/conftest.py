"""Shared fixtures: settings in a temporary home, and a daemon on a fake metrics source."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from omnimind_trio import FakeSensors, FakeSource, Settings, open_daemon
from omnimind_trio.daemon import Daemon
from omnimind_trio.models import ExecutionRecord, Outcome, Trigger
from omnimind_trio.store import open_store

from . import pg_cluster


def far_window() -> str:
    """A one-hour sleep window twelve hours from now (UTC): tests run at any hour, and a
    LOW task must wait in them, never run by chance at night."""
    start = datetime.now(UTC) + timedelta(hours=12)
    end = start + timedelta(hours=1)
    return f"{start:%H:00}-{end:%H:00}"


SLEEP_WINDOW = far_window()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated in ``tmp_path``, with fast gates and explicit credentials."""
    values: dict[str, Any] = {
        "home": tmp_path,
        "workspace": tmp_path,
        "dashboard_user": "tester",
        "dashboard_pass": "secret-pass",
        "gate_open_seconds": 0,
        "gate_close_seconds": 0,
        "sleep_window": SLEEP_WINDOW,
        "timezone": "UTC",
        "node_name": "laptop",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The daemons the tests start announce themselves (``cli/_runtime.py``) in a directory
    of this session, never the user's, and client commands find only those."""
    saved = {name: os.environ.get(name) for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME")}
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg_cluster.Cluster]:
    """A throwaway PostgreSQL cluster for the session (``tests/pg_cluster.py``), started
    at the first test that needs it; skipped, saying why, where PostgreSQL is missing.
    (A synchronous fixture: a skip keeps its reason.)"""
    why = pg_cluster.missing()
    if why is not None:
        pytest.skip(why)
    with pg_cluster.cluster() as running:
        yield running


@pytest.fixture
def postgres_url(postgres: pg_cluster.Cluster) -> str:
    """The URL of a new, empty database on the session's cluster, owned by the role the
    daemon connects as."""
    return postgres.url(postgres.database())


@pytest.fixture
def daemon_clock() -> trio.testing.MockClock:
    """A virtual clock for whole-daemon tests. It jumps only after 20 ms of real idleness,
    not at once like ``autojump_clock``: the daemon waits on real threads (SQLite) and
    processes, and time must not leap forward while they work."""
    return trio.testing.MockClock(autojump_threshold=0.02)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(cpu_percent=5.0)


@pytest.fixture
def sensors() -> FakeSensors:
    """Presence, power and network as the test sets them: the person present (idle 0 s),
    on AC power, an unmetered network."""
    return FakeSensors()


@pytest.fixture
async def daemon(
    settings: Settings, source: FakeSource, sensors: FakeSensors
) -> AsyncIterator[Daemon]:
    async with open_daemon(settings, metrics_source=source, sensors=sensors) as running:
        yield running


async def leave_a_running_record(settings: Settings, task_id: str, execution_id: str) -> None:
    """What a kill -9 leaves behind: a record of the stored task ``task_id`` still marked
    running (the daemon must not be open on ``settings``' database)."""
    async with open_store(settings.database_path) as store:
        (task,) = [t for t in await store.load_tasks() if t.spec.task_id == task_id]
        record = ExecutionRecord(
            execution_id=execution_id,
            task_id=task_id,
            registration_id=task.registration_id,
            registered_at=task.created_at,
            trigger=Trigger.SCHEDULE,
            outcome=Outcome.RUNNING,
            scheduled_at=1.0,
            started_at=1.0,
        )
        await store.start_execution(record, last_execution=1.0, next_due=None)


PF_EXITING = 0x4
"""The kernel's per-process flag for an exit in progress (``include/linux/sched.h``)."""


def assert_gone(pid: int) -> None:
    """The process ``pid`` no longer runs: it is gone, a zombie waiting for init to reap it,
    or exiting (a SIGKILL takes effect a moment after it is sent, and a process killed under
    load may still be closing its files: it runs no more of its own code either way)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return
    state, flags = fields[0], int(fields[6])
    assert state == "Z" or flags & PF_EXITING, f"process {pid} still runs ({state})"


def task_ids(daemon: Daemon) -> set[str]:
    """The ids of every registered task."""
    return {task.task_id for task in daemon.list_tasks().tasks}


async def answered_after_start_record(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, send: Callable[[], Awaitable[Any]]
) -> Any:
    """``send()``'s answer, after checking it did not come while the store was still
    writing the run's start record (the write is held back until released)."""
    store = daemon._store
    original = store.start_execution
    writing, release = trio.Event(), trio.Event()
    answers: list[Any] = []

    async def held_back(record: Any, **fields: Any) -> None:
        writing.set()
        await release.wait()
        await original(record, **fields)

    async def request() -> None:
        answers.append(await send())

    monkeypatch.setattr(store, "start_execution", held_back)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(request)
        with trio.fail_after(5):
            await writing.wait()
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert not answers, "answered before the start record was committed"
        release.set()
    return answers[0]
