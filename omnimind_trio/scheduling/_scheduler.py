"""The scheduler: which task runs when, and what a run does when the user comes back.

Due times live in a heap (O(log n) per dispatch, whatever the number of tasks). A task whose
due time has come moves to a ready queue (FIFO per priority) and leaves it when its gate is
open and a slot is free. Every execution runs in its own task in the scheduler's nursery,
inside the cancel scope of its :class:`Running` (which the scheduler cancels with a reason):
cancelling the scheduler (daemon stop) cancels them all.

Policies, per task (see :mod:`.models`): ``overlap`` (a run due while one runs),
``on_missed`` (runs that fell due while the daemon was down or the machine asleep; catch-ups
are released one at a time), ``max_retries`` (exponential backoff with jitter),
``max_delay_hours`` (a task kept waiting by its gate that long runs anyway) and ``on_busy``
(what a run admitted through a gate does when that gate closes: freeze, continue, cancel).

The scheduler does the bookkeeping; what an execution *is* comes from the ``runner`` it is
given, so tests drive it on a fake clock with a fake runner.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..exceptions import Conflict, TaskExists, TaskNotFound
from ..models import (
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    TaskCounters,
    TaskSpec,
    TaskStatus,
    Trigger,
)
from ._clock import Clock, deadline_for
from ._gates import GateSet
from ._running import Running

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

MAX_SLEEP_SECONDS = 60.0
"""Re-check at least this often, so a wall-clock jump is noticed."""
RETRY_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMED_OUT, Outcome.KILLED})

InProcessFunction = Callable[[], Awaitable[Any]]


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
    runs: list[Running] = field(default_factory=list)
    ready_since: float | None = None
    """When the task joined a ready queue (due, waiting for its gate or a slot)."""
    ready_trigger: Trigger = Trigger.SCHEDULE
    forced: bool = False
    """Waited ``max_delay_hours`` for its gate: it runs at the next free slot anyway."""
    queued: bool = False
    """``overlap=queue``: a run fell due while one ran; it starts when that one ends."""
    retry_attempt: int = 0
    """Retries made since the last run that was not a failure."""
    retry_at: float | None = None
    requested_id: str | None = None
    """The execution id promised to a pending run-now request (its run will carry it)."""

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
        if self.next_due is None and self.retry_at is None:
            return TaskStatus.DONE
        return TaskStatus.SCHEDULED


Runner = Callable[[TaskEntry, Running], Awaitable[Outcome | None]]
Recorder = Callable[[TaskEntry, float, Trigger, str], Awaitable[None]]
"""Records a run that was skipped: (task, when it was due, trigger, reason)."""
Notify = Callable[[str, TaskEntry, Running | None], None]
"""Told of ``task_waiting`` (run None), ``execution_frozen`` and ``execution_thawed``."""


def _bypasses_gates(entry: TaskEntry) -> bool:
    return entry.ready_trigger is Trigger.RUN_NOW or entry.forced


def _catches_up(entry: TaskEntry) -> bool:
    return entry.ready_trigger is Trigger.CATCH_UP


def _queued_at(priority: Priority) -> Callable[[TaskEntry], bool]:
    def belongs(entry: TaskEntry) -> bool:
        return entry.spec.priority is priority and entry.ready_trigger in (
            Trigger.SCHEDULE,
            Trigger.RETRY,
        )

    return belongs


async def _no_record(entry: TaskEntry, due: float, trigger: Trigger, reason: str) -> None:
    return None


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
        recorder: Recorder = _no_record,
        persist: Callable[[TaskEntry], Awaitable[None]] | None = None,
        notify: Notify = lambda kind, entry, run: None,
        missed_grace_seconds: float = 300.0,
        retry_base_seconds: float = 30.0,
        retry_max_seconds: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.gates = gates
        self.tasks: dict[str, TaskEntry] = {}
        """Registered tasks, in insertion order (``seq``)."""
        self.max_concurrent = max_concurrent
        self.max_concurrent_critical = max_concurrent_critical
        self.missed_grace_seconds = missed_grace_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self._rng = rng or random.Random()
        self._runner = runner
        self._recorder = recorder
        self._persist = persist
        self._notify = notify
        self._on_change = on_change
        self._last_seq = 0
        self._heap: list[tuple[float, int, str, str]] = []
        self._heap_seq = itertools.count()
        self._ready: dict[Priority, deque[TaskEntry]] = {p: deque() for p in Priority}
        self._ready_now: deque[TaskEntry] = deque()
        """Run-now requests and tasks forced by ``max_delay_hours``: no gate applies."""
        self._catch_up: deque[TaskEntry] = deque()
        """Catch-ups of missed runs: released one at a time, each through its gate."""
        self._catch_up_running = 0
        self._pending = 0
        self._running_gated = 0
        self._running_critical = 0
        self._active: dict[str, tuple[TaskEntry, Running]] = {}
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

    def find_run(self, execution_id: str) -> Running | None:
        """The execution in flight with that id, if it is one."""
        found = self._active.get(execution_id)
        return None if found is None else found[1]

    def get(self, task_id: str) -> TaskEntry:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def explain(self, entry: TaskEntry) -> dict[str, Any] | None:
        """Why a task is not running now and when it is expected to, as data; None when
        it runs. ``reason`` is one of paused, done, scheduled, backoff, gate, slot,
        catch_up, starting; ``detail`` says it in words."""
        now = self.clock.now()
        if entry.runs:
            if all(run.frozen for run in entry.runs):
                closed = self.gates.explain(entry.spec.priority, now)
                return {
                    "reason": "frozen",
                    **closed,
                    "detail": "frozen until the machine is free again: " + closed["detail"],
                    "expected_start": None,
                }
            return None
        if entry.paused:
            return {"reason": "paused", "detail": "paused (POST .../resume to resume)"}
        if entry.ready_since is None:
            if entry.retry_at is not None and (
                entry.next_due is None or entry.retry_at <= entry.next_due
            ):
                return {
                    "reason": "backoff",
                    "detail": f"retry {entry.retry_attempt} of {entry.spec.max_retries} "
                    "after a failed run",
                    "until": entry.retry_at,
                    "expected_start": entry.retry_at,
                }
            if entry.next_due is None:
                return {"reason": "done", "detail": "a one-shot task that has run"}
            return {
                "reason": "scheduled",
                "detail": "not due yet",
                "until": entry.next_due,
                "expected_start": self._expected_start(entry, entry.next_due),
            }
        priority = entry.spec.priority
        if not _bypasses_gates(entry) and not self.gates.is_open(priority):
            why = self.gates.explain(priority, now)
            run_by = self._forced_at(entry)
            return {
                "reason": "gate",
                **why,
                "run_by": run_by,
                "expected_start": self._expected_start(entry, now),
            }
        if entry.ready_trigger is Trigger.CATCH_UP and self._catch_up_running:
            return {
                "reason": "catch_up",
                "detail": "catch-ups of missed runs go one at a time; another is running",
                "expected_start": None,
            }
        if priority is Priority.CRITICAL:
            used, limit = self._running_critical, self.max_concurrent_critical
        else:
            used, limit = self._running_gated, self.max_concurrent
        if used >= limit:
            return {
                "reason": "slot",
                "detail": f"waiting for a free slot ({used} of {limit} in use)",
                "in_use": used,
                "limit": limit,
                "expected_start": None,
            }
        return {"reason": "starting", "detail": "starting", "expected_start": now}

    def waiting_reason(self, entry: TaskEntry) -> str | None:
        """Why a due task is not running, in words; None when it is not waiting."""
        if entry.ready_since is None:
            return None
        explained = self.explain(entry)
        return None if explained is None else str(explained["detail"])

    def _forced_at(self, entry: TaskEntry) -> float | None:
        delay = entry.spec.max_delay_seconds
        if delay is None or entry.ready_since is None:
            return None
        return entry.ready_since + delay

    def _expected_start(self, entry: TaskEntry, earliest: float) -> float | None:
        """When the task should start, if the gates can say: the sleep window's next
        opening for LOW, else unknown (None) while a load gate is closed."""
        priority = entry.spec.priority
        if priority is Priority.CRITICAL or self.gates.is_open(priority):
            return earliest
        forced = self._forced_at(entry)
        if priority is Priority.LOW:
            opening = self.gates.window.next_start(earliest)
            return min(opening, forced) if forced is not None else opening
        return forced

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

    def load(self, entries: list[TaskEntry]) -> None:
        """Register stored tasks at start-up, in ``seq`` order: one heapify and one change
        notice for all of them, instead of a push and a notice each."""
        for entry in entries:
            if entry.task_id in self.tasks:
                raise TaskExists(entry.task_id)
            self.tasks[entry.task_id] = entry
            self._last_seq = max(self._last_seq, entry.seq)
            if entry.paused:
                continue
            if entry.next_due is not None:
                self._heap.append((entry.next_due, next(self._heap_seq), entry.task_id, "due"))
            if entry.retry_at is not None:
                self._heap.append((entry.retry_at, next(self._heap_seq), entry.task_id, "retry"))
        heapq.heapify(self._heap)
        self._changed()

    def remove(self, task_id: str) -> TaskEntry:
        """Unregister a task; its running executions are cancelled."""
        entry = self.get(task_id)
        del self.tasks[task_id]
        self._unready(entry)
        for run in entry.runs:
            run.cancel("the task was deleted")
        self._changed()
        return entry

    def update(self, task_id: str, spec: TaskSpec) -> TaskEntry:
        """Replace a task's definition. A running execution keeps the code it started with;
        a new repeat interval counts from the last start."""
        entry = self.get(task_id)
        old = entry.spec
        waiting = entry.ready_since is not None
        if waiting and spec.priority is not old.priority:
            # Move it to its new priority's queue, keeping how long it has waited (that is
            # what max_delay_hours counts).
            trigger, since = entry.ready_trigger, entry.ready_since
            self._unready(entry)
            entry.spec = spec
            self._ready_up(entry, trigger, since=since)
        entry.spec = spec
        if spec.repeat_hours != old.repeat_hours and not waiting and not entry.runs:
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

    def run_now(self, task_id: str) -> str:
        """Start the task as soon as a slot is free, whatever its gate says. Returns the
        id its execution will have; a request made while one is pending joins it (same id).

        Raises Conflict while it runs, unless its overlap policy is ``allow``."""
        entry = self.get(task_id)
        if entry.runs and entry.spec.overlap is not Overlap.ALLOW:
            raise Conflict(f"Task is already running: {task_id}")
        pending = entry.ready_since is not None and entry.ready_trigger is Trigger.RUN_NOW
        if pending and entry.requested_id is not None:
            return entry.requested_id
        self._unready(entry)
        entry.requested_id = uuid.uuid4().hex
        self._ready_up(entry, Trigger.RUN_NOW)
        self.wake()
        return entry.requested_id

    def cancel(self, task_id: str, reason: str = "cancelled by request") -> TaskEntry:
        """Kill the task's running executions. Raises Conflict when none runs."""
        entry = self.get(task_id)
        if not entry.runs:
            raise Conflict(f"Task is not running: {task_id}")
        for run in entry.runs:
            run.cancel(reason)
        return entry

    def wake(self) -> None:
        """Something changed (a task, a gate, the clock): re-evaluate now."""
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
                    self._apply_gates(now)
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
            due, _, task_id, kind = heapq.heappop(heap)
            entry = self.tasks.get(task_id)
            if entry is None or entry.paused:
                continue
            if kind == "force":
                if entry.ready_since is not None and self._forced_at(entry) == due:
                    entry.forced = True
                    self._ready_now.append(entry)
                continue
            if kind == "retry":
                if entry.retry_at != due or entry.ready_since is not None:
                    continue
                if entry.runs and entry.spec.overlap is not Overlap.ALLOW:
                    continue  # pushed again when the current run ends
                entry.retry_at = None
                self._ready_up(entry, Trigger.RETRY)
                continue
            if entry.next_due != due or entry.ready_since is not None:
                continue  # stale heap item
            if entry.runs:
                self._overlapping(entry, due, now)
                continue
            repeat = entry.spec.repeat_seconds
            if repeat is not None and now - due > self.missed_grace_seconds:
                self._missed(entry, due, now, repeat)
                continue
            self._ready_up(entry, Trigger.SCHEDULE)

    def _overlapping(self, entry: TaskEntry, due: float, now: float) -> None:
        """A run fell due while the task still runs: apply its overlap policy."""
        overlap = entry.spec.overlap
        if overlap is Overlap.QUEUE:
            entry.queued = True
        elif overlap is Overlap.REPLACE:
            for run in entry.runs:
                run.cancel("replaced by a newer run (overlap=replace)")
            self._ready_up(entry, Trigger.SCHEDULE)
        elif overlap is Overlap.ALLOW:
            self._ready_up(entry, Trigger.SCHEDULE)
        else:
            self._skip(entry, due, Trigger.SCHEDULE, "the previous run was still running")
            self._advance(entry, due, now)

    def _missed(self, entry: TaskEntry, due: float, now: float, repeat: float) -> None:
        """``due`` passed while the daemon was down or the machine asleep."""
        if entry.spec.on_missed is OnMissed.ONCE:
            self._ready_up(entry, Trigger.CATCH_UP)
            return
        late = now - due
        self._skip(
            entry,
            due,
            Trigger.SCHEDULE,
            f"missed: it fell due {late:.0f} s ago, while the daemon was stopped or the "
            "machine asleep (on_missed=skip)",
        )
        self._advance(entry, due, now)

    def _advance(self, entry: TaskEntry, due: float, now: float) -> None:
        """Move a repeating task to its next slot on its grid after ``now``."""
        repeat = entry.spec.repeat_seconds
        if repeat is None:
            entry.next_due = None
        else:
            entry.next_due = due + (math.floor((now - due) / repeat) + 1) * repeat
        self._push(entry)
        self._save(entry)

    def _skip(self, entry: TaskEntry, due: float, trigger: Trigger, reason: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._recorder, entry, due, trigger, reason)

    def _apply_gates(self, now: float) -> None:
        """Freeze, cancel or let run the executions whose gate closed; thaw the ones
        whose gate reopened."""
        for entry, run in self._active.values():
            if not run.gated:
                continue
            if self.gates.is_open(entry.spec.priority):
                if run.thaw(now):
                    self._notify("execution_thawed", entry, run)
                continue
            policy = entry.spec.on_busy
            if policy is OnBusy.FREEZE and entry.function is None:
                if run.freeze(now):
                    self._notify("execution_frozen", entry, run)
            elif policy is OnBusy.CANCEL:
                gate = self.gates.closed_reason(entry.spec.priority) or "its gate closed"
                run.cancel(f"the machine became busy: {gate} (on_busy=cancel)")

    def _dispatch(self, now: float) -> None:
        self._drain(self._ready_now, now, _bypasses_gates, mixed=True)
        if self._catch_up and not self._catch_up_running:
            self._drain(
                self._catch_up, now, _catches_up, admit=self._gate_open, limit=1, mixed=True
            )
        for priority in Priority:
            if self.gates.is_open(priority):
                self._drain(self._ready[priority], now, _queued_at(priority))

    def _gate_open(self, entry: TaskEntry) -> bool:
        return self.gates.is_open(entry.spec.priority)

    def _drain(
        self,
        queue: deque[TaskEntry],
        now: float,
        belongs: Callable[[TaskEntry], bool],
        *,
        admit: Callable[[TaskEntry], bool] = lambda entry: True,
        limit: int | None = None,
        mixed: bool = False,
    ) -> None:
        """Start queued tasks in order while slots are free. Entries are dropped lazily
        from a queue they no longer belong to (started, removed, paused, moved)."""
        started = 0
        index = 0
        while index < len(queue) and (limit is None or started < limit):
            entry = queue[index]
            if (
                entry.ready_since is None
                or self.tasks.get(entry.task_id) is not entry
                or not belongs(entry)
            ):
                del queue[index]
                continue
            if not admit(entry):
                # Only the catch-up queue mixes priorities and has an admit rule: one
                # closed gate must not hold back the catch-ups of the others.
                index += 1
                continue
            critical = entry.spec.priority is Priority.CRITICAL
            if critical and self._running_critical >= self.max_concurrent_critical:
                if not mixed:
                    return
                index += 1  # the run-now and catch-up queues mix both kinds of slot:
                continue  # a full kind must not hold back the other
            if not critical and self._running_gated >= self.max_concurrent:
                if not mixed:
                    return
                index += 1
                continue
            del queue[index]
            self._start(entry, now)
            started += 1

    def _start(self, entry: TaskEntry, now: float) -> None:
        assert self._nursery is not None
        trigger = entry.ready_trigger
        scheduled_at = entry.ready_since if entry.ready_since is not None else now
        if trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP) and entry.next_due is not None:
            scheduled_at = min(scheduled_at, entry.next_due)
        forced = entry.forced
        self._unready(entry)
        repeat = entry.spec.repeat_seconds
        if trigger is not Trigger.RETRY:
            # Repeat counts from the start of the last run; a one-shot is done once started.
            entry.next_due = now + repeat if repeat is not None else None
            if entry.next_due is not None:  # due again while running? overlap decides
                self._heap_push(entry.next_due, entry, "due")
        gated = (
            entry.spec.priority is not Priority.CRITICAL
            and trigger is not Trigger.RUN_NOW
            and not forced
        )
        execution_id = entry.requested_id if trigger is Trigger.RUN_NOW else None
        entry.requested_id = None
        run = Running(
            execution_id=execution_id or uuid.uuid4().hex,
            trigger=trigger,
            scheduled_at=scheduled_at,
            started_at=now,
            attempt=entry.retry_attempt if trigger is Trigger.RETRY else 0,
            gated=gated,
        )
        run.critical_slot = entry.spec.priority is Priority.CRITICAL
        entry.runs.append(run)
        self._active[run.execution_id] = (entry, run)
        entry.counters.last_execution = now
        if run.critical_slot:
            self._running_critical += 1
        else:
            self._running_gated += 1
        if trigger is Trigger.CATCH_UP:
            self._catch_up_running += 1
        self.dispatches += 1
        self._nursery.start_soon(self._execute, entry, run, name=f"execution:{entry.task_id}")
        self._changed()

    async def _execute(self, entry: TaskEntry, run: Running) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self._runner(entry, run)
        except Exception:
            log.exception(
                "execution of %s failed inside the daemon",
                entry.task_id,
                extra={"task_id": entry.task_id, "execution_id": run.execution_id},
            )
        finally:
            entry.runs.remove(run)
            self._active.pop(run.execution_id, None)
            if run.critical_slot:  # the slot it took, whatever its priority is now
                self._running_critical -= 1
            else:
                self._running_gated -= 1
            if run.trigger is Trigger.CATCH_UP:
                self._catch_up_running -= 1
            if self.tasks.get(entry.task_id) is entry:
                self._after_run(entry, run, outcome)
            self._changed()

    def _after_run(self, entry: TaskEntry, run: Running, outcome: Outcome | None) -> None:
        """Retries, queued overlaps, and the next due time once a run has ended."""
        if outcome in RETRY_OUTCOMES and run.cancel_reason is None:
            if entry.retry_attempt < entry.spec.max_retries:
                entry.retry_attempt += 1
                entry.retry_at = self.clock.now() + self.backoff(entry.retry_attempt)
            else:
                entry.retry_attempt, entry.retry_at = 0, None
        elif outcome is not None:
            entry.retry_attempt, entry.retry_at = 0, None
        self._save(entry)
        if entry.queued and not entry.runs:
            entry.queued = False
            if not entry.paused and entry.ready_since is None:
                self._ready_up(entry, Trigger.SCHEDULE)
                return
        self._push(entry)

    def _save(self, entry: TaskEntry) -> None:
        """Have the schedule (next due, pending retry) stored, so a restart keeps it."""
        if self._persist is not None and self._nursery is not None:
            self._nursery.start_soon(self._persist, entry)

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1, 2, ...): exponential, capped, with jitter
        (uniform between half and all of it), so failing tasks do not retry in lockstep."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempt - 1))
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    # -- helpers -----------------------------------------------------------------

    def _push(self, entry: TaskEntry) -> None:
        if not entry.paused:
            if entry.next_due is not None:
                self._heap_push(entry.next_due, entry, "due")
            if entry.retry_at is not None:
                self._heap_push(entry.retry_at, entry, "retry")
        self._changed()

    def _heap_push(self, when: float, entry: TaskEntry, kind: str) -> None:
        heapq.heappush(self._heap, (when, next(self._heap_seq), entry.task_id, kind))

    def _ready_up(self, entry: TaskEntry, trigger: Trigger, since: float | None = None) -> None:
        entry.ready_since = self.clock.now() if since is None else since
        entry.ready_trigger = trigger
        entry.forced = False
        if trigger is Trigger.RUN_NOW:
            self._ready_now.append(entry)
        elif trigger is Trigger.CATCH_UP:
            self._catch_up.append(entry)
        else:
            self._ready[entry.spec.priority].append(entry)
        forced_at = self._forced_at(entry)
        if forced_at is not None and trigger is not Trigger.RUN_NOW:
            self._heap_push(forced_at, entry, "force")
        self._pending += 1
        self._notify("task_waiting", entry, None)

    def _unready(self, entry: TaskEntry) -> None:
        if entry.ready_since is not None:
            entry.ready_since = None  # its queue slot is dropped lazily by _drain
            entry.forced = False
            self._pending -= 1

    def _changed(self) -> None:
        self.wake()
        self._on_change()
