"""A task id deleted and added again is a new task: a new registration, with an empty history
and counters at 0. The earlier registration's runs stay readable in ``GET
/daemon/executions``, each naming the registration it belonged to, and nothing of them
reaches the new task: not its history, counters, dashboard row, ``after`` followers,
notifications or metrics, not even a run still in flight when the id was deleted and added
again.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from omnimind_trio import FakeSensors, FakeSource, Settings, open_daemon
from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app
from omnimind_trio.models import (
    Event,
    ExecutionRecord,
    NotifySpec,
    Outcome,
    Priority,
    TaskCounters,
    TaskDetail,
    TaskSpec,
    Trigger,
)
from omnimind_trio.store import MemoryStore, StoredTask

from .conftest import make_settings
from .test_api import call, wait_for
from .test_notify import Receiver, receiver, settled  # noqa: F401 (a fixture)

WORKS = "def execute():\n    return {'ok': True}\n"
FAILS = "def execute():\n    raise ValueError('nope')\n"
SLEEPER = "def execute():\n    import time\n    time.sleep(300)\n"
HEX32 = re.compile(r"[0-9a-f]{32}")


def body(task_id: str, priority: str, code: str, **fields: Any) -> dict[str, Any]:
    """An add body. CRITICAL runs at once; LOW waits for the sleep window (hours away)."""
    return {"task_id": task_id, "name": task_id.title(), "description": "", "priority": priority,
            "code": code, **fields}  # fmt: skip


class Api:
    """The REST API of one daemon, through Quart's test client."""

    def __init__(self, daemon: Daemon) -> None:
        app = create_app(daemon, Credentials("tester", "secret-pass", "environment"))
        self.client = app.test_client()

    async def __call__(self, method: str, path: str, data: Any = None, status: int = 200) -> Any:
        response = await call(self.client, method, path, data)
        assert response.status_code == status, await response.get_json()
        return await response.get_json()


@pytest.fixture
async def opened(settings: Settings, source: FakeSource) -> AsyncIterator[Daemon]:
    async with open_daemon(settings, metrics_source=source, sensors=FakeSensors()) as daemon:
        yield daemon


def drain(events: trio.MemoryReceiveChannel[Event], *kinds: str) -> list[Event]:
    """The events of ``kinds`` received so far."""
    got = []
    while True:
        try:
            event = events.receive_nowait()
        except trio.WouldBlock:
            return got
        if event.type in kinds:
            got.append(event)


async def test_a_re_added_id_starts_empty_and_the_old_runs_keep_their_registration(
    settings: Settings, source: FakeSource
) -> None:
    async with open_daemon(settings, metrics_source=source, sensors=FakeSensors()) as daemon:
        api = Api(daemon)
        await api("POST", "/daemon/tasks/add", body("report", "CRITICAL", WORKS))
        await wait_for(lambda: daemon.get_task("report").success_count == 1)
        await api("POST", "/daemon/tasks/report/run")
        await wait_for(lambda: daemon.get_task("report").success_count == 2)
        old = await api("GET", "/daemon/tasks/report")
        await api("DELETE", "/daemon/tasks/report")
        await api("POST", "/daemon/tasks/add", body("report", "LOW", WORKS, repeat_hours=1))

        new = await api("GET", "/daemon/tasks/report")
        assert HEX32.fullmatch(old["registration_id"]) and HEX32.fullmatch(new["registration_id"])
        assert new["registration_id"] != old["registration_id"]
        assert (new["execution_count"], new["success_count"], new["failure_count"]) == (0, 0, 0)
        assert new["last_execution"] is None and new["status"] == "waiting"
        assert await api("GET", "/daemon/tasks/report/executions") == {"executions": [], "total": 0}
        # Every run of the id, each saying whose it was; a filter picks one registration.
        every = await api("GET", "/daemon/executions?task_id=report")
        assert every["total"] == 2
        assert {(r["registration_id"], r["registered_at"]) for r in every["executions"]} == {
            (old["registration_id"], old["created_at"])
        }
        assert every["executions"][0]["task_id"] == "report"
        by_old = await api("GET", f"/daemon/executions?registration_id={old['registration_id']}")
        assert by_old == every
        by_new = await api("GET", f"/daemon/executions?registration_id={new['registration_id']}")
        assert by_new == {"executions": [], "total": 0}
        one = await api("GET", f"/daemon/executions/{every['executions'][0]['execution_id']}")
        assert one["registration_id"] == old["registration_id"]
        # The dashboard's row: no runs of the old task in its sparkline.
        (row,) = (await api("GET", "/daemon/dashboard/tasks"))["tasks"][-1:]
        assert row["task_id"] == "report" and row["registration_id"] == new["registration_id"]
        assert (row["recent"], row["last_outcome"]) == ([], None)

    async with open_daemon(settings, metrics_source=source, sensors=FakeSensors()) as daemon:
        api = Api(daemon)  # after a restart, the store says the same
        again = await api("GET", "/daemon/tasks/report")
        assert again["registration_id"] == new["registration_id"]
        assert again["execution_count"] == 0 and again["created_at"] == new["created_at"]
        assert await api("GET", "/daemon/tasks/report/executions") == {"executions": [], "total": 0}
        assert (await api("GET", "/daemon/executions?task_id=report"))["total"] == 2


