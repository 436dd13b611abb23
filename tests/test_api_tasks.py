"""The planned endpoints: one task, its changes and actions, history, lists with queries."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from omnimind_trio.daemon import Daemon

from .conftest import SLEEP_WINDOW, answered_after_start_record, task_ids
from .test_api import TASK, call, client, wait_for

__all__ = ["client"]  # the fixture, re-used

SLEEPER = "def execute():\n    import time\n    time.sleep(300)"


async def add(client: Any, **fields: Any) -> None:
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, **fields})
    assert response.status_code == 200, await response.get_json()


async def get(client: Any, path: str, status: int = 200) -> Any:
    response = await call(client, "GET", path)
    assert response.status_code == status, await response.get_json()
    return await response.get_json()


async def post(client: Any, path: str, status: int = 200) -> Any:
    response = await call(client, "POST", path)
    assert response.status_code == status, await response.get_json()
    return await response.get_json()


async def test_show_task_explains_why_it_waits(client: Any) -> None:
    await add(client, priority="LOW")
    body = await get(client, "/daemon/tasks/my_custom_task")
    assert body["status"] == "waiting"
    assert body["waiting_reason"] == f"waiting for the sleep window ({SLEEP_WINDOW})"
    assert body["code"] == TASK["code"]
    assert body["repeat_hours"] == 4 and body["repeat_interval"] == "4:00:00"
    assert body["kind"] == "code" and body["paused"] is False
    assert body["running_execution_id"] is None
    assert body["timeout_seconds"] == 3600
    missing = await get(client, "/daemon/tasks/nope", 404)
    assert missing == {"detail": "Task not found: nope"}


async def test_run_now_cancel_and_history(client: Any, daemon: Daemon) -> None:
    await add(client, priority="LOW", code=SLEEPER)
    requested = await post(client, "/daemon/tasks/my_custom_task/run")
    execution_id = requested.pop("execution_id")
    assert requested == {
        "status": "run_requested",
        "task_id": "my_custom_task",
        "message": "Task 'My Custom Task' will run now",
    }
    await wait_for(lambda: daemon.get_task("my_custom_task").running_execution_id is not None)
    detail = await get(client, "/daemon/tasks/my_custom_task")
    assert detail["status"] == "running"
    assert detail["running_execution_id"] == execution_id  # the run the answer named
    running = await get(client, f"/daemon/executions/{execution_id}")
    assert running["outcome"] == "running" and running["trigger"] == "run_now"
    conflict = await post(client, "/daemon/tasks/my_custom_task/run", 409)
    assert conflict == {"detail": "Task is already running: my_custom_task"}

    assert (await post(client, "/daemon/tasks/my_custom_task/cancel"))["status"] == (
        "cancel_requested"
    )
    await wait_for(lambda: daemon.get_task("my_custom_task").running_execution_id is None)
    record = await get(client, f"/daemon/executions/{execution_id}")
    assert record["outcome"] == "cancelled"
    assert record["reason"] == "cancelled by request"
    assert record["duration_seconds"] < 2
    assert "stdout" in record
    not_running = await post(client, "/daemon/tasks/my_custom_task/cancel", 409)
    assert not_running == {"detail": "Task is not running: my_custom_task"}

    listed = await get(client, "/daemon/tasks/my_custom_task/executions")
    assert listed["total"] == 1
    assert listed["executions"][0]["execution_id"] == execution_id
    assert "stdout" not in listed["executions"][0]
    await get(client, "/daemon/executions/nope", 404)
    await get(client, "/daemon/tasks/nope/executions", 404)


async def test_pause_and_resume(client: Any, daemon: Daemon) -> None:
    await add(client, priority="LOW")
    assert (await post(client, "/daemon/tasks/my_custom_task/pause"))["status"] == "paused"
    detail = await get(client, "/daemon/tasks/my_custom_task")
    assert detail["status"] == "paused" and detail["paused"] is True
    assert (await get(client, "/daemon/status"))["tasks_pending"] == 0
    assert (await post(client, "/daemon/tasks/my_custom_task/resume"))["status"] == "resumed"
    await trio.sleep(0.05)
    assert (await get(client, "/daemon/tasks/my_custom_task"))["status"] == "waiting"
    assert (await get(client, "/daemon/status"))["tasks_pending"] == 1
    stored = {t.spec.task_id: t for t in await daemon._store.load_tasks()}
    assert stored["my_custom_task"].paused is False


async def test_patch_validates_like_add_and_changes_only_what_it_names(
    client: Any, daemon: Daemon
) -> None:
    await add(client, priority="LOW")
    response = await call(
        client, "PATCH", "/daemon/tasks/my_custom_task", {"priority": "HIGH", "repeat_hours": 1}
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "task_updated"
    assert body["task"]["priority"] == "HIGH" and body["task"]["repeat_interval"] == "1:00:00"
    assert body["task"]["name"] == "My Custom Task"
    stored = {t.spec.task_id: t for t in await daemon._store.load_tasks()}
    assert stored["my_custom_task"].spec.priority.name == "HIGH"

    for patch, detail in [
        ({"priority": "URGENT"}, "Invalid priority: URGENT"),
        ({"code": "x = 1"}, "Code must define an 'execute()' function"),
        ({"task_id": "other"}, "task_id cannot be changed"),
        ({}, "Nothing to update: give at least one field"),
        ({"repeat_hours": 0}, "repeat_hours: Input should be greater than or equal to 1"),
        ({"bogus": 1}, "Unknown field: bogus"),
    ]:
        response = await call(client, "PATCH", "/daemon/tasks/my_custom_task", patch)
        assert response.status_code == 400
        assert await response.get_json() == {"detail": detail}
    assert daemon.get_task("my_custom_task").priority == "HIGH"
    response = await call(client, "PATCH", "/daemon/tasks/nope", {"name": "x"})
    assert response.status_code == 404


async def test_patch_repeat_to_one_shot(client: Any, daemon: Daemon) -> None:
    await add(client, priority="CRITICAL")
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count)
    response = await call(client, "PATCH", "/daemon/tasks/my_custom_task", {"repeat_hours": None})
    body = await response.get_json()
    assert body["task"]["repeat_interval"] is None
    assert body["task"]["next_execution"] is None
    assert body["task"]["status"] == "done"


async def test_delete(client: Any, daemon: Daemon) -> None:
    await add(client, priority="CRITICAL", code=SLEEPER)
    await wait_for(lambda: daemon.get_task("my_custom_task").running_execution_id is not None)
    response = await call(client, "DELETE", "/daemon/tasks/my_custom_task")
    assert await response.get_json() == {
        "status": "task_deleted",
        "task_id": "my_custom_task",
        "message": "Task 'My Custom Task' deleted",
    }
    assert "my_custom_task" not in task_ids(daemon)
    assert "my_custom_task" not in {t.spec.task_id for t in await daemon._store.load_tasks()}
    history = await get(client, "/daemon/executions?task_id=my_custom_task")
    await wait_for(lambda: daemon._scheduler.running_count == 0)
    history = await get(client, "/daemon/executions?task_id=my_custom_task")
    assert history["executions"][0]["outcome"] == "cancelled"
    assert history["executions"][0]["reason"] == "the task was deleted"
    response = await call(client, "DELETE", "/daemon/tasks/my_custom_task")
    assert response.status_code == 404


async def seed(client: Any) -> None:
    for i, (priority, name) in enumerate(
        [
            ("LOW", "Backup photos"),
            ("HIGH", "Index mail"),
            ("LOW", "Vacuum db"),
            ("MEDIUM", "Backup mail"),
        ]
    ):
        await add(client, task_id=f"t{i}", name=name, priority=priority)


@pytest.mark.parametrize(
    ("query", "ids", "total"),
    [
        ("?priority=LOW", ["t0", "t2"], 2),
        ("?priority=LOW,HIGH&sort=-task_id", ["t2", "t1", "t0"], 3),
        ("?q=backup", ["t0", "t3"], 2),
        ("?q=BACKUP&priority=MEDIUM", ["t3"], 1),
        ("?sort=name&limit=2", ["t3", "t0"], 5),
        ("?sort=priority&limit=2&offset=1", ["database_optimization", "t3"], 5),
        ("?limit=1&offset=1", ["t0"], 5),
        ("?status=paused", [], 0),
    ],
)
async def test_list_filters_sorts_and_pages(
    client: Any, query: str, ids: list[str], total: int
) -> None:
    await seed(client)
    body = await get(client, "/daemon/tasks" + query)
    assert [t["task_id"] for t in body["tasks"]] == ids
    assert body["total_tasks"] == total


async def test_a_descending_sort_keeps_ties_in_insertion_order(client: Any) -> None:
    """``sort=-field`` reverses the field's order, not the ties' (docs/api.md): a stable
    sort on the key alone, as ``sort``, ``ls -r`` and spreadsheets do."""
    await seed(client)  # t0 LOW, t1 HIGH, t2 LOW, t3 MEDIUM, after the MEDIUM built-in
    body = await get(client, "/daemon/tasks?sort=-priority")
    assert [t["task_id"] for t in body["tasks"]] == [
        "t0", "t2", "database_optimization", "t3", "t1",
    ]  # fmt: skip
    body = await get(client, "/daemon/tasks?sort=priority")
    assert [t["task_id"] for t in body["tasks"]] == [
        "t1", "database_optimization", "t3", "t0", "t2",
    ]  # fmt: skip
    # A page far smaller than the list is picked with a heap: the same order.
    for i in range(4, 24):
        await add(client, task_id=f"t{i}", name=f"Task {i}", priority="LOW")
    body = await get(client, "/daemon/tasks?sort=-priority&limit=4")
    assert [t["task_id"] for t in body["tasks"]] == ["t0", "t2", "t4", "t5"]
    body = await get(client, "/daemon/tasks?sort=-priority&limit=4&offset=21")
    assert [t["task_id"] for t in body["tasks"]] == ["t23", "database_optimization", "t3", "t1"]


async def test_list_filters_the_tasks_that_run_after_others(client: Any) -> None:
    await seed(client)
    await add(client, task_id="sync", after=["t0"], repeat_hours=None)
    await add(client, task_id="report", after=["t1", "t0"], repeat_hours=None)
    await add(client, task_id="mail", after=["t1"], repeat_hours=None)
    for query, ids in (
        ("?after=t0", ["sync", "report"]),
        ("?after=t1,t2", ["report", "mail"]),
        ("?after=t3", []),
        ("?after=nothing", []),
    ):
        body = await get(client, "/daemon/tasks" + query)
        assert [t["task_id"] for t in body["tasks"]] == ids, query
        rows = await get(client, "/daemon/dashboard/tasks" + query)
        assert [t["task_id"] for t in rows["tasks"]] == ids, query
    assert await get(client, "/daemon/tasks?after=", 400) == {"detail": "after must not be empty"}


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("?priority=URGENT", "Invalid priority: URGENT (one of: CRITICAL, HIGH, MEDIUM, LOW)"),
        (
            "?sort=colour",
            "Invalid sort: colour (one of: task_id, name, priority, status, "
            "execution_count, success_count, failure_count, last_execution, next_execution, "
            "created_at)",
        ),
        ("?limit=0", "limit must be between 1 and 1000"),
        ("?limit=ten", "limit must be an integer, not 'ten'"),
        ("?offset=-1", "offset must be between 0 and 1000000000"),
        (
            "?status=sleepy",
            "Invalid status: sleepy (one of: scheduled, waiting, running, frozen, paused, done)",
        ),
        (
            "?colour=red",
            "Unknown query parameter: colour "
            "(allowed: after, limit, offset, priority, q, sort, status)",
        ),
    ],
)
async def test_bad_list_parameters_are_400(client: Any, query: str, detail: str) -> None:
    assert await get(client, "/daemon/tasks" + query, 400) == {"detail": detail}


async def test_execution_filters(client: Any, daemon: Daemon) -> None:
    await add(client, task_id="ok", priority="CRITICAL", code="def execute():\n    return 1")
    await add(client, task_id="bad", priority="CRITICAL", code="def execute():\n    1/0")
    await wait_for(
        lambda: (
            daemon._scheduler.running_count == 0
            and daemon.get_task("bad").execution_count == 1
            and daemon.get_task("ok").execution_count == 1
        )
    )
    failed = await get(client, "/daemon/executions?outcome=failed")
    assert [e["task_id"] for e in failed["executions"]] == ["bad"]
    assert "ZeroDivisionError" in failed["executions"][0]["reason"]
    everything = await get(client, "/daemon/executions?since=2000-01-01T00:00:00Z&limit=10")
    assert everything["total"] >= 2
    assert await get(client, "/daemon/executions?until=2000-01-01T00:00:00Z") == {
        "executions": [],
        "total": 0,
    }
    bad = await get(client, "/daemon/executions?since=yesterday", 400)
    assert bad == {
        "detail": "since must be an ISO-8601 time like 2025-11-19T02:30:00Z, not 'yesterday'"
    }
    bad = await get(client, "/daemon/executions?outcome=meh", 400)
    assert bad["detail"].startswith("Invalid outcome: meh (one of: running, succeeded,")


async def test_in_process_tasks_are_paused_not_deleted_and_keep_their_changes(
    client: Any, daemon: Daemon
) -> None:
    response = await call(client, "DELETE", "/daemon/tasks/database_optimization")
    assert response.status_code == 409
    assert "pause it instead" in (await response.get_json())["detail"]
    detail = await get(client, "/daemon/tasks/database_optimization")
    assert detail["kind"] == "in_process" and detail["max_memory_mb"] is None


async def test_a_database_that_refuses_writes_is_a_503_that_changes_nothing(
    client: Any, daemon: Daemon
) -> None:
    await add(client, priority="LOW")
    db = daemon._store._db
    await daemon._store._run(lambda: db.execute("PRAGMA query_only = 1"))  # as if read-only
    refused = await post(client, "/daemon/tasks/my_custom_task/pause", 503)
    assert refused == {
        "detail": "The database could not be written (attempt to write a readonly database):"
        " nothing was changed"
    }
    assert (await get(client, "/daemon/tasks/my_custom_task"))["paused"] is False
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "task_id": "other"})
    assert response.status_code == 503
    assert (await get(client, "/daemon/tasks/other", 404))["detail"] == "Task not found: other"


async def test_run_now_answers_only_once_its_start_record_is_committed(
    client: Any, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 to a run-now request is a run that survives a crash: the answer waits for the
    write of its start record (outcome ``running``), here held back until released."""
    await add(client, priority="LOW")  # waits for the sleep window: only run-now runs it
    answer = await answered_after_start_record(
        daemon, monkeypatch, lambda: post(client, "/daemon/tasks/my_custom_task/run")
    )
    record = await daemon._store.get_execution(answer["execution_id"])
    assert record is not None and record.trigger.value == "run_now"


async def test_run_now_answers_at_once_when_its_run_cannot_start_now(
    client: Any, daemon: Daemon
) -> None:
    """Held in memory, as documented: the daemon is stopped, or the request is queued
    behind a run of its task (overlap=queue). Neither waits (a stop must not hang it)."""
    await add(client, priority="LOW", code=SLEEPER, overlap="queue")
    running = (await post(client, "/daemon/tasks/my_custom_task/run"))["execution_id"]
    assert await daemon._store.get_execution(running) is not None  # started: recorded
    with trio.fail_after(2):
        queued = (await post(client, "/daemon/tasks/my_custom_task/run"))["execution_id"]
    assert await daemon._store.get_execution(queued) is None  # in memory until it starts
    daemon.stop()
    await daemon.wait_stopped()
    with trio.fail_after(2):
        later = (await post(client, "/daemon/tasks/my_custom_task/run"))["execution_id"]
    assert await daemon._store.get_execution(later) is None
