"""When each task is next due: a heap of (time, task id, kind), O(log n) per change.

Items are never removed when a task changes: a stale one (the task is gone, or its due time
moved) is recognised and skipped by the scheduler when it comes up.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Literal

Kind = Literal["due", "retry", "force"]
"""A scheduled run, a retry after a failure, or the end of ``max_delay_hours``."""


class DueTimes:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, Kind]] = []
        self._order = itertools.count()  # ties keep the order they were pushed in

    @property
    def earliest(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def push(self, when: float, task_id: str, kind: Kind) -> None:
        heapq.heappush(self._heap, (when, next(self._order), task_id, kind))

    def append(self, when: float, task_id: str, kind: Kind) -> None:
        """Add without ordering (many at start-up); call :meth:`heapify` after."""
        self._heap.append((when, next(self._order), task_id, kind))

    def heapify(self) -> None:
        heapq.heapify(self._heap)

    def pop_until(self, now: float) -> Iterator[tuple[float, str, Kind]]:
        """Take out, in time order, every item due at or before ``now``."""
        while self._heap and self._heap[0][0] <= now:
            when, _, task_id, kind = heapq.heappop(self._heap)
            yield when, task_id, kind