async def test_a_run_in_flight_when_its_id_is_deleted_and_added_again_stays_the_old_ones(
    opened: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete cancels the run; its final record is written after the id was added again
    (held back here until then). It goes to the old registration: the new task's history,
    counters (in memory and stored), last run, metrics and events show nothing of it."""
    daemon, api = opened, Api(opened)
    await api("POST", "/daemon/tasks/add", body("job", "CRITICAL", SLEEPER))
    await wait_for(lambda: daemon.get_task("job").running_execution_id is not None)
    old = await api("GET", "/daemon/tasks/job")
    store = daemon._store
    finish = store.finish_execution
    writing, release = trio.Event(), trio.Event()

    async def held_back(record: ExecutionRecord, counters: TaskCounters) -> None:
        writing.set()
        await release.wait()
        await finish(record, counters)

    monkeypatch.setattr(store, "finish_execution", held_back)
    with daemon.subscribe() as events:
        await api("DELETE", "/daemon/tasks/job")
        with trio.fail_after(5):
            await writing.wait()  # the old run ended; its record is not written yet
        await api("POST", "/daemon/tasks/add", body("job", "LOW", WORKS))
        release.set()
        record = await daemon.wait_execution(old["running_execution_id"])
        await wait_for(lambda: daemon.executions_running == 0)
        seen = drain(events, "task_removed", "task_added", "execution_finished")

    assert (record.outcome, record.reason) == (Outcome.CANCELLED, "the task was deleted")
    assert record.registration_id == old["registration_id"]
    new = await api("GET", "/daemon/tasks/job")
    assert new["registration_id"] != old["registration_id"]
    assert (new["execution_count"], new["failure_count"], new["last_execution"]) == (0, 0, None)
    (stored,) = [t for t in await store.load_tasks() if t.spec.task_id == "job"]
    assert stored.counters == TaskCounters() and stored.registration_id == new["registration_id"]
    assert await api("GET", "/daemon/tasks/job/executions") == {"executions": [], "total": 0}
    assert 'task_id="job"' not in daemon.prometheus().decode()  # no series for the new task
    assert [(e.type, e.data["registration_id"]) for e in seen if e.data["task_id"] == "job"] == [
        ("task_removed", old["registration_id"]),
        ("task_added", new["registration_id"]),
        ("execution_finished", old["registration_id"]),
    ]


async def test_a_task_restored_from_an_export_is_a_new_registration(opened: Daemon) -> None:
    """An export carries definitions, not registrations: restored (here over the deleted
    task), a task starts with an empty history; the exported one's runs stay its own."""
    daemon, api = opened, Api(opened)
    await api("POST", "/daemon/tasks/add", body("nightly", "CRITICAL", WORKS))
    await wait_for(lambda: daemon.get_task("nightly").success_count == 1)
    old = await api("GET", "/daemon/tasks/nightly")
    exported = await api("GET", "/daemon/export")
    assert "registration_id" not in str(exported)
    await api("DELETE", "/daemon/tasks/nightly")
    await api("POST", "/daemon/tasks/batch", exported)
    await wait_for(lambda: daemon.get_task("nightly").success_count == 1)  # its first run
    restored = await api("GET", "/daemon/tasks/nightly")
    assert restored["registration_id"] != old["registration_id"]
    history = await api("GET", "/daemon/tasks/nightly/executions")
    assert [r["registration_id"] for r in history["executions"]] == [restored["registration_id"]]
    earlier = await api("GET", f"/daemon/executions?registration_id={old['registration_id']}")
    assert earlier["total"] == 1 and earlier["executions"][0]["outcome"] == "succeeded"


async def test_an_after_task_is_not_started_by_an_earlier_registrations_success(
    tmp_path: Path, source: FakeSource
) -> None:
    """At a start, which upstream tasks have succeeded since an ``after`` task last started
    is read from the history: a success of a task deleted since, whose id was added again,
    is not one of the current task's."""
    now = time.time()
    earlier, current = "a" * 32, "b" * 32

    def stored(task_id: str, seq: int, registration_id: str, **fields: Any) -> StoredTask:
        spec = TaskSpec(task_id, task_id, "", Priority.LOW, WORKS, **fields)
        return StoredTask(spec, TaskCounters(), seq=seq, paused=False, created_at=now - 600,
                          next_due=None, registration_id=registration_id)  # fmt: skip

    def success(execution_id: str, registration_id: str) -> ExecutionRecord:
        return ExecutionRecord(
            execution_id=execution_id, task_id="fetch", registration_id=registration_id,
            registered_at=now - 600, trigger=Trigger.SCHEDULE, outcome=Outcome.SUCCEEDED,
            scheduled_at=now - 60, started_at=now - 60, finished_at=now - 59,
        )  # fmt: skip

    store = MemoryStore()
    await store.insert_task(stored("fetch", 1, current))
    await store.insert_task(stored("report", 2, "c" * 32, after=("fetch",)))
    await store.finish_execution(success("old", earlier), TaskCounters())
    settings = make_settings(tmp_path)
    async with open_daemon(settings, metrics_source=source, store=store) as daemon:
        waiting = daemon.get_task("report").waiting
        assert waiting is not None and waiting.reason == "upstream"
    # The same success under the current registration: it counts.
    await store.finish_execution(success("new", current), TaskCounters())
    async with open_daemon(settings, metrics_source=source, store=store) as daemon:
        waiting = daemon.get_task("report").waiting
        assert waiting is not None and waiting.reason == "gate"  # due: LOW waits for the night


@pytest.mark.slow
async def test_a_re_added_ids_first_success_is_no_recovery(
    tmp_path: Path,
    source: FakeSource,
    receiver: Receiver,  # noqa: F811 (test_notify's fixture)
) -> None:
    """The deleted task was failing; the new one under its id has no past: its success is
    not told as a recovery (notify on failure and recovery), nor read so from the history
    after a restart."""
    settings = make_settings(tmp_path)
    notify = NotifySpec(webhook=receiver.url).model_dump(mode="json")
    async with open_daemon(settings, metrics_source=source) as daemon:
        api = Api(daemon)
        await api("POST", "/daemon/tasks/add", body("backup", "CRITICAL", FAILS, notify=notify))
        [failure] = await receiver.wait_for(1)
        await wait_for(lambda: daemon.get_task("backup").failure_count == 1)
        await api("DELETE", "/daemon/tasks/backup")
        await api("POST", "/daemon/tasks/add", body("backup", "CRITICAL", WORKS, notify=notify))
        await wait_for(lambda: daemon.get_task("backup").success_count == 1)
        await settled(daemon._notifier)
    async with open_daemon(settings, metrics_source=source) as daemon:
        daemon.run_task_now("backup")
        await wait_for(lambda: daemon.get_task("backup").success_count == 2)
        await settled(daemon._notifier)
    assert failure["event"] == "failure"
    assert [b["event"] for b in receiver.bodies] == ["failure"]


def test_the_api_reference_documents_the_registration_fields() -> None:
    """docs/api.md's table of the execution record names every field of it (the
    registration's among them), and the task detail's table its registration."""
    api = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    executions = api.split("## Executions", 1)[1].split("### Outcomes", 1)[0]
    fields = ExecutionRecord.model_json_schema(mode="serialization")["properties"]
    assert "registration_id" in fields and "registered_at" in fields
    assert [name for name in fields if f"`{name}`" not in executions] == []
    detail = api.split("## GET /daemon/tasks/{task_id}", 1)[1].split("## PATCH", 1)[0]
    assert "registration_id" in TaskDetail.model_fields
    assert "| `registration_id` |" in detail and '"registration_id": "' in detail
