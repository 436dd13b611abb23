"""Listing tasks: filters, order and page over the scheduler's entries, cheaply.

With no filter and no sort the page is sliced straight from insertion order; a sorted page
far smaller than the list is picked with a heap instead of a full sort.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Final

from ..models import TaskQuery, TaskSortKey
from ..scheduling import TaskEntry

_NEVER = float("-inf")

SORT_KEYS: Final[dict[TaskSortKey, Callable[[TaskEntry], Any]]] = {
    TaskSortKey.TASK_ID: lambda e: e.task_id,
    TaskSortKey.NAME: lambda e: e.spec.name.lower(),
    TaskSortKey.PRIORITY: lambda e: e.spec.priority.rank,
    TaskSortKey.STATUS: lambda e: e.status,
    TaskSortKey.EXECUTION_COUNT: lambda e: e.counters.execution_count,
    TaskSortKey.SUCCESS_COUNT: lambda e: e.counters.success_count,
    TaskSortKey.FAILURE_COUNT: lambda e: e.counters.failure_count,
    TaskSortKey.LAST_EXECUTION: lambda e: e.counters.last_execution or _NEVER,
    TaskSortKey.NEXT_EXECUTION: lambda e: e.next_due if e.next_due is not None else -_NEVER,
    TaskSortKey.CREATED_AT: lambda e: e.seq,
}
assert set(SORT_KEYS) == set(TaskSortKey), "every sort field needs its key"


def select(
    query: TaskQuery, entries: Iterable[TaskEntry], count: int
) -> tuple[list[TaskEntry], int]:
    """The requested page and the number of matching tasks (``count``: all of them)."""
    if any(f is not None for f in (query.priority, query.status, query.q, query.after)):
        matching = [e for e in entries if _matches(query, e)]
        entries, count = matching, len(matching)
    end = None if query.limit is None else query.offset + query.limit
    if query.sort is None:
        return list(itertools.islice(entries, query.offset, end)), count
    key = SORT_KEYS[query.sort]
    # Ties keep insertion order both ways: the entries come in insertion order, and a
    # stable sort on the key alone keeps it among equals (``reverse`` and ``nlargest``
    # included: they reverse the key's order, not the ties').
    if end is not None and end < count // 4:
        pick = heapq.nlargest if query.descending else heapq.nsmallest
        ordered = pick(end, entries, key=key)
    else:
        ordered = sorted(entries, key=key, reverse=query.descending)
    return ordered[query.offset : end], count


def _matches(query: TaskQuery, entry: TaskEntry) -> bool:
    if query.priority is not None and entry.spec.priority not in query.priority:
        return False
    if query.status is not None and entry.status not in query.status:
        return False
    if query.after is not None and query.after.isdisjoint(entry.spec.after or ()):
        return False
    if query.q is not None:
        haystack = f"{entry.task_id}\n{entry.spec.name}\n{entry.spec.description}".lower()
        return query.q.lower() in haystack
    return True
