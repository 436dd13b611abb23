"""The scheduler on a fake clock (MockClock with autojump) with a fake runner."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from omnimind_trio.exceptions import Conflict, TaskExists, TaskNotFound
from omnimind_trio.models import (
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    TaskCounters,
    TaskSpec,
    Trigger,
)
from omnimind_trio.scheduling import (
    ConditionState,
    GateSet,
    Running,
    Scheduler,
    SleepWindow,
    TaskEntry,
    TrioWallClock,
)

NOON = datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@dataclass
class FakeRunner:
    """Records every start; each run lasts ``durations[task_id]`` virtual seconds (frozen
    time excluded from its timeout) and ends with the next of ``outcomes[task_id]``."""

    clock: Callable[[], float]
    durations: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    starts: list[tuple[str, Trigger, float]] = field(default_factory=list)
    runs: list[tuple[str, Running]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    skipped: list[tuple[str, float, str]] = field(default_factory=list)

    async def __call__(self, entry: TaskEntry, running: Running) -> Outcome:
        self.starts.append((entry.task_id, running.trigger, self.clock()))
        self.runs.append((entry.task_id, running))
        running.start_timeout(self.timeouts.get(entry.task_id, math.inf))
        with running.scope:
            # Work advances only while not frozen, like a SIGSTOPped process.
            remaining = self.durations.get(entry.task_id, 0.0)
            while remaining > 0:
                step = min(remaining, 5.0)
                await trio.sleep(step)
                if not running.frozen:
                    remaining -= step
        if running.scope.cancelled_caught:
            if running.cancel_reason is None:
                return Outcome.TIMED_OUT
            self.cancelled.append(entry.task_id)
            return Outcome.CANCELLED
        planned = self.outcomes.get(entry.task_id)
        return planned.pop(0) if planned else Outcome.SUCCEEDED

    async def record(self, entry: TaskEntry, due: float, trigger: Trigger, reason: str) -> None:
        self.skipped.append((entry.task_id, due - NOON, reason))

    def started(self, task_id: str) -> list[float]:
        return [when for name, _, when in self.starts if name == task_id]


def waiting_reason(scheduler: Scheduler, entry: TaskEntry) -> str | None:
    """Why a due task is not running, in words; None when it is not waiting."""
    explained = scheduler.explain(entry) if entry.ready_since is not None else None
    return None if explained is None else str(explained["detail"])


@dataclass
class Harness:
    scheduler: Scheduler
    runner: FakeRunner
    gates: GateSet
    wall: TrioWallClock

    def add(
        self,
        task_id: str,
        priority: Priority = Priority.CRITICAL,
        *,
        repeat_hours: int | None = None,
        due_in: float = 0.0,
        **policies: Any,
    ) -> TaskEntry:
        spec = TaskSpec(
            task_id, task_id, "", priority, "def execute(): pass", repeat_hours, **policies
        )
        entry = TaskEntry(
            spec,
            TaskCounters(),
            seq=len(self.scheduler.tasks),
            created_at=self.wall.now(),
            next_due=self.wall.now() + due_in,
        )
        self.scheduler.add(entry)
        return entry

    def load(self, cpu_percent: float) -> None:
        if self.gates.update(cpu_percent, trio.current_time(), self.wall.now()):
            self.scheduler.wake()


@asynccontextmanager
async def harness(
    start_epoch: float = NOON,
    *,
    max_concurrent: int = 2,
    max_critical: int = 8,
    conditions: ConditionState | None = None,
    node: str = "laptop",
) -> AsyncIterator[Harness]:
    wall = TrioWallClock(start_epoch)
    gates = GateSet.create(
        idle_cpu_percent=20,
        low_activity_cpu_percent=50,
        window=SleepWindow.parse("00:00-06:00", "UTC"),
        open_seconds=0,
        close_seconds=0,
    )
    runner = FakeRunner(lambda: trio.current_time())
    scheduler = Scheduler(
        clock=wall,
        gates=gates,
        runner=runner,
        node=node,
        conditions=conditions,
        max_concurrent=max_concurrent,
        max_concurrent_critical=max_critical,
        recorder=runner.record,
        rng=random.Random(7),
    )
    h = Harness(scheduler, runner, gates, wall)
    h.load(90.0)  # busy machine, daytime: only CRITICAL may run
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        yield h
        nursery.cancel_scope.cancel()


async def test_critical_runs_at_once_whatever_the_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("urgent")
        await trio.sleep(0.001)
        assert h.runner.started("urgent") == [0.0]


async def test_high_waits_for_idle_and_medium_for_low_activity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("high", Priority.HIGH)
        h.add("medium", Priority.MEDIUM)
        await trio.sleep(10)
        assert h.runner.starts == []
        assert h.scheduler.pending_count == 2
        reason = waiting_reason(h.scheduler, h.scheduler.tasks["high"]) or ""
        assert reason == (
            "waiting for the machine to be idle: CPU outside the daemon 90 %, needs < 20 %"
            " (CPU is above the threshold)"
        )

        h.load(35.0)  # low activity
        await trio.sleep(1)
        assert h.runner.started("medium") == [10.0]
        assert h.runner.started("high") == []

        h.load(5.0)  # idle
        await trio.sleep(1)
        assert h.runner.started("high") == [11.0]
        assert h.scheduler.pending_count == 0


async def test_low_runs_when_the_sleep_window_opens(autojump_clock: trio.testing.MockClock) -> None:
    evening = datetime(2026, 1, 1, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    async with harness(evening) as h:
        h.add("nightly", Priority.LOW)
        # The load monitor re-evaluates the window once a second; so does this test.
        for _ in range(3700):
            await trio.sleep(1)
            h.load(90.0)
            if h.runner.starts:
                break
        assert h.runner.started("nightly") == [3600.0]  # 00:00 exactly


async def test_due_tasks_start_in_priority_order_fifo_within_a_priority(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(max_concurrent=1) as h:
        h.runner.durations.update({"m1": 5, "m2": 5, "h1": 5, "h2": 5})
        for task_id, priority in [
            ("m1", Priority.MEDIUM),
            ("h1", Priority.HIGH),
            ("m2", Priority.MEDIUM),
            ("h2", Priority.HIGH),
        ]:
            h.add(task_id, priority)
        await trio.sleep(1)
        h.load(5.0)
        await trio.sleep(30)
        assert [name for name, _, _ in h.runner.starts] == ["h1", "h2", "m1", "m2"]
        assert [when for _, _, when in h.runner.starts] == [1.0, 6.0, 11.0, 16.0]


async def test_concurrency_limit_and_critical_slots_are_separate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(max_concurrent=1, max_critical=2) as h:
        h.load(5.0)
        for name in ("a", "b"):
            h.runner.durations[name] = 10
            h.add(name, Priority.HIGH)
        for name in ("c1", "c2", "c3"):
            h.runner.durations[name] = 10
            h.add(name, Priority.CRITICAL)
        await trio.sleep(1)
        assert {name for name, _, _ in h.runner.starts} == {"a", "c1", "c2"}
        assert h.scheduler.running_count == 3
        assert "free slot (1 of 1 in use)" in (
            waiting_reason(h.scheduler, h.scheduler.tasks["b"]) or ""
        )
        await trio.sleep(10)
        assert h.runner.started("b") == [10.0]
        assert h.runner.started("c3") == [10.0]


async def test_repeat_counts_from_the_last_start(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.runner.durations["hourly"] = 600
        h.add("hourly", repeat_hours=1)
        await trio.sleep(3 * 3600 + 1)
        assert h.runner.started("hourly") == [0.0, 3600.0, 7200.0, 10800.0]


async def test_overlap_queue_runs_again_right_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["slow"] = 5400  # 1.5 h for an hourly task
        h.add("slow", repeat_hours=1, overlap=Overlap.QUEUE)
        await trio.sleep(3 * 3600 + 1)
        assert h.runner.started("slow") == [0.0, 5400.0, 10800.0]


async def test_one_shot_runs_once(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        entry = h.add("once")
        await trio.sleep(48 * 3600)
        assert h.runner.started("once") == [0.0]
        assert entry.next_due is None
        assert entry.status == "done"


async def test_a_task_due_later_waits_for_its_time(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.add("later", due_in=90)
        await trio.sleep(200)
        assert h.runner.started("later") == [90.0]


async def test_run_now_skips_the_gate_and_conflicts_while_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["nightly"] = 60
        h.add("nightly", Priority.LOW, due_in=3600 * 20)
        await trio.sleep(5)
        h.scheduler.run_now("nightly")
        await trio.sleep(1)
        assert h.runner.starts == [("nightly", Trigger.RUN_NOW, 5.0)]
        with pytest.raises(Conflict, match="already running: nightly"):
            h.scheduler.run_now("nightly")


async def test_pause_holds_a_due_task_and_resume_releases_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("p", Priority.HIGH)
        await trio.sleep(1)
        assert h.scheduler.pending_count == 1
        h.scheduler.pause("p")
        assert h.scheduler.pending_count == 0
        h.load(5.0)
        await trio.sleep(10)
        assert h.runner.starts == []
        h.scheduler.resume("p")
        await trio.sleep(1)
        assert h.runner.started("p") == [11.0]


async def test_cancel_and_remove_stop_the_running_execution(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations.update({"c": 100, "r": 100})
        h.add("c")
        h.add("r")
        await trio.sleep(1)
        h.scheduler.cancel("c")
        h.scheduler.remove("r")
        await trio.sleep(0.1)
        assert sorted(h.runner.cancelled) == ["c", "r"]
        assert h.scheduler.running_count == 0
        assert "r" not in h.scheduler.tasks
        with pytest.raises(Conflict, match="not running"):
            h.scheduler.cancel("c")


async def test_a_cancel_before_the_run_enters_its_scope_ends_it_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = Running(Trigger.RUN_NOW, scheduled_at=NOON, started_at=NOON)
    run.cancel("cancelled by request")
    run.cancel("the task was deleted")  # the first reason is the one recorded
    run.start_timeout(10)
    started = trio.current_time()
    with run.scope:
        await trio.sleep(5)
    assert run.scope.cancelled_caught
    assert trio.current_time() == started
    assert run.cancel_reason == "cancelled by request"


async def test_a_timeout_started_while_frozen_counts_from_the_thaw(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = Running(Trigger.SCHEDULE, scheduled_at=NOON, started_at=NOON)
    started = trio.current_time()
    run.freeze(NOON, "the machine became busy")
    run.start_timeout(10)
    async with trio.open_nursery() as nursery:

        async def thaw_later() -> None:
            await trio.sleep(100)
            run.thaw(NOON + 100)

        nursery.start_soon(thaw_later)
        with run.scope:
            await trio.sleep_forever()
    assert trio.current_time() - started == 110
    assert run.scope.cancelled_caught and run.cancel_reason is None


async def test_unknown_and_duplicate_ids(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.add("x", due_in=100)
        with pytest.raises(TaskExists):
            h.add("x")
        for action in (h.scheduler.pause, h.scheduler.resume, h.scheduler.run_now):
            with pytest.raises(TaskNotFound, match="Task not found: nope"):
                action("nope")


async def test_stopping_the_scheduler_cancels_every_execution(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations.update({"a": 100, "b": 100})
        h.add("a")
        h.add("b")
        await trio.sleep(1)
        assert h.scheduler.running_count == 2
    assert h.scheduler.running_count == 0
    assert h.scheduler.tasks["a"].running is None


async def test_dispatch_cost_does_not_grow_with_idle_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        for i in range(5000):
            h.add(f"later{i}", due_in=86400 + i)
        h.add("now")
        await trio.sleep(1)
        assert h.runner.started("now") == [0.0]
        assert h.scheduler.dispatches == 1


# -- overlap ---------------------------------------------------------------------------


async def test_overlap_skip_records_the_skipped_run_and_keeps_the_grid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["slow"] = 5400
        h.add("slow", repeat_hours=1)  # overlap=skip is the default
        await trio.sleep(4 * 3600 + 1)
        assert h.runner.started("slow") == [0.0, 7200.0, 14400.0]
        assert [(due, reason) for _, due, reason in h.runner.skipped] == [
            (3600.0, "the previous run was still running"),
            (10800.0, "the previous run was still running"),
        ]


async def test_overlap_replace_cancels_the_running_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["r"] = 5400
        h.add("r", repeat_hours=1, overlap=Overlap.REPLACE)
        await trio.sleep(2 * 3600 + 1)
        assert h.runner.started("r") == [0.0, 3600.0, 7200.0]
        assert h.runner.cancelled == ["r", "r"]
        first = h.runner.runs[0][1]
        assert first.cancel_reason == "replaced by a newer run (overlap=replace)"


async def test_overlap_allow_runs_side_by_side(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.runner.durations["a"] = 5400
        h.add("a", repeat_hours=1, overlap=Overlap.ALLOW)
        await trio.sleep(3700)
        assert h.runner.started("a") == [0.0, 3600.0]
        assert len(h.scheduler.tasks["a"].runs) == 2
        h.scheduler.run_now("a")  # no 409 under allow
        await trio.sleep(1)
        assert len(h.scheduler.tasks["a"].runs) == 3


# -- missed runs -----------------------------------------------------------------------


async def test_missed_runs_catch_up_once(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.add("backup", repeat_hours=1, due_in=-3 * 3600 - 60)  # three slots missed
        await trio.sleep(2 * 3600 - 10)
        assert h.runner.starts[0] == ("backup", Trigger.CATCH_UP, 0.0)
        assert h.runner.started("backup") == [0.0, 3600.0]  # once, then every hour


async def test_missed_runs_skipped_wait_for_the_next_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("report", repeat_hours=1, due_in=-3 * 3600 - 60, on_missed=OnMissed.SKIP)
        await trio.sleep(3600)
        assert h.runner.started("report") == [3540.0]  # the next slot on its hourly grid
        [(_, due, reason)] = h.runner.skipped
        assert due == -3 * 3600 - 60
        assert reason.startswith("missed: it fell due 10860 s ago")


async def test_a_little_lateness_is_not_a_missed_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("restart", repeat_hours=1, due_in=-120, on_missed=OnMissed.SKIP)
        await trio.sleep(1)
        assert h.runner.starts == [("restart", Trigger.SCHEDULE, 0.0)]


async def test_catch_ups_are_released_one_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        for name in ("a", "b", "c"):
            h.runner.durations[name] = 10
            h.add(name, repeat_hours=24, due_in=-86400 * 2)
        await trio.sleep(1)
        assert "catch-ups of missed runs go one at a time" in (
            waiting_reason(h.scheduler, h.scheduler.tasks["b"]) or ""
        )
        await trio.sleep(60)
        assert [(n, when) for n, _, when in h.runner.starts] == [
            ("a", 0.0),
            ("b", 10.0),
            ("c", 20.0),
        ]


async def test_a_suspend_gap_is_a_missed_run(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.runner.durations["hourly"] = 1
        h.add("hourly", repeat_hours=1, on_missed=OnMissed.SKIP)
        await trio.sleep(10)
        # The machine sleeps for five hours: the wall clock leaps, Trio's clock does not.
        h.wall._offset += 5 * 3600  # type: ignore[attr-defined]
        h.scheduler.wake()
        await trio.sleep(1)
        [(_, due, reason)] = h.runner.skipped
        assert due == 3600.0 and reason.startswith("missed")
        next_due = h.scheduler.tasks["hourly"].next_due
        assert next_due is not None and next_due - NOON == 6 * 3600


# -- retries ---------------------------------------------------------------------------


async def test_retries_back_off_exponentially_with_jitter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.outcomes["flaky"] = [Outcome.FAILED] * 10
        h.add("flaky", max_retries=3)
        await trio.sleep(3600)
        starts = h.runner.started("flaky")
        triggers = [t for n, t, _ in h.runner.starts]
        assert triggers == [Trigger.SCHEDULE] + [Trigger.RETRY] * 3
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        for attempt, gap in enumerate(gaps, start=1):
            ceiling = 30 * 2 ** (attempt - 1)
            assert ceiling / 2 <= gap <= ceiling, (attempt, gap)
        assert [run.attempt for _, run in h.runner.runs] == [0, 1, 2, 3]
        assert h.scheduler.tasks["flaky"].retry_at is None  # gave up


async def test_a_retry_that_succeeds_ends_the_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.outcomes["once_bad"] = [Outcome.TIMED_OUT, Outcome.SUCCEEDED]
        entry = h.add("once_bad", max_retries=5, repeat_hours=24)
        await trio.sleep(1)
        explained = h.scheduler.explain(entry) or {}
        assert explained["reason"] == "backoff"
        await trio.sleep(3600)
        assert len(h.runner.started("once_bad")) == 2
        assert entry.retry_attempt == 0 and entry.retry_at is None
        assert entry.next_due is not None and entry.next_due - NOON == 86400  # grid kept


# -- max delay -------------------------------------------------------------------------


async def test_max_delay_runs_a_starved_task_anyway(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:  # noon, busy: LOW waits for the night
        h.runner.durations["nightly"] = 600
        entry = h.add("nightly", Priority.LOW, max_delay_hours=2)
        await trio.sleep(1)
        explained = h.scheduler.explain(entry) or {}
        assert explained["gate"] == "sleep_window"
        assert explained["run_by"] - NOON == 7200
        await trio.sleep(7200)
        assert h.runner.started("nightly") == [7200.0]
        [(_, run)] = h.runner.runs
        assert not run.gated  # forced through a closed gate: never frozen for it


# -- yielding to the user ---------------------------------------------------------------


async def test_a_busy_machine_freezes_gated_runs_and_frozen_time_is_not_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.load(5.0)
        h.runner.durations["heavy"] = 100
        h.runner.timeouts["heavy"] = 150
        h.add("heavy", Priority.HIGH)
        await trio.sleep(50)
        h.load(90.0)  # the user is back
        await trio.sleep(0.001)
        [(_, run)] = h.runner.runs
        assert run.frozen
        await trio.sleep(300)  # frozen for 300 s: more than the timeout
        h.load(5.0)
        await trio.sleep(0.001)
        assert not run.frozen
        await trio.sleep(60)
        [(frozen_at, thawed_at)] = run.pauses
        assert (frozen_at - NOON, thawed_at - NOON) == pytest.approx((50.0, 350.001))
        assert h.runner.cancelled == []
        assert h.scheduler.running_count == 0  # finished, not timed out


async def test_on_busy_cancel_and_continue(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        h.load(5.0)
        for name, policy in (("polite", OnBusy.CANCEL), ("stubborn", OnBusy.CONTINUE)):
            h.runner.durations[name] = 100
            h.add(name, Priority.HIGH, on_busy=policy)
        await trio.sleep(10)
        h.load(90.0)
        await trio.sleep(1)
        assert h.runner.cancelled == ["polite"]
        runs = dict(h.runner.runs)
        assert runs["polite"].cancel_reason is not None
        assert runs["polite"].cancel_reason.startswith("the machine became busy")
        assert not runs["stubborn"].frozen and runs["stubborn"].pauses == []


async def test_critical_and_run_now_executions_are_never_frozen(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations.update({"urgent": 100, "manual": 100})
        h.add("urgent")
        h.add("manual", Priority.LOW, due_in=86400)
        h.scheduler.run_now("manual")
        await trio.sleep(10)
        h.load(99.0)
        await trio.sleep(10)
        assert all(not run.frozen for _, run in h.runner.runs)
        assert len(h.runner.runs) == 2


async def test_explain_reports_the_measurement_and_the_remaining_dwell(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.gates.idle.open_seconds = 5
        entry = h.add("h", Priority.HIGH)
        await trio.sleep(1)
        explained = h.scheduler.explain(entry) or {}
        assert explained["reason"] == "gate" and explained["gate"] == "idle"
        assert (explained["cpu_percent"], explained["threshold_percent"]) == (90.0, 20)
        h.load(10.0)
        await trio.sleep(2)
        h.load(10.0)
        explained = h.scheduler.explain(entry) or {}
        assert explained["dwell_remaining_seconds"] == 3.0
        assert "in 3 s more" in explained["detail"]


async def test_a_priority_change_while_running_gives_back_the_right_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(max_critical=1) as h:
        h.runner.durations.update({"a": 10, "b": 10})
        entry = h.add("a")
        await trio.sleep(1)
        h.scheduler.update("a", dataclasses.replace(entry.spec, priority=Priority.LOW))
        await trio.sleep(10)
        h.add("b")
        await trio.sleep(1)
        assert h.runner.started("b") == [11.0]
        assert h.scheduler.running_count == 1


async def test_a_catch_up_behind_a_closed_gate_does_not_hold_back_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.load(5.0)  # idle at noon: HIGH may run, LOW may not
        h.add("nightly", Priority.LOW, repeat_hours=24, due_in=-2 * 86400)
        h.add("hourly", Priority.HIGH, repeat_hours=1, due_in=-3 * 3600)
        await trio.sleep(1)
        assert h.runner.starts == [("hourly", Trigger.CATCH_UP, 0.0)]


async def test_run_now_of_one_kind_is_not_held_back_by_the_other_kind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(max_concurrent=1, max_critical=1) as h:
        h.runner.durations.update({"c1": 50, "c2": 50, "low": 50})
        h.add("c1")
        h.add("c2", due_in=86400)
        h.add("low", Priority.LOW, due_in=86400)
        await trio.sleep(1)
        h.scheduler.run_now("c2")  # waits: the one CRITICAL slot is taken
        h.scheduler.run_now("low")  # a gated slot is free: must not wait behind c2
        await trio.sleep(1)
        assert h.runner.started("low") == [1.0]
        await trio.sleep(49)
        assert h.runner.started("c2") == [50.0]


async def test_a_priority_change_keeps_the_time_already_waited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:  # busy noon: HIGH and LOW both wait
        entry = h.add("w", Priority.LOW, max_delay_hours=1)
        await trio.sleep(1800)
        h.scheduler.update("w", dataclasses.replace(entry.spec, priority=Priority.HIGH))
        await trio.sleep(1801)
        assert h.runner.started("w") == [3600.0]  # forced an hour after it first waited


# -- run-now requests: each accepted one runs, or it is refused -----------------------


async def test_run_now_while_one_is_requested_is_refused_under_skip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two requests before the first has started (the race of two POSTs): under the default
    ``skip`` the second is refused and says which run it would have been merged into."""
    async with harness() as h:
        h.add("s", Priority.LOW, due_in=3600)
        first = h.scheduler.run_now("s")
        with pytest.raises(Conflict) as refused:
            h.scheduler.run_now("s")
        assert refused.value.detail == f"Task already has a run requested: s (execution {first})"
        await trio.sleep(1)
        assert [run.execution_id for _, run in h.runner.runs] == [first]


