"""The scheduler on a fake clock (MockClock with autojump) with a fake runner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from omnimind_trio.clock import TrioWallClock
from omnimind_trio.exceptions import Conflict, TaskExists, TaskNotFound
from omnimind_trio.gates import GateSet, SleepWindow
from omnimind_trio.models import Priority, TaskCounters, TaskSpec, Trigger
from omnimind_trio.scheduler import Running, Scheduler, TaskEntry

NOON = datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@dataclass
class FakeRunner:
    """Records every start; each run lasts ``durations[task_id]`` virtual seconds."""

    clock: Callable[[], float]
    durations: dict[str, float] = field(default_factory=dict)
    starts: list[tuple[str, Trigger, float]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def __call__(self, entry: TaskEntry, running: Running) -> None:
        self.starts.append((entry.task_id, running.trigger, self.clock()))
        with trio.move_on_after(self.durations.get(entry.task_id, 0.0)):
            await running.cancel.wait()
            self.cancelled.append(entry.task_id)

    def started(self, task_id: str) -> list[float]:
        return [when for name, _, when in self.starts if name == task_id]


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
    ) -> TaskEntry:
        spec = TaskSpec(task_id, task_id, "", priority, "def execute(): pass", repeat_hours)
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
    start_epoch: float = NOON, *, max_concurrent: int = 2, max_critical: int = 8
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
        max_concurrent=max_concurrent,
        max_concurrent_critical=max_critical,
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
        reason = h.scheduler.waiting_reason(h.scheduler.tasks["high"]) or ""
        assert "idle (CPU < 20 %)" in reason

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
            h.scheduler.waiting_reason(h.scheduler.tasks["b"]) or ""
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


async def test_a_run_longer_than_its_interval_does_not_overlap_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["slow"] = 5400  # 1.5 h for an hourly task
        h.add("slow", repeat_hours=1)
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
