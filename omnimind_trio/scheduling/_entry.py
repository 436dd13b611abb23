"""A registered task as the scheduler holds it, and the callables the scheduler is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..models import Outcome, TaskCounters, TaskSpec, TaskStatus, Trigger, new_registration_id
from ._running import Running

InProcessFunction = Callable[[], Awaitable[Any]]


@dataclass(eq=False)
class TaskEntry:
    """A registered task and its live scheduling state."""

    spec: TaskSpec
    counters: TaskCounters
    seq: int
    created_at: float
    """When this registration was made (the task added)."""
    next_due: float | None
    registration_id: str = field(default_factory=new_registration_id)
    """This registration of the task id: its runs' records name it (a task deleted and
    added again under its id is another entry, another registration)."""
    paused: bool = False
    function: InProcessFunction | None = None
    runs: list[Running] = field(default_factory=list)
    ready_since: float | None = None
    """When the task joined a ready queue (due, waiting for its gate or a slot)."""
    ready_trigger: Trigger = Trigger.SCHEDULE
    ready_due: float | None = None
    """The due time that made it ready (a schedule's, a catch-up's): the run's
    ``scheduled_at``, whatever the task's ``next_due`` becomes meanwhile (a fleet's other
    daemon may run that occurrence and move it on: the two must name the same one)."""
    forced: bool = False
    """Waited ``max_delay_hours`` for its gate: it runs at the next free slot anyway."""
    queued: float | None = None
    """``overlap=queue``: the due time of a run that fell due while one ran; it starts when
    that one ends (None: none queued)."""
    retry_attempt: int = 0
    """Retries made since the last run that was not a failure."""
    retry_at: float | None = None
    requested_id: str | None = None
    """The execution id promised to a pending run-now request (its run will carry it)."""
    upstream_done: frozenset[str] = frozenset()
    """``after``: the upstream tasks that have succeeded since this one last started.
    Immutable and shared while empty: a set per task would cost 216 bytes at each of
    100,000 tasks, nearly all without ``after``."""
    requests: list[str] = field(default_factory=list)
    """Further run-now requests accepted (``overlap`` ``queue`` or ``allow``) while one was
    pending or running: their promised execution ids, in order."""
    # A list, not a deque: a few requests at most, and an empty deque costs 760 bytes at
    # each of 100,000 tasks against 56.

    @property
    def task_id(self) -> str:
        return self.spec.task_id

    @property
    def running(self) -> Running | None:
        """The newest execution in flight, if any."""
        return self.runs[-1] if self.runs else None

    @property
    def status(self) -> TaskStatus:
        if self.runs:
            return TaskStatus.FROZEN if all(r.frozen for r in self.runs) else TaskStatus.RUNNING
        if self.paused:
            return TaskStatus.PAUSED
        if self.ready_since is not None:
            return TaskStatus.WAITING
        if self.next_due is None and self.retry_at is None and self.spec.after is None:
            return TaskStatus.DONE
        return TaskStatus.SCHEDULED

    @property
    def forced_at(self) -> float | None:
        """When ``max_delay_hours`` makes a waiting task run whatever its gate says."""
        delay = self.spec.max_delay_seconds
        if delay is None or self.ready_since is None:
            return None
        return self.ready_since + delay

    @property
    def bypasses_gates(self) -> bool:
        """A run-now request, or forced by ``max_delay_hours``: no gate applies."""
        return self.ready_trigger is Trigger.RUN_NOW or self.forced


Runner = Callable[[TaskEntry, Running], Awaitable[Outcome | None]]
Recorder = Callable[[TaskEntry, float, Trigger, str], Awaitable[None]]
"""Records a run that was skipped: (task, when it was due, trigger, reason)."""
Notify = Callable[[str, TaskEntry, Running | None], None]
"""Told of ``task_waiting`` (run None), ``execution_frozen`` and ``execution_thawed``."""
