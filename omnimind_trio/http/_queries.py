"""Query parameters of the list endpoints: parsed strictly, applied cheaply.

Unknown parameters, unknown fields and malformed values are :class:`InvalidInput` (400)
naming the parameter, never silently ignored.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..exceptions import InvalidInput
from ..models import Outcome, Priority
from ..scheduling import TaskEntry

MAX_LIMIT = 1000
TASK_STATUSES = ("scheduled", "waiting", "running", "frozen", "paused", "done")


def _task_sort_keys() -> dict[str, Callable[[TaskEntry], Any]]:
    never = float("-inf")
    return {
        "task_id": lambda e: e.task_id,
        "name": lambda e: e.spec.name.lower(),
        "priority": lambda e: e.spec.priority.value,
        "status": lambda e: e.status,
        "execution_count": lambda e: e.counters.execution_count,
        "success_count": lambda e: e.counters.success_count,
        "failure_count": lambda e: e.counters.failure_count,
        "last_execution": lambda e: e.counters.last_execution or never,
        "next_execution": lambda e: e.next_due if e.next_due is not None else float("inf"),
        "created_at": lambda e: e.seq,
    }


TASK_SORT_KEYS = _task_sort_keys()


@dataclass(frozen=True)
class Page:
    limit: int | None
    offset: int


@dataclass(frozen=True)
class TaskQuery:
    priorities: frozenset[Priority] | None
    statuses: frozenset[str] | None
    text: str | None
    sort: str | None
    descending: bool
    page: Page

    def apply(self, entries: Iterable[TaskEntry], count: int) -> tuple[list[TaskEntry], int]:
        """The requested page and the number of matching tasks (``count``: all of them)."""
        if self.priorities is not None or self.statuses is not None or self.text is not None:
            matching = [e for e in entries if self._matches(e)]
            entries, count = matching, len(matching)
        end = None if self.page.limit is None else self.page.offset + self.page.limit
        if self.sort is None:
            return list(itertools.islice(entries, self.page.offset, end)), count
        key = TASK_SORT_KEYS[self.sort]

        # Ties keep insertion order: sort on (key, seq), reversed as a whole when descending.
        def full(e: TaskEntry) -> tuple[Any, int]:
            return (key(e), e.seq)

        if end is not None and end < count // 4:
            pick = heapq.nlargest if self.descending else heapq.nsmallest
            ordered = pick(end, entries, key=full)
        else:
            ordered = sorted(entries, key=full, reverse=self.descending)
        return ordered[self.page.offset : end], count

    def _matches(self, entry: TaskEntry) -> bool:
        if self.priorities is not None and entry.spec.priority not in self.priorities:
            return False
        if self.statuses is not None and entry.status not in self.statuses:
            return False
        if self.text is not None:
            haystack = f"{entry.task_id}\n{entry.spec.name}\n{entry.spec.description}".lower()
            return self.text in haystack
        return True


@dataclass(frozen=True)
class ExecutionQuery:
    task_id: str | None
    outcome: Outcome | None
    since: float | None
    until: float | None
    page: Page


def parse_task_query(args: Mapping[str, str]) -> TaskQuery:
    _only(args, {"priority", "status", "q", "sort", "limit", "offset"})
    priorities = statuses = None
    if "priority" in args:
        priorities = frozenset(
            _one_of("priority", v, Priority.__members__, Priority.__getitem__)
            for v in _csv(args, "priority")
        )
    if "status" in args:
        statuses = frozenset(_one_of("status", v, TASK_STATUSES, str) for v in _csv(args, "status"))
    text = args.get("q")
    sort, descending = None, False
    if "sort" in args:
        field = args["sort"]
        descending = field.startswith("-")
        sort = _one_of("sort", field.lstrip("-"), TASK_SORT_KEYS, str)
    return TaskQuery(
        priorities, statuses, text.lower() if text else None, sort, descending, _page(args, None)
    )


def parse_execution_query(args: Mapping[str, str], *, task_id: str | None = None) -> ExecutionQuery:
    allowed = {"outcome", "since", "until", "limit", "offset"}
    if task_id is None:
        allowed.add("task_id")
    _only(args, allowed)
    outcome = None
    if "outcome" in args:
        outcome = _one_of("outcome", args["outcome"], [o.value for o in Outcome], Outcome)
    return ExecutionQuery(
        task_id=task_id if task_id is not None else args.get("task_id"),
        outcome=outcome,
        since=_time(args, "since"),
        until=_time(args, "until"),
        page=_page(args, 100),
    )


def _only(args: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise InvalidInput(
            f"Unknown query parameter: {unknown[0]} (allowed: {', '.join(sorted(allowed))})"
        )


def _csv(args: Mapping[str, str], name: str) -> list[str]:
    values = [v.strip() for v in args[name].split(",") if v.strip()]
    if not values:
        raise InvalidInput(f"{name} must not be empty")
    return values


def _one_of(name: str, value: str, allowed: Iterable[str], convert: Callable[[str], Any]) -> Any:
    options = list(allowed)
    if value not in options:
        raise InvalidInput(f"Invalid {name}: {value} (one of: {', '.join(options)})")
    return convert(value)


def _int(args: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    if name not in args:
        return None
    try:
        value = int(args[name])
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {args[name]!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def _page(args: Mapping[str, str], default_limit: int | None) -> Page:
    limit = _int(args, "limit", 1, MAX_LIMIT)
    offset = _int(args, "offset", 0, 10**9)
    return Page(limit if limit is not None else default_limit, offset or 0)


def _time(args: Mapping[str, str], name: str) -> float | None:
    """ISO-8601 (``2025-11-19T02:30:00Z``; no zone means UTC) or epoch seconds."""
    if name not in args:
        return None
    raw = args[name].strip()
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise InvalidInput(f"{name} must be a finite time")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO-8601 time like 2025-11-19T02:30:00Z, not {raw!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
