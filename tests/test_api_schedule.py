"""The schedule fields over the API: cron, timezone, repeat_minutes, after; their errors,
PATCH semantics, upcoming, deleting a task others wait on, and a restart."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from omnimind_trio import open_daemon
from omnimind_trio.daemon import Daemon
from omnimind_trio.models import TASK_FIELDS, parse_task_spec
from omnimind_trio.scheduling import FakeSource

from .conftest import make_settings
from .test_api import TASK, call, client, wait_for

__all__ = ["client"]  # the fixture, re-used

QUICK = "def execute():\n    return {'ok': True}"
BASE = {key: value for key, value in TASK.items() if key != "repeat_hours"}
"""The API document's example task without its repeat_hours: the tests give schedules."""


async def send(client: Any, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = await call(client, method, path, body)
    data = await response.get_json()
    assert response.status_code == status, data
    return data


async def add(client: Any, status: int = 200, **fields: Any) -> Any:
    return await send(client, "POST", "/daemon/tasks/add", {**BASE, **fields}, status)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"cron": "0 3 * * *", "repeat_hours": 2},
            "cron and repeat_hours are mutually exclusive: give one (null clears the other "
            "in a PATCH)",
        ),
        (
            {"repeat_hours": 2, "repeat_minutes": 30},
            "repeat_hours and repeat_minutes are mutually exclusive: give one (null clears "
            "the other in a PATCH)",
        ),
        (
            {"repeat_minutes": 5, "after": ["x"]},
            "repeat_minutes and after are mutually exclusive: give one (null clears the other "
            "in a PATCH)",
        ),
        ({"cron": "61 * * * *"}, "cron: '61 * * * *': Bad minute"),
        ({"cron": "0 0 */40 * 1#5"}, "cron: '0 0 */40 * 1#5' never matches a date"),
        (
            {"cron": "0 3 * *"},
            "cron: '0 3 * *' has 4 fields; cron takes five (minute hour day-of-month month "
            "day-of-week) or a macro such as @daily",
        ),
        (
            {"cron": "@reboot"},
            "cron: unknown macro '@reboot' (known: @hourly, @daily, @midnight, @weekly, "
            "@monthly, @yearly, @annually)",
        ),
        (
            {"cron": "@daily", "timezone": "Mars/Olympus"},
            "timezone: unknown time zone 'Mars/Olympus' (an IANA name, e.g. Europe/Paris)",
        ),
        (
            {"cron": "@daily", "timezone": "America"},  # a folder of the zone database
            "timezone: unknown time zone 'America' (an IANA name, e.g. Europe/Paris)",
        ),
        ({"repeat_minutes": 0}, "repeat_minutes: Input should be greater than or equal to 1"),
        (
            {"repeat_minutes": 527041},
            "repeat_minutes: Input should be less than or equal to 527040",
        ),
        ({"after": "backup"}, "after: give a list of task ids"),
        ({"after": []}, "after: List should have at least 1 item after validation, not 0"),
        ({"after": ["no such"]}, "after: 'no such' is not a task id"),
        ({"after": ["ghost"]}, "after: unknown task 'ghost'"),
        ({"after": ["my_custom_task"]}, "after: a task cannot wait for itself (my_custom_task)"),
    ],
)
async def test_bad_schedules_get_400_naming_the_problem(
    client: Any, daemon: Daemon, fields: dict[str, Any], detail: str
) -> None:
    assert await add(client, 400, **fields) == {"detail": detail}
    assert "my_custom_task" not in {t.task_id for t in daemon.list_tasks().tasks}


async def test_a_cron_task_waits_for_its_first_time_with_five_upcoming(
    client: Any, daemon: Daemon
) -> None:
    await add(client, priority="CRITICAL", code=QUICK, cron="0 0 1 1 *", timezone="Asia/Tokyo")
    body = await send(client, "GET", "/daemon/tasks/my_custom_task")
    assert body["status"] == "scheduled" and body["execution_count"] == 0  # not run at add
    assert body["cron"] == "0 0 1 1 *" and body["timezone"] == "Asia/Tokyo"
    assert body["schedule"] == "At 00:00 on January 1 (Asia/Tokyo)"
    assert body["repeat_interval"] is None
    assert len(body["upcoming"]) == 5
    # New Year in Tokyo is 15:00 UTC on December 31.
    assert all(t.endswith("-12-31T15:00:00Z") for t in body["upcoming"])
    assert body["next_execution"] == body["upcoming"][0]


