"""The fleet's guarantees on PostgreSQL, store by store: one claim per occurrence, leases
renewed by heartbeats and taken over when they run out, fenced final records, counters that
add up, notices between daemons, and a restart that gives its claims up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from omnimind_trio.models import Outcome, TaskCounters, Trigger
from omnimind_trio.store import Claim, Fleet, Occurrence, Store, open_store

from .pg_cluster import Cluster
from .test_store_contract import record, task

LEASE = 0.5


def DUE(at: float) -> Occurrence:
    return Occurrence("due", at=at)


@asynccontextmanager
async def member(url: str, node: str, lease: float = LEASE) -> AsyncIterator[tuple[Store, Fleet]]:
    async with open_store(url, node=node, lease_seconds=lease) as store:
        assert store.fleet is not None and store.fleet.node == node
        yield store, store.fleet


def running(i: int, **fields: Any) -> Any:
    return record(i, outcome=Outcome.RUNNING, **fields)


async def counters(store: Store, task_id: str = "a") -> TaskCounters:
    (found,) = [t for t in await store.load_tasks() if t.spec.task_id == task_id]
    return found.counters


async def test_one_claim_per_occurrence_and_only_the_winner_writes(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (b, fb):
        await a.insert_task(task("a"))
        won = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=260.0)
        assert won is not None and (won.node, won.attempt) == ("desk", 0)
        lost = await fb.claim(
            running(2, scheduled_at=1.0), DUE(200.0), last_execution=2.0, next_due=999.0
        )
        assert lost is None
        assert await b.get_execution("e2") is None  # the loser wrote nothing
        (stored,) = await b.load_tasks()
        assert (stored.next_due, stored.counters.last_execution) == (260.0, 1.0)  # the winner's
        # Another occurrence of the same task is another claim.
        assert await fb.claim(running(3), DUE(260.0), last_execution=3.0, next_due=320.0)
        # A skip is recorded once for the fleet, and takes the occurrence.
        skipped = record(4, outcome=Outcome.SKIPPED)
        assert await fa.claim_skip(skipped, DUE(320.0))
        assert not await fb.claim_skip(record(5, outcome=Outcome.SKIPPED), DUE(320.0))
        assert await fb.claim(running(6), DUE(320.0), last_execution=6.0, next_due=1.0) is None
        assert await a.get_execution("e5") is None
        # What the stored schedule no longer says is due is not claimed, by anyone: a
        # daemon that missed a change (asleep, cut off) cannot run an old run again.
        assert await fb.claim(running(7), DUE(999.0), last_execution=7.0, next_due=1.0) is None
        await a.set_schedule("a", next_due=320.0, paused=None, retry_at=500.0, retry_attempt=1)
        retry = Occurrence("retry", at=500.0)
        assert await fa.claim(running(8), retry, last_execution=8.0, next_due=320.0)
        assert await fb.claim(running(9), retry, last_execution=9.0, next_due=320.0) is None
        (stored,) = await b.load_tasks()
        assert (stored.retry_at, stored.next_due, stored.paused) == (None, 320.0, False)


async def test_finishing_adds_to_the_counters_of_every_daemon(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (_b, fb):
        await a.insert_task(task("a"))
        one = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=300.0)
        two = await fb.claim(running(2), DUE(300.0), last_execution=2.0, next_due=400.0)
        assert one is not None and two is not None
        assert await fa.finish(record(1), one)
        assert await fb.finish(record(2, outcome=Outcome.FAILED), two)
        assert await counters(a) == TaskCounters(
            execution_count=2, success_count=1, failure_count=1, last_execution=2.0
        )
        assert not await fa.finish(record(1), one)  # once


async def test_a_silent_daemons_claim_is_taken_over_and_its_late_result_fenced_out(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (b, fb):
        await a.insert_task(task("a"))
        claim = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=260.0)
        assert claim is not None
        registration = claim.registration_id
        assert await fb.take_over([registration], 10) == []  # its lease runs
        await trio.sleep(LEASE + 0.2)  # desk goes silent: no heartbeat
        (taken,) = await fb.take_over([registration], 10)
        assert (taken.node, taken.attempt, taken.occurrence) == ("lap", 1, claim.occurrence)
        assert (taken.scheduled_at, taken.trigger) == (1.0, "schedule")
        assert taken.execution_id != claim.execution_id
        closed = await a.get_execution("e1")
        assert closed is not None and closed.outcome is Outcome.INTERRUPTED
        assert closed.reason == (
            "the daemon running it (desk) stopped renewing its claim: taken over by lap"
        )
        # desk comes back with its result: not written over the takeover (fencing).
        assert not await fa.finish(record(1), claim)
        assert (await a.get_execution("e1")).outcome is Outcome.INTERRUPTED  # type: ignore[union-attr]
        # lap runs it again under its claim.
        again = running(
            9, execution_id=taken.execution_id, trigger=Trigger.TAKEOVER, scheduled_at=1.0
        )
        assert await fb.start_claimed(again, taken)
        assert not await fa.start_claimed(again, claim)  # not desk's any more
        assert await fb.finish(record(9, execution_id=taken.execution_id), taken)
        assert await counters(b) == TaskCounters(
            execution_count=2, success_count=1, failure_count=1, last_execution=9.0
        )
        assert await fa.take_over([registration], 10) == []  # finished: nothing to take


async def test_heartbeats_keep_a_claim_and_say_which_are_still_held(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (_b, fb):
        await a.insert_task(task("a"))
        claim = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=300.0)
        assert claim is not None
        beat = {"state": "idle", "running_count": 1, "version": "x", "started_at": 5.0}
        for _ in range(6):
            assert await fa.heartbeat(**beat, holding=[claim.claim_id]) == {claim.claim_id}
            await trio.sleep(LEASE / 3)
            assert await fb.take_over([claim.registration_id], 10) == []
        await fb.heartbeat(state="busy", running_count=0, version="y", started_at=6.0, holding=())
        nodes = {n.node: n for n in await fa.nodes()}
        assert set(nodes) == {"desk", "lap"}
        assert (nodes["desk"].state, nodes["desk"].running_count) == ("idle", 1)
        assert (nodes["lap"].version, nodes["lap"].started_at) == ("y", 6.0)
        assert all(0 <= n.silent_seconds < 5 for n in nodes.values())
        await trio.sleep(LEASE + 0.2)
        assert len(await fb.take_over([claim.registration_id], 10)) == 1
        assert await fa.heartbeat(**beat, holding=[claim.claim_id]) == set()  # desk learns it


async def test_a_claim_its_daemon_lost_track_of_is_released_though_it_keeps_beating(
    postgres: Cluster, postgres_url: str
) -> None:
    """A claim whose run this daemon does not have (its commit was reported lost, its
    takeover never started): the heartbeats do not renew it, so the fleet takes it over;
    but not before it is a lease old (its run may not have heard of it yet)."""
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (_b, fb):
        await a.insert_task(task("a"))
        claim = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=300.0)
        assert claim is not None
        beat = {"state": "idle", "running_count": 0, "version": "x", "started_at": 5.0}
        assert await fa.heartbeat(**beat, holding=()) == set()
        assert await fb.take_over([claim.registration_id], 10) == []  # young: left alone
        with trio.fail_after(5 * LEASE):
            while not (taken := await fb.take_over([claim.registration_id], 10)):
                await fa.heartbeat(**beat, holding=())
                await trio.sleep(LEASE / 3)
        assert taken[0].occurrence == claim.occurrence


async def test_a_restart_gives_its_claims_up_and_deleted_tasks_claims_are_closed(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "lap", lease=60) as (b, fb):
        async with member(postgres_url, "desk", lease=60) as (a, fa):
            await a.insert_task(task("a"))
            await a.insert_task(task("gone", 2))
            kept = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=2.0)
            doomed = await fa.claim(
                running(2, task_id="gone"), DUE(200.0), last_execution=1.0, next_due=2.0
            )
            assert kept is not None and doomed is not None
        await b.delete_task("gone")
        async with member(postgres_url, "desk", lease=60) as (a, fa):
            assert await fa.release_mine() == 2  # at start, no waiting for the 60 s lease
            # and its first heartbeats do not take them back
            beat = {"state": "idle", "running_count": 0, "version": "x", "started_at": 5.0}
            assert await fa.heartbeat(**beat, holding=()) == set()
        (taken,) = await fb.take_over([kept.registration_id, doomed.registration_id], 10)
        assert taken.task_id == "a"
        gone = await b.get_execution("e2")
        assert gone is not None and gone.outcome is Outcome.INTERRUPTED
        assert (
            gone.reason
            == "the daemon running it (desk) stopped renewing its claim, and its task was deleted"
        )


async def test_close_interrupted_and_leftover_processes_are_each_daemons_own(
    postgres: Cluster, postgres_url: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa), member(postgres_url, "lap") as (_b, fb):
        await a.insert_task(task("a"))
        mine, theirs = Occurrence("request", request="r1"), Occurrence("request", request="r2")
        assert await fa.claim(running(1), mine, last_execution=1.0, next_due=2.0)
        assert await fb.claim(running(2), theirs, last_execution=2.0, next_due=3.0)
        assert await a.close_interrupted(10.0) == 1
        mine, theirs = await a.get_execution("e1"), await a.get_execution("e2")
        assert mine is not None and mine.outcome is Outcome.INTERRUPTED
        assert theirs is not None and theirs.outcome is Outcome.RUNNING


async def test_notices_reach_the_other_daemons_not_the_sender(
    postgres: Cluster, postgres_url: str
) -> None:
    heard: dict[str, list[dict[str, Any]]] = {"desk": [], "lap": []}
    async with (
        member(postgres_url, "desk") as (a, fa),
        member(postgres_url, "lap") as (b, fb),
        trio.open_nursery() as nursery,
    ):
        if True:
            nursery.start_soon(fa.listen, heard["desk"].append)
            nursery.start_soon(fb.listen, heard["lap"].append)
            with trio.fail_after(5):
                while len(heard["lap"]) < 1 or len(heard["desk"]) < 1:
                    await trio.sleep(0.01)
            assert heard["lap"] == [{"resync": True}]  # at start: what was said before
            await a.insert_task(task("a"))
            claim = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=2.0)
            assert claim is not None
            await b.set_schedule("a", next_due=5.0, paused=True)
            with trio.fail_after(5):
                while len(heard["lap"]) < 3 or len(heard["desk"]) < 2:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert heard["lap"][1:] == [
        {"node": "desk", "task": "a"},
        {"node": "desk", "task": "a", "execution": "e1", "event": "execution_started"},
    ]
    assert heard["desk"][1:] == [{"node": "lap", "task": "a"}]


@pytest.mark.parametrize("key", ["due", "request"])
async def test_a_claim_survives_odd_task_ids(
    postgres: Cluster, postgres_url: str, key: str
) -> None:
    async with member(postgres_url, "desk") as (a, fa):
        await a.insert_task(task("a\x00b"))
        run = DUE(200.0) if key == "due" else Occurrence("request", request="abc")
        won = await fa.claim(running(1, task_id="a\x00b"), run, last_execution=1.0, next_due=2.0)
        assert isinstance(won, Claim) and won.task_id == "a\x00b"
        assert await fa.finish(record(1, task_id="a\x00b"), won)


async def test_a_run_cut_short_by_a_stop_is_handed_to_the_fleet(
    postgres: Cluster, postgres_url: str
) -> None:
    """A stopping daemon records its run cancelled and ends its claim's lease: another
    daemon takes the occurrence over at once, and the cancelled record stays as it is."""
    async with (
        member(postgres_url, "desk", lease=60) as (a, fa),
        member(postgres_url, "lap", lease=60) as (b, fb),
    ):
        await a.insert_task(task("a"))
        claim = await fa.claim(running(1), DUE(200.0), last_execution=1.0, next_due=300.0)
        assert claim is not None
        cancelled = record(1, outcome=Outcome.CANCELLED, reason="the daemon was stopped")
        assert await fa.finish(cancelled, claim, release=True)
        (taken,) = await fb.take_over([claim.registration_id], 10)
        assert (taken.node, taken.attempt) == ("lap", 1)
        kept = await b.get_execution("e1")
        assert kept is not None and kept.outcome is Outcome.CANCELLED