async def test_run_now_under_queue_runs_every_request_one_after_the_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["q"] = 60
        h.add("q", Priority.LOW, due_in=3600, overlap=Overlap.QUEUE)
        ids = [h.scheduler.run_now("q"), h.scheduler.run_now("q")]
        await trio.sleep(10)
        ids.append(h.scheduler.run_now("q"))  # while the first runs: queued, no 409
        await trio.sleep(300)
        assert len(set(ids)) == 3
        assert [run.execution_id for _, run in h.runner.runs] == ids
        assert h.runner.started("q") == [0.0, 60.0, 120.0]  # never two at once
        assert all(trigger is Trigger.RUN_NOW for _, trigger, _ in h.runner.starts)


async def test_run_now_under_allow_runs_every_request_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(max_concurrent=4) as h:
        h.runner.durations["a"] = 60
        h.add("a", Priority.LOW, due_in=3600, overlap=Overlap.ALLOW)
        ids = [h.scheduler.run_now("a") for _ in range(3)]
        await trio.sleep(1)
        assert len(set(ids)) == 3
        assert sorted(run.execution_id for _, run in h.runner.runs) == sorted(ids)
        assert h.runner.started("a") == [0.0, 0.0, 0.0]


async def test_run_now_under_replace_replaces_the_running_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["r"] = 60
        h.add("r", Priority.LOW, due_in=3600, overlap=Overlap.REPLACE)
        first = h.scheduler.run_now("r")
        with pytest.raises(Conflict, match=f"already has a run requested: r .execution {first}"):
            h.scheduler.run_now("r")  # nothing runs yet: nothing to replace
        await trio.sleep(10)
        second = h.scheduler.run_now("r")
        await trio.sleep(100)
        assert [run.execution_id for _, run in h.runner.runs] == [first, second]
        assert h.runner.runs[0][1].cancel_reason == "replaced by a newer run (overlap=replace)"
        assert h.runner.started("r") == [0.0, 10.0]


