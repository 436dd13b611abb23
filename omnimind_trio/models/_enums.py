"""The named values of the API: priorities, states, outcomes, triggers and task policies.

Every one is a ``StrEnum`` whose values are what the API reads and writes, what the store
keeps and what the CLI offers: there is one spelling of each.
"""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """Task priority. ``rank`` orders dispatch (CRITICAL first)."""

    CRITICAL = "CRITICAL"
    """Runs as soon as it is due, whatever the load or the hour."""
    HIGH = "HIGH"
    """Runs when the machine is idle."""
    MEDIUM = "MEDIUM"
    """Runs when activity is low (or the machine is idle, or in the sleep window)."""
    LOW = "LOW"
    """Runs in the nightly sleep window."""

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {priority: rank for rank, priority in enumerate(Priority)}


class DaemonState(StrEnum):
    INITIALIZING = "initializing"
    IDLE = "idle"
    WORKING = "working"
    SLEEPING = "sleeping"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"
    ERROR = "error"


class TaskStatus(StrEnum):
    """Where a task stands (``status`` in the task detail; the list's ``status`` filter)."""

    SCHEDULED = "scheduled"
    WAITING = "waiting"
    RUNNING = "running"
    FROZEN = "frozen"
    PAUSED = "paused"
    DONE = "done"


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
    UPSTREAM = "upstream"
    """The tasks it runs ``after`` have all succeeded."""
    TAKEOVER = "takeover"
    """Run again by this daemon: the fleet's daemon that claimed it stopped renewing its
    claim (it died, or lost the database) before the run ended."""


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
