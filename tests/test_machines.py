"""A task's ``machines``: the scheduler of a daemon its list leaves out never starts it, on a
fake clock (the harness of test_scheduler: this daemon is "laptop")."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from omnimind_trio.exceptions import Conflict
from omnimind_trio.models import OnMissed, Outcome, Overlap, Priority, TaskStatus, Trigger

from .test_scheduler import NOON, harness


async def test_a_task_for_other_machines_never_starts_on_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        mine = h.add("mine", repeat_hours=1, machines=("desktop", "laptop"))
        theirs = h.add("theirs", repeat_hours=1, machines=("desktop",))
        await trio.sleep(3 * 3600 + 1)
        assert h.runner.started("mine") == [0.0, 3600.0, 7200.0, 10800.0]
        assert h.runner.started("theirs") == []
        assert h.runner.skipped == []  # nothing recorded for another daemon's task
        assert theirs.next_due == NOON  # its due time left to the daemon that runs it
        assert theirs.status is TaskStatus.SCHEDULED and h.scheduler.pending_count == 0
        assert (h.scheduler.explain(mine) or {})["reason"] == "scheduled"
        assert h.scheduler.explain(theirs) == {
            "reason": "machine",
            "detail": "runs only on desktop (this daemon is laptop)",
            "machines": ["desktop"],
            "node": "laptop",
            "expected_start": None,
        }


async def test_explain_names_every_machine(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(node="nas") as h:
        entry = h.add("t", due_in=60, machines=("desktop", "laptop", "server"))
        explained = h.scheduler.explain(entry) or {}
        assert explained["detail"] == "runs only on desktop, laptop or server (this daemon is nas)"


@pytest.mark.parametrize("on_missed", [OnMissed.ONCE, OnMissed.SKIP])
async def test_missed_runs_of_another_machines_task_are_neither_caught_up_nor_skipped(
    autojump_clock: trio.testing.MockClock, on_missed: OnMissed
) -> None:
    async with harness() as h:
        h.add(
            "backup",
            repeat_hours=1,
            due_in=-3 * 3600 - 60,
            on_missed=on_missed,
            machines=("desktop",),
        )
        await trio.sleep(2 * 3600)
        assert h.runner.starts == [] and h.runner.skipped == []


async def test_run_now_is_refused_and_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        entry = h.add("t", due_in=3600, machines=("desktop",))
        with pytest.raises(Conflict) as refused:
            h.scheduler.run_now("t")
        assert str(refused.value) == (
            "Task t runs only on desktop, and this daemon is laptop: nothing was started"
        )
        assert entry.ready_since is None and entry.requested_id is None
        assert len(h.scheduler.promises) == 0
        await trio.sleep(60)
        assert h.runner.starts == []


async def test_a_retry_does_not_start_once_the_task_is_another_machines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.outcomes["flaky"] = [Outcome.FAILED, Outcome.SUCCEEDED]
        entry = h.add("flaky", max_retries=3)
        await trio.sleep(1)
        assert entry.retry_at is not None  # the first run failed
        h.scheduler.update("flaky", entry.spec.replace(machines=("desktop",)))
        await trio.sleep(3600)
        assert [t for _, t, _ in h.runner.starts] == [Trigger.SCHEDULE]
        h.scheduler.update("flaky", entry.spec.replace(machines=("laptop",)))
        await trio.sleep(1)  # its retry was due long ago: it starts now
        assert [t for _, t, _ in h.runner.starts] == [Trigger.SCHEDULE, Trigger.RETRY]


async def test_a_waiting_task_leaves_its_queue_and_max_delay_does_not_force_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:  # noon, busy: LOW waits for the night
        entry = h.add("nightly", Priority.LOW, max_delay_hours=1)
        await trio.sleep(1)
        assert entry.status is TaskStatus.WAITING and h.scheduler.pending_count == 1
        h.scheduler.update("nightly", entry.spec.replace(machines=("desktop",)))
        assert h.scheduler.pending_count == 0
        await trio.sleep(3 * 3600)  # past its max delay
        assert h.runner.starts == []
        h.load(5.0)  # idle: still not here
        await trio.sleep(60)
        assert h.runner.starts == []


async def test_accepted_run_now_requests_are_dropped_when_the_machines_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.runner.durations["t"] = 600
        entry = h.add("t", due_in=86400, overlap=Overlap.QUEUE)
        h.scheduler.run_now("t")
        await trio.sleep(1)
        queued = h.scheduler.run_now("t")  # queued behind the running one
        assert queued in h.scheduler.promises
        h.scheduler.update("t", entry.spec.replace(machines=("desktop",)))
        assert queued not in h.scheduler.promises
        await trio.sleep(3600)
        assert h.runner.started("t") == [0.0]  # the run in flight ended; no other started


async def test_a_follower_for_another_machine_does_not_start_after_its_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.add("fetch", due_in=10)
        follower = h.add("report", due_in=0, after=("fetch",), machines=("desktop",))
        follower.next_due = None  # an after task has no due time of its own
        await trio.sleep(60)
        assert h.runner.started("fetch") == [10.0]
        assert h.runner.started("report") == []
        h.scheduler.update("report", follower.spec.replace(machines=None))
        await trio.sleep(1)
        assert [t for n, t, _ in h.runner.starts if n == "report"] == [Trigger.UPSTREAM]


async def test_a_task_made_this_machines_starts_when_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        entry = h.add("t", repeat_hours=1, machines=("desktop",))
        await trio.sleep(600)
        assert h.runner.starts == []
        h.scheduler.update("t", entry.spec.replace(machines=("desktop", "laptop")))
        await trio.sleep(1)
        assert h.runner.started("t") == [600.0]  # due at 0: it runs at once here
