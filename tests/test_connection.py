"""The keep-alive idle timer of one HTTP connection, on a fake clock (MockClock, autojump).

The same timer on a real socket, behind the real API, is in ``test_http_server.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.worker_context import EventWrapper

from omnimind_trio.http._connection import IdleTimer

TIMEOUT = 5.0


class Timed:
    """An :class:`IdleTimer` in a task group, recording when it closes the connection."""

    def __init__(self) -> None:
        self.terminated = EventWrapper()
        self.closed_at: float | None = None
        self.timer = IdleTimer(TIMEOUT, self.terminated, self.close)
        self.group = TaskGroup()

    async def close(self) -> None:
        self.closed_at = trio.current_time()

    async def idle(self) -> None:
        await self.timer.restart(self.group)

    async def busy(self) -> None:
        await self.timer.stop()


@asynccontextmanager
async def timed() -> AsyncIterator[Timed]:
    t = Timed()
    async with t.group:
        yield t
        t.group._nursery.cancel_scope.cancel()  # the connection ends


async def test_an_idle_connection_is_closed_after_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        start = trio.current_time()
        await t.idle()
        await trio.sleep(TIMEOUT + 1)
        assert t.closed_at == start + TIMEOUT


async def test_a_request_in_flight_stops_the_timer_and_its_end_starts_it_afresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.idle()
        await trio.sleep(TIMEOUT - 1)
        await t.busy()  # a request arrives just before the timeout
        await trio.sleep(10 * TIMEOUT)  # a long request: never closed while it runs
        assert t.closed_at is None
        answered = trio.current_time()
        await t.idle()
        await trio.sleep(TIMEOUT - 1)
        assert t.closed_at is None
        await trio.sleep(2)
        assert t.closed_at == answered + TIMEOUT


async def test_many_requests_on_one_connection_keep_it_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.idle()
        for _ in range(100):
            await trio.sleep(TIMEOUT / 2)
            await t.busy()
            await trio.sleep(0.01)
            await t.idle()
        last = trio.current_time()
        assert t.closed_at is None
        await trio.sleep(TIMEOUT + 1)
        assert t.closed_at == last + TIMEOUT


async def test_a_request_arriving_as_the_deadline_passes_keeps_its_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The deadline and the next request land in the same tick: trio runs the woken tasks
    in a random order, so the reader may stop the timer after its scope was cancelled.
    That request is being served: the connection must not be closed under it."""
    raced = 0
    for _ in range(20):  # each round has about even odds of either order
        async with timed() as t:
            await t.idle()
            await trio.sleep_until(trio.current_time() + TIMEOUT)  # wakes with the deadline
            if t.closed_at is not None:
                continue  # the timer ran first and closed an idle connection: fine
            raced += 1
            await t.busy()
            await trio.sleep(3 * TIMEOUT)
            assert t.closed_at is None, "closed with a request in flight"
            answered = trio.current_time()
            await t.idle()
            await trio.sleep(TIMEOUT + 1)
            assert t.closed_at == answered + TIMEOUT
    assert raced > 0, "the request never came first: the race was not tried"


async def test_shutdown_closes_an_idle_connection_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.idle()
        await trio.sleep(1)
        stop = trio.current_time()
        await t.terminated.set()
        await trio.sleep(0.001)
        assert t.closed_at == stop


async def test_shutdown_closes_a_busy_connection_once_its_request_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.idle()
        await t.busy()
        await t.terminated.set()
        await trio.sleep(2 * TIMEOUT)
        assert t.closed_at is None  # the answer is still being worked out
        answered = trio.current_time()
        await t.idle()
        await trio.sleep(0.001)
        assert t.closed_at == answered


async def test_a_connection_idle_after_shutdown_began_is_closed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.terminated.set()  # before the timer's task even exists
        start = trio.current_time()
        await t.idle()
        await trio.sleep(0.001)
        assert t.closed_at == start


async def test_a_connection_that_ends_first_is_not_closed_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with timed() as t:
        await t.idle()
        await trio.sleep(1)
    assert t.closed_at is None
