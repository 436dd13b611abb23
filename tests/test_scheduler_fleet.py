"""The scheduler's part in a fleet, on a fake clock: the due time a run is claimed under,
a run another daemon claimed first, and a run taken over from a silent daemon."""

from __future__ import annotations

import trio
import trio.testing

from omnimind_trio.models import Outcome, Overlap, Priority, Trigger
from omnimind_trio.scheduling import NotClaimed, Running, TaskEntry

from .test_scheduler import NOON, harness


async def test_a_queued_run_is_claimed_under_the_due_time_that_queued_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """overlap=queue: the run that fell due at 1 h while the first ran (until 1.5 h) is
    that occurrence: another daemon that ran it meanwhile claimed the same one."""
    async with harness() as h:
        h.runner.durations["slow"] = 5400
        entry = h.add("slow", repeat_hours=1, overlap=Overlap.QUEUE)
        await trio.sleep(4000)
        # Another daemon ran the 1 h occurrence and moved the task on to 2 h.
        h.scheduler.reschedule(entry, next_due=NOON + 7200, retry_at=None, attempt=0)
        await trio.sleep(1401)
        (first, queued) = [run for name, run in h.runner.runs if name == "slow"]
        assert (first.scheduled_at - NOON, queued.scheduled_at - NOON) == (0.0, 3600.0)
        assert queued.started_at - NOON == 5400.0


async def test_a_run_claimed_elsewhere_lets_the_request_queued_behind_it_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        runner = h.runner
        lost: list[str] = []

        async def claiming(entry: TaskEntry, running: Running) -> Outcome:
            if not lost:  # the first run's claim takes 10 s, and is lost
                await trio.sleep(10)
                lost.append(running.execution_id)
                raise NotClaimed(entry.task_id)
            return await runner(entry, running)

        h.scheduler._runner = claiming
        entry = h.add("t", repeat_hours=1, overlap=Overlap.QUEUE)
        await trio.sleep(5)
        requested = h.scheduler.run_now("t")  # queued behind the run claiming
        assert entry.requests == [requested]
        await trio.sleep(6)
        assert [(name, run.execution_id) for name, run in runner.runs] == [("t", requested)]
        assert runner.starts[0][1:] == (Trigger.RUN_NOW, 10.0)
        assert not entry.runs or entry.runs[0].execution_id == requested


async def test_a_run_taken_over_starts_at_once_whatever_the_gate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A LOW task waits for the night; a run of it another daemon claimed and went silent
    on starts here at once (it was admitted there), as that occurrence: its due time, the
    next attempt, the claim. The night's run is due again after it."""
    async with harness() as h:
        entry = h.add("low", Priority.LOW, repeat_hours=24)
        await trio.sleep(1)
        assert entry.ready_since is not None and not entry.runs  # waits for the window
        claim = object()
        assert h.scheduler.take_over(
            "low", execution_id="e-taken", scheduled_at=NOON - 600, attempt=1, claim=claim
        )
        assert h.scheduler.waiting_claims == [claim]
        await trio.sleep(1)
        ((name, run),) = h.runner.runs
        assert (name, run.execution_id, run.trigger, run.attempt) == (
            "low", "e-taken", Trigger.TAKEOVER, 1
        )  # fmt: skip
        assert (run.scheduled_at, run.claim, run.gated) == (NOON - 600, claim, False)
        assert h.scheduler.waiting_claims == []
        assert entry.next_due == NOON  # not moved on: its own run is still to come
        assert not h.scheduler.take_over(
            "gone", execution_id="x", scheduled_at=0.0, attempt=1, claim=claim
        )
