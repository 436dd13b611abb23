"""POST /daemon/tasks/batch: one result per operation; atomic adds are all-or-nothing."""

from __future__ import annotations

from typing import Any

import pytest

from omnimind_trio.daemon import Daemon

from .conftest import answered_after_start_record, task_ids
from .test_api import TASK, call, client

__all__ = ["client"]


def add_op(task_id: str, **fields: Any) -> dict[str, Any]:
    return {"op": "add", "task": {**TASK, "task_id": task_id, "priority": "LOW", **fields}}


async def batch(client: Any, body: Any, status: int = 200) -> Any:
    response = await call(client, "POST", "/daemon/tasks/batch", body)
    assert response.status_code == status
    return await response.get_json()


async def test_mixed_batch_reports_each_operation(client: Any, daemon: Daemon) -> None:
    body = await batch(
        client,
        {
            "operations": [
                add_op("a"),
                add_op("b"),
                add_op("a"),
                {"op": "pause", "task_id": "b"},
                {"op": "delete", "task_id": "nope"},
                {"op": "explode", "task_id": "a"},
                add_op("c", priority="SOON"),
                {"op": "run", "task_id": "a"},
            ]
        },
    )
    assert body["applied"] == 4
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [
        (0, 200),
        (1, 200),
        (2, 409),
        (3, 200),
        (4, 404),
        (5, 400),
        (6, 400),
        (7, 200),
    ]
    assert body["results"][0] == {
        "index": 0,
        "status": 200,
        "result": {
            "status": "task_added",
            "task_id": "a",
            "message": "Task 'My Custom Task' added successfully",
        },
    }
    assert body["results"][2]["detail"] == "Task already exists: a"
    assert body["results"][5]["detail"] == (
        "Invalid op: explode (one of: add, delete, pause, resume, run, cancel)"
    )
    assert body["results"][6]["detail"] == "Invalid priority: SOON"
    assert daemon.get_task("b").paused
    assert "c" not in task_ids(daemon)


async def test_atomic_batch_applies_nothing_when_one_operation_fails(
    client: Any, daemon: Daemon
) -> None:

    before = task_ids(daemon)
    body = await batch(
        client,
        {
            "atomic": True,
            "operations": [
                add_op("x"),
                add_op("y", code="def run(): pass"),
                {"op": "pause", "task_id": "x"},
            ],
        },
    )
    assert body["applied"] == 0
    assert [r["status"] for r in body["results"]] == [424, 400, 424]
    assert body["results"][1]["detail"] == "Code must define an 'execute()' function"
    assert task_ids(daemon) == before
    assert len(await daemon._store.load_tasks()) == len(before)


async def test_atomic_batch_sees_its_own_earlier_operations(client: Any, daemon: Daemon) -> None:
    body = await batch(
        client,
        {
            "atomic": True,
            "operations": [
                add_op("x"),
                {"op": "pause", "task_id": "x"},
                add_op("x2"),
                {"op": "delete", "task_id": "x2"},
            ],
        },
    )
    assert body["applied"] == 4
    assert daemon.get_task("x").paused
    assert "x2" not in task_ids(daemon)
    duplicate = await batch(client, {"atomic": True, "operations": [add_op("z"), add_op("z")]})
    assert [r["status"] for r in duplicate["results"]] == [424, 409]
    assert "z" not in task_ids(daemon)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([], "Request body must be a JSON object"),
        ({}, "operations must be a non-empty list"),
        ({"operations": []}, "operations must be a non-empty list"),
        ({"operations": [add_op("a")], "atomic": "yes"}, "atomic must be true or false"),
        ({"operations": [add_op("a")], "extra": 1}, "Unknown field: extra"),
        ({"ops": [add_op("a")]}, "Unknown field: ops"),  # a misspelling, named
        (
            {"operations": [add_op(f"t{i}") for i in range(1001)]},
            "operations must hold at most 1000 items",
        ),
    ],
)
async def test_a_bad_envelope_is_400(client: Any, daemon: Daemon, body: Any, detail: str) -> None:
    assert await batch(client, body, 400) == {"detail": detail}
    assert task_ids(daemon) == {"database_optimization"}


async def test_an_add_without_a_task_object_says_so(client: Any) -> None:
    body = await batch(client, {"operations": [{"op": "add"}, {"op": "add", "task": [1]}]})
    assert {r["detail"] for r in body["results"]} == {
        "An add operation needs 'task': the task as a JSON object"
    }


async def test_atomic_batch_knows_in_process_tasks_cannot_be_deleted(
    client: Any, daemon: Daemon
) -> None:
    body = await batch(
        client,
        {"atomic": True, "operations": [add_op("x1"),
                                        {"op": "delete", "task_id": "database_optimization"}]},
    )  # fmt: skip
    assert [r["status"] for r in body["results"]] == [424, 409]
    assert "x1" not in task_ids(daemon)


async def test_an_atomic_batch_stops_at_a_write_the_database_refuses(
    client: Any, daemon: Daemon
) -> None:
    """The check passed, then the disk filled up at the second operation: it answers 503,
    the rest are not applied (424), and the first one stays applied."""
    await batch(client, {"operations": [add_op("a"), add_op("b"), add_op("c")]})
    db = daemon._store._db
    set_schedule = daemon._store.set_schedule
    calls = 0

    async def fills_up(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # pause a: its write and its schedule; then pause b
            await daemon._store._run(lambda: db.execute("PRAGMA query_only = 1"))
        await set_schedule(*args, **kwargs)

    daemon._store.set_schedule = fills_up  # type: ignore[method-assign]
    body = await batch(
        client,
        {
            "atomic": True,
            "operations": [{"op": "pause", "task_id": task_id} for task_id in ("a", "b", "c")],
        },
    )
    assert [r["status"] for r in body["results"]] == [200, 503, 424]
    assert body["applied"] == 1
    assert [daemon._scheduler.get(t).paused for t in "abc"] == [True, False, False]


async def test_a_batch_runs_each_request_or_refuses_it(client: Any, daemon: Daemon) -> None:
    """Two runs of one task in a batch: under ``skip`` the second would be merged into the
    first, so an atomic batch is refused whole; under ``queue`` both run, each with its id."""
    await batch(
        client,
        {"operations": [add_op("s", priority="LOW"), add_op("q", priority="LOW", overlap="queue")]},
    )
    twice = [{"op": "run", "task_id": "s"}, {"op": "run", "task_id": "s"}]
    body = await batch(client, {"atomic": True, "operations": twice})
    assert body["applied"] == 0
    assert [r["status"] for r in body["results"]] == [424, 409]
    assert body["results"][1]["detail"] == (
        "Task already has a run requested: s (earlier in the batch)"
    )
    queued = [{"op": "run", "task_id": "q"}, {"op": "run", "task_id": "q"}]
    body = await batch(client, {"atomic": True, "operations": queued})
    assert [r["status"] for r in body["results"]] == [200, 200]
    ids = {r["result"]["execution_id"] for r in body["results"]}
    assert len(ids) == 2


async def test_a_batch_run_is_answered_once_its_start_record_is_committed(
    client: Any, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = [add_op("a"), {"op": "run", "task_id": "a"}]
    answer = await answered_after_start_record(
        daemon, monkeypatch, lambda: batch(client, {"operations": ops})
    )
    execution_id = answer["results"][1]["result"]["execution_id"]
    assert await daemon._store.get_execution(execution_id) is not None
