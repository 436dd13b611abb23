"""When each task is next due: a heap of (time, task id, kind), O(log n) per change.

Items are not removed when a task changes: a stale one (the task is gone, or its due time
moved) is recognised and skipped by the scheduler when it comes up. Stale items can pile up
far ahead of that, though: every run-now of a daily task pushes a due time a day away. So
when the heap has grown to twice its size after the last clean-up, it is rebuilt from the
items still live (amortised O(1) per push): the heap stays within a small multiple of the
number of tasks, however long the daemon runs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Literal

from ._entry import TaskEntry

Kind = Literal["due", "retry", "force"]
"""A scheduled run, a retry after a failure, or the end of ``max_delay_hours``."""


MIN_COMPACT_SIZE = 1024
"""Below this many items the heap is never cleaned up: not worth it."""


class DueTimes:
    def __init__(self, lookup: Callable[[str], TaskEntry | None] | None = None) -> None:
        self._heap: list[tuple[float, int, str, Kind]] = []
        self._order = itertools.count()  # ties keep the order they were pushed in
        self._lookup = lookup
        """The scheduler's task of an id, to tell live items from stale ones (None: never
        clean up)."""
        self._compact_at = MIN_COMPACT_SIZE

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def earliest(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def push(self, when: float, task_id: str, kind: Kind) -> None:
        heapq.heappush(self._heap, (when, next(self._order), task_id, kind))
        if len(self._heap) >= self._compact_at:
            self.compact()

    def compact(self) -> None:
        """Drop the items the scheduler would skip (and duplicates), keeping the rest."""
        if self._lookup is None:
            return
        seen: set[tuple[float, str, Kind]] = set()
        kept = []
        for item in self._heap:
            when, _, task_id, kind = item
            key = (when, task_id, kind)
            if key not in seen and self._live(when, task_id, kind):
                seen.add(key)
                kept.append(item)
        heapq.heapify(kept)
        self._heap = kept
        self._compact_at = max(MIN_COMPACT_SIZE, 2 * len(kept))

    def _live(self, when: float, task_id: str, kind: Kind) -> bool:
        """Whether the scheduler could act on this item when it comes up (it skips an
        item whose task is gone or paused, or whose time is no longer the task's)."""
        entry = self._lookup(task_id) if self._lookup is not None else None
        if entry is None or entry.paused:
            return False
        if kind == "due":
            return entry.next_due == when
        if kind == "retry":
            return entry.retry_at == when
        return entry.forced_at == when

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