async def test_a_repeat_minutes_task_is_due_at_once(client: Any, daemon: Daemon) -> None:
    await add(client, priority="CRITICAL", code=QUICK, repeat_minutes=10)
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count == 1)
    body = await send(client, "GET", "/daemon/tasks/my_custom_task")
    assert body["repeat_interval"] == "0:10:00" and body["schedule"] == "every 10 minutes"
    upcoming = body["upcoming"]
    assert len(upcoming) == 5 and upcoming[0] == body["next_execution"]


async def test_null_clears_a_schedule_field_so_another_takes_its_place(
    client: Any, daemon: Daemon
) -> None:
    await add(client, repeat_hours=4)
    path = "/daemon/tasks/my_custom_task"
    refused = await send(client, "PATCH", path, {"cron": "@daily"}, 400)
    assert refused["detail"].startswith("cron and repeat_hours are mutually exclusive")
    assert daemon.get_task("my_custom_task").repeat_hours == 4  # unchanged
    changed = await send(client, "PATCH", path, {"cron": "@daily", "repeat_hours": None})
    assert changed["task"]["cron"] == "@daily" and changed["task"]["repeat_hours"] is None
    assert changed["task"]["schedule"] == "At 00:00 every day"
    assert changed["task"]["next_execution"].endswith("T00:00:00Z")  # the daemon's zone: UTC


async def test_after_unknown_cycles_and_deleting_an_upstream(client: Any, daemon: Daemon) -> None:
    await add(client, task_id="fetch", code=QUICK)
    await add(client, task_id="report", code=QUICK, after=["fetch"])
    report = await send(client, "GET", "/daemon/tasks/report")
    assert report["schedule"] == "after fetch" and report["upcoming"] == []
    assert report["status"] == "scheduled" and report["next_execution"] is None
    cycle = await send(client, "PATCH", "/daemon/tasks/fetch", {"after": ["report"]}, 400)
    assert cycle == {"detail": "after: a cycle: fetch -> report -> fetch"}
    refused = await send(client, "DELETE", "/daemon/tasks/fetch", status=409)
    assert refused == {
        "detail": "Task fetch is in the after list of report: change or delete those first"
    }
    assert "fetch" in {t.task_id for t in daemon.list_tasks().tasks}
    await send(client, "PATCH", "/daemon/tasks/report", {"after": None})
    await send(client, "DELETE", "/daemon/tasks/fetch")


async def test_an_after_task_runs_when_its_upstream_succeeds(client: Any, daemon: Daemon) -> None:
    await add(client, task_id="fetch", priority="CRITICAL", code=QUICK, cron="0 0 1 1 *")
    await add(client, task_id="report", priority="CRITICAL", code=QUICK, after=["fetch"])
    waiting = await send(client, "GET", "/daemon/tasks/report")
    assert waiting["waiting"]["reason"] == "upstream" and waiting["waiting"]["upstream"] == [
        "fetch"
    ]
    assert "waiting for a succeeded run of fetch" in waiting["waiting"]["detail"]
    await send(client, "POST", "/daemon/tasks/fetch/run")
    await wait_for(lambda: daemon.get_task("report").execution_count == 1)
    history = await send(client, "GET", "/daemon/executions?task_id=report")
    assert [e["trigger"] for e in history["executions"]] == ["upstream"]


