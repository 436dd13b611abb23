"""Shared types: priorities, states, outcomes, and the records the daemon keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any


class Priority(Enum):
    """Task priority; the value orders dispatch (lower first)."""

    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3


class DaemonState(StrEnum):
    INITIALIZING = "initializing"
    IDLE = "idle"
    WORKING = "working"
    SLEEPING = "sleeping"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"
    ERROR = "error"


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    KILLED = "killed"
    SKIPPED = "skipped"

    @property
    def is_success(self) -> bool:
        return self is Outcome.SUCCEEDED

    @property
    def counts_as_run(self) -> bool:
        """Finished runs count in ``execution_count``; running and skipped do not."""
        return self not in (Outcome.RUNNING, Outcome.SKIPPED)


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    RUN_NOW = "run_now"
    RETRY = "retry"
    CATCH_UP = "catch_up"


class OnBusy(StrEnum):
    """What a running execution does when the gate that admitted it closes."""

    FREEZE = "freeze"
    """SIGSTOP its process group until the gate reopens (the default)."""
    CONTINUE = "continue"
    CANCEL = "cancel"


class Overlap(StrEnum):
    """What happens when a run is due while the task is still running."""

    SKIP = "skip"
    """Do not start it; record it as skipped (the default)."""
    QUEUE = "queue"
    """Start it as soon as the current run ends (at most one waits)."""
    REPLACE = "replace"
    """Cancel the current run and start the new one."""
    ALLOW = "allow"
    """Run both at once."""


class OnMissed(StrEnum):
    """What happens to runs that fell due while the daemon was down or the machine slept."""

    ONCE = "once"
    """Run once to catch up (catch-ups are released one at a time); the default."""
    SKIP = "skip"
    """Record them as skipped and wait for the next slot on the schedule."""


@dataclass(frozen=True)
class TaskSpec:
    """A validated task definition (what ``POST /daemon/tasks/add`` carries)."""

    task_id: str
    name: str
    description: str
    priority: Priority
    code: str | None
    """Python source defining ``execute()``; None for an in-process task."""
    repeat_hours: int | None = None
    timeout_seconds: float | None = None
    max_memory_mb: int | None = None
    max_cpu_seconds: int | None = None
    on_busy: OnBusy = OnBusy.FREEZE
    overlap: Overlap = Overlap.SKIP
    on_missed: OnMissed = OnMissed.ONCE
    max_retries: int = 0
    max_delay_hours: float | None = None

    @property
    def repeat_seconds(self) -> float | None:
        return None if self.repeat_hours is None else self.repeat_hours * 3600.0

    @property
    def max_delay_seconds(self) -> float | None:
        return None if self.max_delay_hours is None else self.max_delay_hours * 3600.0


@dataclass
class TaskCounters:
    execution_count: int = 0
    success_count: int = 0
    failure_count: int = 0
    last_execution: float | None = None
    """Epoch seconds of the last run's start."""


@dataclass
class ExecutionRecord:
    """One run of a task, from admission to its end."""

    execution_id: str
    task_id: str
    trigger: Trigger
    outcome: Outcome
    scheduled_at: float
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    cpu_seconds: float | None = None
    max_rss_mb: float | None = None
    attempt: int = 0
    """0 for a first run; n for the n-th retry."""
    pauses: list[tuple[float, float | None]] = field(default_factory=list)
    """Times (epoch) the execution was frozen and thawed while the machine was busy."""

    @property
    def frozen_seconds(self) -> float:
        end = self.finished_at
        return sum(
            (thawed if thawed is not None else (end or frozen)) - frozen
            for frozen, thawed in self.pauses
        )

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "task_id": self.task_id,
            "trigger": str(self.trigger),
            "outcome": str(self.outcome),
            "reason": self.reason,
            "result": self.result,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "scheduled_at": iso_utc(self.scheduled_at, millis=True),
            "started_at": iso_utc(self.started_at, millis=True),
            "finished_at": iso_utc(self.finished_at, millis=True),
            "duration_seconds": _round(self.duration_seconds),
            "cpu_seconds": _round(self.cpu_seconds),
            "max_rss_mb": _round(self.max_rss_mb),
            "attempt": self.attempt,
            "pauses": [
                {"frozen_at": iso_utc(a, millis=True), "thawed_at": iso_utc(b, millis=True)}
                for a, b in self.pauses
            ],
            "frozen_seconds": _round(self.frozen_seconds),
        }


@dataclass(frozen=True)
class SystemMetrics:
    """One load sample. ``cpu_percent`` is the whole machine; ``external_cpu_percent``
    leaves out the daemon and its task processes and is what the gates judge."""

    cpu_percent: float
    memory_percent: float
    external_cpu_percent: float


def iso_utc(epoch: float | None, *, millis: bool = False) -> str | None:
    """``2025-11-19T02:30:00Z``: ISO-8601, UTC, whole seconds as the API document shows
    (with ``millis``, ``.123`` before the ``Z``)."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
