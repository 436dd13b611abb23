"""Calendar schedules (``cron``, ``repeat_minutes``) and tasks that run ``after`` others,
in the scheduler on a fake clock (MockClock with autojump) with a fake runner.

The DST table of issue 13 is pinned here, in New York (spring forward on 2026-03-08 at
02:00 to 03:00; fall back on 2026-11-01 at 02:00 to 01:00), through the scheduler itself:
each next due time is what the scheduler computes after the previous start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from omnimind_trio.models import OnMissed, Outcome, Priority, TaskCounters, TaskSpec, Trigger
from omnimind_trio.scheduling import TaskEntry, calendar

from .test_scheduler import Harness, harness

NEW_YORK = ZoneInfo("America/New_York")


def epoch(*parts: int, fold: int = 0) -> float:
    """A New York wall-clock time as epoch seconds."""
    year, month, day, hour, minute = parts
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK, fold=fold).timestamp()


def local(moment: float) -> str:
    """An epoch as New York wall-clock time with its offset: '2026-03-08 03:00 -04'."""
    return datetime.fromtimestamp(moment, NEW_YORK).strftime("%Y-%m-%d %H:%M %z")[:-2]


def add(h: Harness, task_id: str, *, first_due: float | None = None, **fields: Any) -> TaskEntry:
    """Register a CRITICAL task (no gate holds it) first due at ``first_due``, or, for a
    cron task, at its first time after now (as the daemon registers one)."""
    fields.setdefault("timezone", "America/New_York" if "cron" in fields else None)
    spec = TaskSpec(
        task_id=task_id,
        name=task_id,
        description="",
        priority=fields.pop("priority", Priority.CRITICAL),
        code="def execute(): pass",
        **fields,
    )
    if first_due is None and spec.after is None:
        first_due = h.scheduler.next_due_after(spec, h.wall.now())
    entry = TaskEntry(
        spec,
        TaskCounters(),
        seq=len(h.scheduler.tasks),
        created_at=h.wall.now(),
        next_due=first_due,
    )
    h.scheduler.add(entry)
    return entry


@asynccontextmanager
async def wall_harness(start: float) -> AsyncIterator[Harness]:
    """The scheduler harness with starts recorded in wall-clock epoch seconds."""
    async with harness(start) as h:
        h.runner.clock = h.wall.now
        yield h


def starts(h: Harness, task_id: str) -> list[str]:
    return [local(when) for when in h.runner.started(task_id)]


# -- the DST table ------------------------------------------------------------------------


async def test_a_time_in_the_spring_forward_gap_runs_once_right_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 3, 7, 12, 0)) as h:
        add(h, "nightly", cron="30 2 * * *")
        await trio.sleep(3 * 86400)
        assert starts(h, "nightly") == [
            "2026-03-08 03:00 -04",  # 02:30 does not exist that night: right after the gap
            "2026-03-09 02:30 -04",
            "2026-03-10 02:30 -04",
        ]


async def test_a_time_in_the_repeated_fall_back_hour_runs_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 10, 31, 12, 0)) as h:
        add(h, "nightly", cron="30 1 * * *")
        await trio.sleep(3 * 86400)
        assert starts(h, "nightly") == [
            "2026-11-01 01:30 -04",  # 01:30 comes twice that night: it runs at the first
            "2026-11-02 01:30 -05",
            "2026-11-03 01:30 -05",
        ]


async def test_every_30_minutes_of_the_repeated_hour_runs_in_both_of_its_passes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 10, 31, 12, 0)) as h:
        add(h, "halfhourly", cron="*/30 1 * * *")
        await trio.sleep(86400 + 6 * 3600)
        assert starts(h, "halfhourly") == [
            "2026-11-01 01:00 -04",
            "2026-11-01 01:30 -04",
            "2026-11-01 01:00 -05",
            "2026-11-01 01:30 -05",
        ]


async def test_added_in_the_second_pass_of_the_repeated_hour_it_waits_for_the_next_day(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 01:10 EST, after 01:30 EDT has passed: cronsim's wall-clock answer (01:30, the first
    # pass) is in the past. It must not run at once, nor spin on that past time.
    async with wall_harness(epoch(2026, 11, 1, 1, 10, fold=1)) as h:
        entry = add(h, "nightly", cron="30 1 * * *")
        assert local(entry.next_due or 0) == "2026-11-02 01:30 -05"
        await trio.sleep(2 * 86400 + 3600)
        assert starts(h, "nightly") == ["2026-11-02 01:30 -05", "2026-11-03 01:30 -05"]


async def test_a_list_of_fixed_minutes_runs_once_in_the_repeated_hour(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Unlike */30, a list of fixed times is a fixed-time job to Vixie cron: first pass only.
    async with wall_harness(epoch(2026, 10, 31, 12, 0)) as h:
        add(h, "twice", cron="0,30 1 * * *")
        await trio.sleep(86400)
        assert starts(h, "twice") == ["2026-11-01 01:00 -04", "2026-11-01 01:30 -04"]


async def test_cron_runs_start_exactly_on_time_on_the_fake_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 6, 1, 0, 0)) as h:
        add(h, "quarterly", cron="*/15 * * * *")
        await trio.sleep(6 * 3600 + 1)
        started = h.runner.started("quarterly")
        assert local(started[0]) == "2026-06-01 00:15 -04"  # strictly after the add
        expected = calendar.cron_after("*/15 * * * *", epoch(2026, 6, 1, 0, 0), NEW_YORK, 24)
        assert [round(b - a, 6) for a, b in zip(expected, started, strict=True)] == [0.0] * 24


async def test_a_cron_task_waits_for_its_first_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 6, 1, 12, 0)) as h:
        entry = add(h, "daily", cron="@daily")
        await trio.sleep(60)
        assert h.runner.starts == []
        assert local(entry.next_due or 0) == "2026-06-02 00:00 -04"
        explained = h.scheduler.explain(entry)
        assert explained is not None and explained["reason"] == "scheduled"


async def test_the_daemon_zone_applies_to_a_cron_task_without_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 6, 1, 12, 0)) as h:
        h.scheduler.timezone = ZoneInfo("Asia/Tokyo")
        entry = add(h, "daily", cron="0 9 * * *", timezone=None)
        tokyo = datetime.fromtimestamp(entry.next_due or 0, ZoneInfo("Asia/Tokyo"))
        assert (tokyo.hour, tokyo.minute) == (9, 0)


async def test_missed_cron_times_catch_up_once_or_wait_for_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 6, 1, 12, 0)) as h:
        # Both were due at 09:00, three hours before the daemon came back.
        add(h, "once", cron="0 9 * * *", first_due=epoch(2026, 6, 1, 9, 0))
        add(h, "skip", cron="0 9 * * *", first_due=epoch(2026, 6, 1, 9, 0))
        h.scheduler.tasks["skip"].spec = h.scheduler.tasks["skip"].spec.replace(
            on_missed=OnMissed.SKIP
        )
        await trio.sleep(86400)
        assert h.runner.starts[0][:2] == ("once", Trigger.CATCH_UP)
        assert starts(h, "once") == ["2026-06-01 12:00 -04", "2026-06-02 09:00 -04"]
        assert starts(h, "skip") == ["2026-06-02 09:00 -04"]
        [(task_id, _, reason)] = h.runner.skipped
        assert task_id == "skip" and reason.startswith("missed: it fell due 10800 s ago")


# -- repeat_minutes -----------------------------------------------------------------------


async def test_repeat_minutes_is_due_at_once_then_every_n_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        add(h, "poll", repeat_minutes=5, first_due=h.wall.now())
        await trio.sleep(16 * 60)
        assert h.runner.started("poll") == [0.0, 300.0, 600.0, 900.0]


# -- changing the schedule ----------------------------------------------------------------


async def test_switching_from_an_interval_to_cron_moves_the_next_due_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with wall_harness(epoch(2026, 6, 1, 12, 0)) as h:
        entry = add(h, "job", repeat_hours=1, first_due=epoch(2026, 6, 1, 12, 0))
        await trio.sleep(60)
        assert starts(h, "job") == ["2026-06-01 12:00 -04"]
        h.scheduler.update(
            "job", entry.spec.replace(repeat_hours=None, cron="0 18 * * *", timezone=None)
        )
        h.scheduler.timezone = NEW_YORK
        h.scheduler.update("job", entry.spec.replace(timezone="America/New_York"))
        await trio.sleep(86400)
        assert starts(h, "job") == ["2026-06-01 12:00 -04", "2026-06-01 18:00 -04"]


# -- upcoming -----------------------------------------------------------------------------


def test_upcoming_lists_the_next_five_due_times() -> None:
    def spec(**fields: Any) -> TaskSpec:
        return TaskSpec("t", "t", "", Priority.LOW, "", **fields)

    start = epoch(2026, 11, 1, 0, 30)
    cron = calendar.upcoming(spec(cron="*/30 1 * * *", timezone="America/New_York"), start, None)
    assert [local(t) for t in cron] == [
        "2026-11-01 00:30 -04",
        "2026-11-01 01:00 -04",
        "2026-11-01 01:30 -04",
        "2026-11-01 01:00 -05",
        "2026-11-01 01:30 -05",
    ]
    assert calendar.upcoming(spec(repeat_minutes=10), 1000.0, None) == [
        1000.0,
        1600.0,
        2200.0,
        2800.0,
        3400.0,
    ]
    assert calendar.upcoming(spec(), 1000.0, None) == [1000.0]  # a one-shot
    assert calendar.upcoming(spec(after=("a",)), None, None) == []


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"cron": "30 2 * * *"}, "At 02:30 every day"),
        ({"cron": "@weekly", "timezone": "Europe/Paris"}, "At 00:00 on Sunday (Europe/Paris)"),
        ({"repeat_minutes": 5}, "every 5 minutes"),
        ({"repeat_hours": 1}, "every hour"),
        ({"repeat_hours": 24}, "every day"),
        ({"repeat_hours": 48}, "every 2 days"),
        ({"repeat_hours": 168}, "every week"),
        ({"repeat_minutes": 90}, "every 90 minutes"),
        ({"repeat_minutes": 120}, "every 2 hours"),
        ({"after": ("backup", "sync")}, "after backup, sync"),
        ({}, "once"),
    ],
)
def test_a_schedule_in_words(fields: dict[str, Any], words: str) -> None:
    assert calendar.describe(TaskSpec("t", "t", "", Priority.LOW, "", **fields)) == words


# -- after ----------------------------------------------------------------------------------


async def test_after_runs_once_every_upstream_task_has_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations.update({"fetch": 10, "clean": 30})
        add(h, "report", after=("fetch", "clean"))
        add(h, "fetch", repeat_hours=1, first_due=h.wall.now())
        add(h, "clean", repeat_hours=1, first_due=h.wall.now())
        await trio.sleep(20)
        explained = h.scheduler.explain(h.scheduler.tasks["report"])
        assert explained is not None and explained["reason"] == "upstream"
        assert explained["upstream"] == ["clean"]
        assert "waiting for a succeeded run of clean" in explained["detail"]
        await trio.sleep(3000)
        # Once, when the slower one has succeeded (30 s), with its own trigger.
        assert [(n, t, w) for n, t, w in h.runner.starts if n == "report"] == [
            ("report", Trigger.UPSTREAM, 30.0)
        ]
        await trio.sleep(3600)
        assert h.runner.started("report") == [30.0, 3630.0]  # and after each round


async def test_a_failed_upstream_run_does_not_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.outcomes["fetch"] = [Outcome.FAILED, Outcome.SUCCEEDED]
        add(h, "report", after=("fetch",))
        add(h, "fetch", repeat_hours=1, first_due=h.wall.now())
        await trio.sleep(3000)
        assert h.runner.started("report") == []
        await trio.sleep(3600)
        assert h.runner.started("report") == [3600.0]


async def test_an_upstream_success_during_the_run_starts_it_again_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["report"] = 100
        add(h, "report", after=("fetch",))
        add(h, "fetch", repeat_minutes=1, first_due=h.wall.now())
        await trio.sleep(150)
        # fetch succeeded at 0 (report starts), 60 and 120 (during report's run): one
        # more run when it ends at 100, not two.
        assert h.runner.started("report") == [0.0, 100.0]


async def test_a_paused_after_task_runs_when_resumed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        add(h, "report", after=("fetch",))
        h.scheduler.pause("report")
        add(h, "fetch", first_due=h.wall.now())
        await trio.sleep(60)
        assert h.runner.started("report") == []
        h.scheduler.resume("report")
        await trio.sleep(1)
        assert h.runner.started("report") == [60.0]


async def test_changing_after_and_priority_of_a_waiting_task_moves_its_links(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        entry = add(h, "report", priority=Priority.LOW, after=("fetch",))
        add(h, "fetch", first_due=h.wall.now())
        add(h, "other", first_due=None)
        await trio.sleep(1)
        assert entry.ready_since is not None  # fetch succeeded: report waits for LOW's gate
        spec = entry.spec.replace(priority=Priority.MEDIUM, after=("other",))
        h.scheduler.update("report", spec)
        assert h.scheduler.dependents("fetch") == []
        assert h.scheduler.dependents("other") == ["report"]


async def test_upstream_successes_restored_at_start_up_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        entry = add(h, "report", after=("a", "b"))
        add(h, "a", first_due=None)
        add(h, "b", first_due=None)
        h.scheduler.mark_upstream_done(entry, {"a"})
        await trio.sleep(1)
        assert h.runner.started("report") == []
        h.scheduler.mark_upstream_done(entry, {"b", "unrelated"})
        await trio.sleep(1)
        assert h.runner.started("report") == [1.0]
        assert entry.status.value == "scheduled"  # an after task is never "done"
