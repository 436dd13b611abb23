"""The scheduler: which task runs when.

Due times live in a heap (O(log n) per dispatch, whatever the number of tasks). A task whose
due time has come moves to its priority's ready queue (FIFO), and leaves it when its gate is
open and a slot is free. Every execution runs in its own task under its own cancel scope,
in the scheduler's nursery: cancelling the scheduler (daemon stop) cancels them all.

The scheduler does the bookkeeping (due times, queues, slots); what an execution *is* comes
from the ``runner`` it is given, so tests can drive it on a fake clock with a fake runner.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .clock import Clock, deadline_for
from .exceptions import Conflict, TaskExists, TaskNotFound
from .gates import GateSet
from .models import Priority, TaskCounters, TaskSpec, Trigger

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 60.0
"""Re-check at least this often, so a wall-clock jump is noticed."""

InProcessFunction = Callable[[], Awaitable[Any]]


@dataclass
class Running:
    """An execution in flight."""

    trigger: Trigger
    scheduled_at: float
    started_at: float
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancel: trio.Event = field(default_factory=trio.Event)
    cancel_reason: str | None = None
    pid: int | None = None


@dataclass(eq=False)
class TaskEntry:
    """A registered task and its live scheduling state."""

    spec: TaskSpec
    counters: TaskCounters
    seq: int
    created_at: float
    next_due: float | None
    paused: bool = False
    function: InProcessFunction | None = None
    running: Running | None = None
    ready_since: float | None = None
    """When the task joined its ready queue (due, waiting for its gate or a slot)."""
    ready_trigger: Trigger = Trigger.SCHEDULE

    @property
    def task_id(self) -> str:
        return self.spec.task_id

    @property
    def status(self) -> str:
        if self.running is not None:
            return "running"
        if self.paused:
            return "paused"
        if self.ready_since is not None:
            return "waiting"
        if self.next_due is None:
            return "done"
        return "scheduled"


Runner = Callable[[TaskEntry, Running], Awaitable[None]]


class Scheduler:
    """Holds the tasks and starts their executions. Call :meth:`run` in a nursery."""

    def __init__(
        self,
        *,
        clock: Clock,
        gates: GateSet,
        runner: Runner,
        max_concurrent: int,
        max_concurrent_critical: int,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.clock = clock
        self.gates = gates
        self.tasks: dict[str, TaskEntry] = {}
        """Registered tasks, in insertion order (``seq``)."""
        self._last_seq = 0
        self.max_concurrent = max_concurrent
        self.max_concurrent_critical = max_concurrent_critical
        self._runner = runner
        self._on_change = on_change
        self._heap: list[tuple[float, int, str]] = []
        self._heap_seq = itertools.count()
        self._ready: dict[Priority, deque[TaskEntry]] = {p: deque() for p in Priority}
        self._ready_now: deque[TaskEntry] = deque()
        """Run-now requests: they skip the gates, so they queue apart from the gated."""
        self._pending = 0
        self._running_gated = 0
        self._running_critical = 0
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.dispatches = 0

    # -- queries -----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Tasks that are due but not running (waiting for their gate or a slot)."""
        return self._pending

    @property
    def running_count(self) -> int:
        return self._running_gated + self._running_critical

    def get(self, task_id: str) -> TaskEntry:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def waiting_reason(self, entry: TaskEntry) -> str | None:
        """Why a due task is not running, in words; None when it is not waiting."""
        if entry.ready_since is None:
            return None
        if entry.ready_trigger is not Trigger.RUN_NOW:
            closed = self.gates.closed_reason(entry.spec.priority)
            if closed is not None:
                return closed
        if entry.spec.priority is Priority.CRITICAL:
            used, limit = self._running_critical, self.max_concurrent_critical
        else:
            used, limit = self._running_gated, self.max_concurrent
        if used >= limit:
            return f"waiting for a free slot ({used} of {limit} in use)"
        return "starting"

    # -- changes -----------------------------------------------------------------

    def add(self, entry: TaskEntry) -> None:
        """Register a task (its ``next_due`` says when it first runs)."""
        if entry.task_id in self.tasks:
            raise TaskExists(entry.task_id)
        out_of_order = bool(self.tasks) and entry.seq < self._last_seq
        self.tasks[entry.task_id] = entry
        if out_of_order:  # a stored task registered late: keep listing in insertion order
            self.tasks = dict(sorted(self.tasks.items(), key=lambda item: item[1].seq))
        self._last_seq = max(self._last_seq, entry.seq)
        self._push(entry)

    def remove(self, task_id: str) -> TaskEntry:
        """Unregister a task; a running execution of it is cancelled."""
        entry = self.get(task_id)
        del self.tasks[task_id]
        self._unready(entry)
        if entry.running is not None:
            self._cancel(entry.running, "the task was deleted")
        return entry

    def update(self, task_id: str, spec: TaskSpec) -> TaskEntry:
        """Replace a task's definition. A running execution keeps the code it started with;
        a new repeat interval counts from the last start."""
        entry = self.get(task_id)
        old = entry.spec
        waiting = entry.ready_since is not None
        if waiting and spec.priority is not old.priority:
            trigger = entry.ready_trigger
            self._unready(entry)
            entry.spec = spec
            self._ready_up(entry, trigger)
        entry.spec = spec
        if spec.repeat_hours != old.repeat_hours and not waiting and entry.running is None:
            last = entry.counters.last_execution
            if spec.repeat_seconds is None:
                entry.next_due = None if last is not None else entry.next_due
            elif last is not None:
                entry.next_due = last + spec.repeat_seconds
            elif entry.next_due is None:
                entry.next_due = self.clock.now()
            self._push(entry)
        self._changed()
        return entry

    def pause(self, task_id: str) -> TaskEntry:
        entry = self.get(task_id)
        entry.paused = True
        self._unready(entry)
        self._changed()
        return entry

    def resume(self, task_id: str) -> TaskEntry:
        entry = self.get(task_id)
        if entry.paused:
            entry.paused = False
            self._push(entry)
        return entry

    def run_now(self, task_id: str) -> TaskEntry:
        """Start the task as soon as a slot is free, whatever its gate says."""
        entry = self.get(task_id)
        if entry.running is not None:
            raise Conflict(f"Task is already running: {task_id}")
        self._unready(entry)
        self._ready_up(entry, Trigger.RUN_NOW)
        self.wake()
        return entry

    def cancel(self, task_id: str, reason: str = "cancelled by request") -> TaskEntry:
        """Kill the task's running execution. Raises Conflict when it is not running."""
        entry = self.get(task_id)
        if entry.running is None:
            raise Conflict(f"Task is not running: {task_id}")
        self._cancel(entry.running, reason)
        return entry

    def wake(self) -> None:
        """Something changed (a task, a gate): re-evaluate now."""
        self._wakeup.set()

    # -- the loop ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Dispatch for ever. Cancelling it cancels every execution in flight."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                while True:
                    self._wakeup = trio.Event()
                    now = self.clock.now()
                    self._promote_due(now)
                    self._dispatch(now)
                    deadline = trio.current_time() + MAX_SLEEP_SECONDS
                    if self._heap:
                        deadline = min(deadline, deadline_for(self.clock, self._heap[0][0]))
                    with trio.move_on_at(deadline):
                        await self._wakeup.wait()
            finally:
                self._nursery = None

    def _promote_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, task_id = heapq.heappop(heap)
            entry = self.tasks.get(task_id)
            if (
                entry is None
                or entry.next_due != due
                or entry.paused
                or entry.running is not None
                or entry.ready_since is not None
            ):
                continue  # stale heap item; a running task is pushed again when it ends
            self._ready_up(entry, Trigger.SCHEDULE)

    def _dispatch(self, now: float) -> None:
        self._drain(self._ready_now, now, gated=False)
        for priority in Priority:
            if self.gates.is_open(priority):
                self._drain(self._ready[priority], now, gated=True)

    def _drain(self, queue: deque[TaskEntry], now: float, *, gated: bool) -> None:
        """Start queued tasks in order while slots are free."""
        while queue:
            entry = queue[0]
            if (
                entry.ready_since is None
                or self.tasks.get(entry.task_id) is not entry
                or (entry.ready_trigger is Trigger.RUN_NOW) == gated
            ):
                queue.popleft()  # removed, paused, started or moved since it was queued
                continue
            if entry.spec.priority is Priority.CRITICAL:
                if self._running_critical >= self.max_concurrent_critical:
                    return
            elif self._running_gated >= self.max_concurrent:
                return
            queue.popleft()
            self._start(entry, now)

    def _start(self, entry: TaskEntry, now: float) -> None:
        assert self._nursery is not None
        scheduled_at = entry.ready_since if entry.ready_since is not None else now
        trigger = entry.ready_trigger
        if trigger is Trigger.SCHEDULE and entry.next_due is not None:
            scheduled_at = entry.next_due
        self._pending -= 1
        entry.ready_since = None
        entry.ready_trigger = Trigger.SCHEDULE
        repeat = entry.spec.repeat_seconds
        if trigger is Trigger.SCHEDULE or repeat is not None:
            # Repeat counts from the start of the last run; a one-shot is done once started.
            entry.next_due = now + repeat if repeat is not None else None
        running = Running(trigger=trigger, scheduled_at=scheduled_at, started_at=now)
        entry.running = running
        entry.counters.last_execution = now
        if entry.spec.priority is Priority.CRITICAL:
            self._running_critical += 1
        else:
            self._running_gated += 1
        self.dispatches += 1
        self._nursery.start_soon(self._execute, entry, running, name=f"execution:{entry.task_id}")
        self._changed()

    async def _execute(self, entry: TaskEntry, running: Running) -> None:
        try:
            await self._runner(entry, running)
        except Exception:
            log.exception(
                "execution of %s failed inside the daemon",
                entry.task_id,
                extra={"task_id": entry.task_id, "execution_id": running.execution_id},
            )
        finally:
            entry.running = None
            if entry.spec.priority is Priority.CRITICAL:
                self._running_critical -= 1
            else:
                self._running_gated -= 1
            if self.tasks.get(entry.task_id) is entry:
                self._push(entry)
            self._changed()

    # -- helpers -----------------------------------------------------------------

    def _push(self, entry: TaskEntry) -> None:
        if entry.next_due is not None and not entry.paused:
            heapq.heappush(self._heap, (entry.next_due, next(self._heap_seq), entry.task_id))
        self._changed()

    def _ready_up(self, entry: TaskEntry, trigger: Trigger) -> None:
        entry.ready_since = self.clock.now()
        entry.ready_trigger = trigger
        if trigger is Trigger.RUN_NOW:
            self._ready_now.append(entry)
        else:
            self._ready[entry.spec.priority].append(entry)
        self._pending += 1

    def _unready(self, entry: TaskEntry) -> None:
        if entry.ready_since is not None:
            entry.ready_since = None  # its queue slot is dropped lazily by _dispatch
            self._pending -= 1

    def _cancel(self, running: Running, reason: str) -> None:
        if running.cancel_reason is None:
            running.cancel_reason = reason
        running.cancel.set()

    def _changed(self) -> None:
        self.wake()
        self._on_change()
