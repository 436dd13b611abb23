"""What the store holds besides the models' records: a stored task, a run's process."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import TaskCounters, TaskSpec


@dataclass(frozen=True, slots=True)
class RunProcess:
    """The process an execution runs in, as recorded while it runs, so that the next start
    of the daemon can kill what a crash left of it: its pid, and its start identity (so a
    pid since reused by another process is left alone)."""

    process_id: int | None = None
    process_start: str | None = None


@dataclass(slots=True)
class StoredTask:
    """A task as stored: its definition, counters and schedule."""

    spec: TaskSpec
    counters: TaskCounters
    seq: int
    """Insertion order: :meth:`Store.load_tasks` returns tasks by ``seq``."""
    paused: bool
    created_at: float
    """When this registration was made (the task added)."""
    next_due: float | None
    registration_id: str
    """This registration of the task id (32 hex digits): every record of its runs names
    it. A task deleted and added again under its id is a new registration."""
    retry_at: float | None = None
    retry_attempt: int = 0