async def test_every_new_field_and_the_after_state_survive_a_restart(
    tmp_path: Path, source: FakeSource
) -> None:
    settings = make_settings(tmp_path)
    fields: dict[str, Any] = {
        "cron": "30 2 * * 1-5",
        "timezone": "Europe/Paris",
        "notify": {"on": ["failure"], "webhook": "http://127.0.0.1:9/hook"},
        "python": sys.executable,
        "env": {"REGION": "eu"},
        "secrets": {"TOKEN": "t0ken"},
    }
    async with open_daemon(settings, metrics_source=source) as daemon:
        spec = parse_task_spec({**BASE, **fields}, max_code_bytes=10_000)
        await daemon.add_task(spec)
        # b runs after a (paused, so it never runs by itself); a succeeds once.
        a = parse_task_spec({**BASE, "task_id": "a", "code": QUICK}, max_code_bytes=10_000)
        await daemon.add_task(a)
        await wait_for(lambda: daemon.get_task("a").execution_count == 1)
        b = parse_task_spec(
            {**BASE, "task_id": "b", "code": QUICK, "after": ["a", "my_custom_task"]},
            max_code_bytes=10_000,
        )
        await daemon.add_task(b)
        before = daemon.get_task("my_custom_task")
    async with open_daemon(settings, metrics_source=source) as daemon:
        after = daemon.get_task("my_custom_task")
        for name in TASK_FIELDS:
            assert getattr(after, name) == getattr(before, name), name
        assert after.secrets == ["TOKEN"] and after.upcoming == before.upcoming
        assert after.json_body()["notify"] == {  # every key, though "on" alone was sent
            "on": ["failure"],
            "webhook": "http://127.0.0.1:9/hook",
            "desktop": False,
        }
        # a succeeded before b was added: it does not count (not since b's start or
        # creation); b still waits for both.
        waiting = daemon.get_task("b").waiting
        assert waiting is not None and waiting.upstream == ["a", "my_custom_task"]


async def test_an_atomic_batch_adds_a_task_after_one_it_adds_before(
    client: Any, daemon: Daemon
) -> None:
    def add_op(task_id: str, **fields: Any) -> dict[str, Any]:
        return {"op": "add", "task": {**BASE, "task_id": task_id, "code": QUICK, **fields}}

    refused = await send(
        client,
        "POST",
        "/daemon/tasks/batch",
        {"atomic": True, "operations": [add_op("b", after=["a"]), add_op("a")]},
    )
    assert refused["applied"] == 0 and refused["results"][0] == {
        "index": 0,
        "status": 400,
        "detail": "after: unknown task 'a'",
    }
    assert not {"a", "b"} & {t.task_id for t in daemon.list_tasks().tasks}  # nothing applied

    done = await send(
        client,
        "POST",
        "/daemon/tasks/batch",
        {"atomic": True, "operations": [add_op("a"), add_op("b", after=["a"])]},
    )
    assert [r["status"] for r in done["results"]] == [200, 200]
    assert daemon.get_task("b").after == ("a",)

    # Deleting a while b waits on it is refused before anything is applied; deleting b
    # first makes it possible.
    blocked = await send(
        client,
        "POST",
        "/daemon/tasks/batch",
        {"atomic": True, "operations": [{"op": "delete", "task_id": "a"}]},
    )
    assert blocked["results"][0]["status"] == 409
    assert blocked["results"][0]["detail"].startswith("Task a is in the after list of b")
    ordered = [{"op": "delete", "task_id": "b"}, {"op": "delete", "task_id": "a"}]
    await send(client, "POST", "/daemon/tasks/batch", {"atomic": True, "operations": ordered})
    assert not {"a", "b"} & {t.task_id for t in daemon.list_tasks().tasks}


async def test_a_chain_through_an_in_process_task_not_registered_again(
    tmp_path: Path, source: FakeSource
) -> None:
    """After a restart, an in-process upstream its program has not registered (yet) is
    not a task: adding a task after one that waits for it still works."""
    settings = make_settings(tmp_path)

    async def nothing() -> None:
        return None

    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.register("inproc", nothing, name="In process", repeat_hours=24)
        b = {**BASE, "task_id": "b", "after": ["inproc"]}
        await daemon.add_task(parse_task_spec(b, max_code_bytes=10_000))
    async with open_daemon(settings, metrics_source=source) as daemon:
        c = {**BASE, "task_id": "c", "after": ["b"]}
        await daemon.add_task(parse_task_spec(c, max_code_bytes=10_000))
        assert daemon.get_task("c").after == ("b",)
