"""The answers about tasks, built from the scheduler's entries: summary, detail, waiting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from ..config import Settings
from ..models import ConditionStatus, TaskDetail, TaskSummary, Waiting
from ..scheduling import TaskEntry, calendar

STOPPED = Waiting(reason="stopped", detail="the daemon is stopped: nothing runs until it starts")


def task_summary(entry: TaskEntry) -> TaskSummary:
    """A task as ``GET /daemon/tasks`` lists it."""
    spec, counters = entry.spec, entry.counters
    return TaskSummary(
        task_id=spec.task_id,
        name=spec.name,
        description=spec.description,
        priority=spec.priority,
        execution_count=counters.execution_count,
        success_count=counters.success_count,
        failure_count=counters.failure_count,
        last_execution=counters.last_execution,
        repeat_interval=(
            None if spec.repeat_seconds is None else str(timedelta(seconds=spec.repeat_seconds))
        ),
    )


def task_event(entry: TaskEntry) -> dict[str, Any]:
    """The data of a ``task_added`` or ``task_updated`` event: the task as listed, and its
    registration (which the records of its runs, in the execution events, name)."""
    return {**task_summary(entry).json_body(), "registration_id": entry.registration_id}


def task_detail(
    entry: TaskEntry,
    settings: Settings,
    waiting: Waiting | None,
    *,
    due: bool,
    upcoming: list[float],
    followed_by: list[str],
    conditions_status: list[ConditionStatus],
) -> TaskDetail:
    """``GET /daemon/tasks/{task_id}``: the summary, the definition (with the daemon's
    defaults filled in) and where the task stands. ``due``: it waits to run now (the
    older one-string ``waiting_reason`` speaks only of such a task)."""
    spec = entry.spec
    code_task = spec.code is not None
    definition: dict[str, Any] = spec.as_dict()
    definition.update(
        timeout_seconds=spec.timeout_seconds or settings.timeout_seconds,
        # Process limits apply to code tasks only (an in-process task has no process).
        max_memory_mb=(spec.max_memory_mb or settings.max_memory_mb or None) if code_task else None,
        max_cpu_seconds=(
            (spec.max_cpu_seconds or settings.max_cpu_seconds or None) if code_task else None
        ),
        secrets=None if spec.secrets is None else sorted(spec.secrets),
    )
    for name, value in definition.items():
        if isinstance(value, BaseModel):  # notify, conditions
            # As data, so every key shows in the answer (the detail leaves out unset
            # fields, and a NotifySpec built from {"on": [...]} has only "on" set).
            definition[name] = value.model_dump()
    running = entry.running
    return TaskDetail(
        **{**dict(task_summary(entry)), **definition},
        status=entry.status,
        kind="code" if code_task else "in_process",
        paused=entry.paused,
        registration_id=entry.registration_id,
        created_at=entry.created_at,
        next_execution=entry.next_due,
        waiting_since=entry.ready_since,
        retry_attempt=entry.retry_attempt,
        waiting_reason=waiting.detail if waiting is not None and due else None,
        waiting=waiting,
        running_execution_id=running.execution_id if running is not None else None,
        upcoming=upcoming,
        followed_by=followed_by,
        conditions_status=conditions_status,
        schedule=calendar.describe(spec),
    )
