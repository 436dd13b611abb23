"""JSON renderings of tasks and executions, as the API answers them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..models import ExecutionRecord, iso_utc
from ..scheduling import TaskEntry

if TYPE_CHECKING:
    from ._daemon import Daemon


def task_summary(entry: TaskEntry) -> dict[str, Any]:
    """A task as ``GET /daemon/tasks`` lists it: the API document's fields, exactly."""
    spec, counters = entry.spec, entry.counters
    return {
        "task_id": spec.task_id,
        "name": spec.name,
        "description": spec.description,
        "priority": spec.priority.name,
        "execution_count": counters.execution_count,
        "success_count": counters.success_count,
        "failure_count": counters.failure_count,
        "last_execution": iso_utc(counters.last_execution),
        "repeat_interval": (
            None if spec.repeat_hours is None else str(timedelta(hours=spec.repeat_hours))
        ),
    }


def task_detail(daemon: Daemon, entry: TaskEntry) -> dict[str, Any]:
    """``GET /daemon/tasks/{task_id}``: the summary plus definition, schedule and state."""
    spec = entry.spec
    running = entry.running
    why = waiting(daemon, entry)
    # waiting_reason, the older one-string form, speaks only of a task that is due.
    due = not daemon.running or entry.ready_since is not None
    return {
        **task_summary(entry),
        "status": entry.status,
        "kind": "code" if spec.code is not None else "in_process",
        "code": spec.code,
        "repeat_hours": spec.repeat_hours,
        "timeout_seconds": spec.timeout_seconds or daemon.settings.timeout_seconds,
        # Process limits: they apply to code tasks only (an in-process task has no process).
        "max_memory_mb": (spec.max_memory_mb or daemon.settings.max_memory_mb or None)
        if spec.code is not None
        else None,
        "max_cpu_seconds": (spec.max_cpu_seconds or daemon.settings.max_cpu_seconds or None)
        if spec.code is not None
        else None,
        "paused": entry.paused,
        "created_at": iso_utc(entry.created_at),
        "next_execution": iso_utc(entry.next_due),
        "waiting_since": iso_utc(entry.ready_since),
        "on_busy": spec.on_busy.value,
        "overlap": spec.overlap.value,
        "on_missed": spec.on_missed.value,
        "max_retries": spec.max_retries,
        "max_delay_hours": spec.max_delay_hours,
        "retry_attempt": entry.retry_attempt,
        "waiting_reason": why["detail"] if why is not None and due else None,
        "waiting": why,
        "running_execution_id": running.execution_id if running is not None else None,
    }


TIME_FIELDS = ("until", "expected_start", "run_by", "opens_at")


def waiting(daemon: Daemon, entry: TaskEntry) -> dict[str, Any] | None:
    """Why the task is not running and when it should, with times as ISO-8601."""
    if not daemon.running:
        return {"reason": "stopped", "detail": "the daemon is stopped (POST /daemon/start)"}
    explained = daemon.scheduler.explain(entry)
    if explained is None:
        return None
    return {
        key: iso_utc(value) if key in TIME_FIELDS and value is not None else value
        for key, value in explained.items()
    }


def execution_summary(record: ExecutionRecord) -> dict[str, Any]:
    """An execution in a list: the full record without its captured output."""
    data = record.to_json()
    del data["stdout"], data["stderr"]
    return data


def task_action(status: str, entry: TaskEntry, verb: str) -> dict[str, Any]:
    """The answer to an action on one task: ``{"status", "task_id", "message"}``."""
    return {
        "status": status,
        "task_id": entry.task_id,
        "message": f"Task '{entry.spec.name}' {verb}",
    }