async def test_queued_run_now_requests_are_dropped_by_a_pause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As the pending request is: pause drops what has not started (the facade's
    wait_execution then says so)."""
    async with harness() as h:
        h.runner.durations["q"] = 60
        h.add("q", Priority.LOW, due_in=3600, overlap=Overlap.QUEUE)
        h.scheduler.run_now("q")
        await trio.sleep(1)
        h.scheduler.run_now("q")
        h.scheduler.pause("q")
        await trio.sleep(300)
        assert h.runner.started("q") == [0.0]
        assert not h.scheduler.tasks["q"].requests


async def test_run_now_of_a_daily_task_does_not_grow_the_due_heap_for_ever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each run-now of a repeating task moves its next due time a day away, and the old
    heap items stayed until their time came: 5000 run-nows left 10,000 items (a year of
    runs, a leak). Stale items are dropped as the heap grows; the schedule still holds."""
    async with harness() as h:
        h.runner.durations["daily"] = 1
        h.add("daily", Priority.CRITICAL, repeat_hours=24, due_in=3600)
        h.add("other", Priority.CRITICAL, repeat_hours=24, due_in=7200)
        for _ in range(5000):
            h.scheduler.run_now("daily")
            await trio.sleep(2)  # it runs (1 s) and ends
        assert len(h.runner.started("daily")) == 5000
        assert len(h.scheduler._due) < 2100  # it was 10,002
        # The last run-now set the next run a day later; the other task's time is kept.
        last = h.runner.started("daily")[-1]
        await trio.sleep(last + 24 * 3600 + 10 - trio.current_time())
        assert h.runner.started("daily")[-1] == last + 24 * 3600
        assert h.runner.started("other")[0] == 7200.0
