"""Wall-clock time for the scheduler, in a form a test can fake.

Trio's clock (``trio.current_time``) is monotonic and is what we sleep on; due times and the
sleep window are wall-clock instants (epoch seconds). A :class:`Clock` says what the wall
clock reads now; the scheduler converts "sleep until epoch E" to a Trio deadline each time
it sleeps, so a wall-clock jump is noticed at the next wake-up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class TrioWallClock:
    """Wall time that advances with Trio's clock, from ``start_epoch``: with
    ``trio.testing.MockClock`` it makes a fully virtual, deterministic calendar."""

    def __init__(self, start_epoch: float) -> None:
        self._offset = start_epoch - trio.current_time()

    def now(self) -> float:
        return self._offset + trio.current_time()


def deadline_for(clock: Clock, epoch: float) -> float:
    """The Trio deadline at which ``clock`` will read ``epoch``."""
    return trio.current_time() + (epoch - clock.now())


async def on_a_grid(
    interval: float,
    step: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``step`` now, report started, then every ``interval`` seconds for ever, on a
    fixed grid (``sleep_until``: a slow step does not make it drift). When it falls behind
    (the machine was suspended, a step was slow) it realigns rather than bursts."""
    await step()
    task_status.started()
    next_tick = trio.current_time()
    while True:
        next_tick += interval
        now = trio.current_time()
        if next_tick < now:
            next_tick = now + interval
        await trio.sleep_until(next_tick)
        await step()
