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

Due times come from the task's schedule (:mod:`._calendar`: an interval, a cron expression,
or none); a task that runs ``after`` others becomes due when they have succeeded
(:mod:`._after`). Registering and changing tasks is in :mod:`._changes`.

The scheduler does the bookkeeping; what an execution *is* comes from the ``runner`` it is
given, so tests drive it on a fake clock with a fake runner.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Any

import trio

from ..exceptions import Conflict
from ..models import OnMissed, Outcome, Overlap, Priority, TaskSpec, Trigger
from . import _requests as requests
from ._after import Followers
from ._calendar import next_due_after, repeats
from ._changes import TaskChanges
from ._clock import Clock, deadline_for
from ._conditions import ConditionState
from ._due import DueTimes
from ._entry import Notify, Recorder, Runner, TaskEntry
from ._explain import explain
from ._gates import GateSet
from ._machines import runs_on
from ._policies import Backoff, apply_on_busy, settle_retry
from ._queues import ReadyQueues
from ._running import NotClaimed, Running
from ._slots import Slots

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

OVERLAP_SKIPPED = "the previous run was still running"
"""The reason of a run skipped by ``overlap=skip``."""

MAX_SLEEP_SECONDS = 60.0
"""Re-check at least this often, so a wall-clock jump is noticed."""


async def _no_record(entry: TaskEntry, due: float, trigger: Trigger, reason: str) -> None:
    return None


class Scheduler(TaskChanges):
    """Holds the tasks and starts their executions. Call :meth:`run` in a nursery."""

    def __init__(
        self,
        *,
        clock: Clock,
        gates: GateSet,
        runner: Runner,
        node: str,
        conditions: ConditionState | None = None,
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
        timezone: tzinfo | None = None,
    ) -> None:
        self.clock = clock
        self.gates = gates
        self.node = node
        """This daemon's node name: a task whose ``machines`` leave it out never starts
        here (:mod:`._machines`)."""
        self.conditions = conditions if conditions is not None else ConditionState()
        """Presence, power and network, as tasks' ``conditions`` are judged by."""
        self.tasks: dict[str, TaskEntry] = {}
        """Registered tasks, in insertion order (``seq``)."""
        self.slots = Slots(gated=max_concurrent, critical=max_concurrent_critical)
        self.missed_grace_seconds = missed_grace_seconds
        self.timezone = timezone
        """The zone of cron expressions that name none (None: the machine's)."""
        self.backoff = Backoff(retry_base_seconds, retry_max_seconds, rng or random.Random())
        self._runner = runner
        self._recorder = recorder
        self._persist = persist
        self._notify = notify
        self._on_change = on_change
        self._last_seq = 0
        self._due = DueTimes(lambda task_id: self.tasks.get(task_id))
        self._queues = ReadyQueues(lambda entry: self.tasks.get(entry.task_id) is entry)
        self._active: dict[str, tuple[TaskEntry, Running]] = {}
        self._followers = Followers(self.tasks)
        self.promises = requests.Promises(lambda entry: self.tasks.get(entry.task_id) is entry)
        self._takeovers: dict[str, tuple[float, int, object]] = {}
        """Runs taken over, until they start, by execution id: due time, attempt, claim."""
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.dispatches = 0
        self.passes = 0
        """Passes of the loop made: a watchdog wakes it and waits for this to move."""

    # -- queries -----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Tasks that are due but not running (waiting for their gate or a slot)."""
        return self._queues.pending

    @property
    def running_count(self) -> int:
        """Executions in flight, frozen ones included."""
        return len(self._active)

    def find_run(self, execution_id: str) -> Running | None:
        """The execution in flight with that id, if it is one."""
        found = self._active.get(execution_id)
        return None if found is None else found[1]

    def next_due_after(self, spec: TaskSpec, after: float) -> float | None:
        """When a task with this definition is next due after ``after``."""
        return next_due_after(spec, after, self.timezone)

    def explain(self, entry: TaskEntry) -> dict[str, Any] | None:
        """Why a task is not running now and when it is expected to, as data; None when
        it runs (see :func:`._explain.explain`)."""
        return explain(entry, self.gates, self.conditions, self.slots, self.clock.now(), self.node)

    def run_now(self, task_id: str) -> str:
        """Start the task as soon as a slot is free, whatever its gate says. Returns the
        id its execution will have. Raises Conflict for a request that is refused (see
        :mod:`._requests`: every accepted one runs once)."""
        entry = self.get(task_id)
        requests.check(entry, self.node)
        if requests.pending(entry) or (entry.runs and entry.spec.overlap is Overlap.QUEUE):
            execution_id = self.promises.new(entry)
            entry.requests.append(execution_id)  # released by _start or _after_run
            return execution_id
        if entry.spec.overlap is Overlap.REPLACE:
            for run in entry.runs:
                run.cancel("replaced by a newer run (overlap=replace)")
        self._unready(entry)
        self.promises.drop(entry, queued=False)
        entry.requested_id = execution_id = self.promises.new(entry)
        self._ready_up(entry, Trigger.RUN_NOW)
        self.wake()
        return execution_id

    def take_over(
        self, task_id: str, *, execution_id: str, scheduled_at: float, attempt: int, claim: object
    ) -> bool:
        """Run again at once (it was admitted once: no gate) a run another daemon of the
        fleet claimed and stopped renewing: trigger ``takeover``, under ``execution_id``
        and ``claim``, after the task's own run in flight if any. False: not registered."""
        entry = self.tasks.get(task_id)
        if entry is None:
            return False
        self._takeovers[execution_id] = (scheduled_at, attempt, claim)
        self.promises.new(entry, execution_id)
        if entry.runs or requests.pending(entry):
            entry.requests.append(execution_id)  # released by _start or _after_run
            return True
        self._unready(entry)  # a due run waiting for its gate: due again once this ends
        entry.requested_id = execution_id
        self._ready_up(entry, Trigger.RUN_NOW)
        self.wake()
        return True

    @property
    def waiting_claims(self) -> list[object]:
        """The claims of runs taken over that have yet to start."""
        return [c for i, (_, _, c) in self._takeovers.items() if i in self.promises]

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
                    self.passes += 1
                    deadline = trio.current_time() + MAX_SLEEP_SECONDS
                    earliest = self._due.earliest
                    if earliest is not None:
                        deadline = min(deadline, deadline_for(self.clock, earliest))
                    with trio.move_on_at(deadline):
                        await self._wakeup.wait()
            finally:
                self._nursery = None

    def _promote_due(self, now: float) -> None:
        for due, task_id, kind in self._due.pop_until(now):
            entry = self.tasks.get(task_id)
            if entry is None or entry.paused or not runs_on(entry.spec, self.node):
                continue  # another daemon's: not run, skipped nor moved on here
            if kind == "force":
                if entry.ready_since is not None and entry.forced_at == due:
                    self._queues.force(entry)
                continue
            if kind == "retry":
                if entry.retry_at != due or entry.ready_since is not None:
                    continue
                if entry.runs and entry.spec.overlap is not Overlap.ALLOW:
                    continue  # pushed again when the current run ends
                entry.retry_at = None
                # Since its due time: the same for every daemon of a fleet (its claim's key).
                self._ready_up(entry, Trigger.RETRY, since=due)
                continue
            if entry.next_due != due or entry.ready_since is not None:
                continue  # stale heap item
            if entry.runs:
                self._overlapping(entry, due, now)
                continue
            if repeats(entry.spec) and now - due > self.missed_grace_seconds:
                self._missed(entry, due, now)
                continue
            self._ready_up(entry, Trigger.SCHEDULE, due=due)

    def _overlapping(self, entry: TaskEntry, due: float, now: float) -> None:
        """A run fell due while the task still runs: apply its overlap policy."""
        overlap = entry.spec.overlap
        if overlap is Overlap.QUEUE:
            entry.queued = due
        elif overlap is Overlap.REPLACE:
            for run in entry.runs:
                run.cancel("replaced by a newer run (overlap=replace)")
            self._ready_up(entry, Trigger.SCHEDULE, due=due)
        elif overlap is Overlap.ALLOW:
            self._ready_up(entry, Trigger.SCHEDULE, due=due)
        else:
            self._skip(entry, due, Trigger.SCHEDULE, OVERLAP_SKIPPED)
            self._advance(entry, due, now)

    def _missed(self, entry: TaskEntry, due: float, now: float) -> None:
        """``due`` passed while the daemon was down or the machine asleep."""
        if entry.spec.on_missed is OnMissed.ONCE:
            self._ready_up(entry, Trigger.CATCH_UP, due=due)
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
        """Move a repeating task to its next slot after ``now`` (on its grid, for an
        interval)."""
        repeat = entry.spec.repeat_seconds
        if entry.spec.cron is not None:
            entry.next_due = self.next_due_after(entry.spec, now)
        elif repeat is None:
            entry.next_due = None
        else:
            entry.next_due = due + (math.floor((now - due) / repeat) + 1) * repeat
        self._push(entry)
        self._save(entry)

    def _skip(self, entry: TaskEntry, due: float, trigger: Trigger, reason: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._recorder, entry, due, trigger, reason)

    def _apply_gates(self, now: float) -> None:
        apply_on_busy(
            self._active.values(), self.gates, self.conditions, self.slots, now, self._notify
        )

    def _dispatch(self, now: float) -> None:
        self._queues.dispatch(
            self.gates, self.slots, lambda entry: self._start(entry, now), self.conditions
        )

    def _start(self, entry: TaskEntry, now: float) -> None:
        assert self._nursery is not None
        trigger = entry.ready_trigger
        scheduled_at = entry.ready_since if entry.ready_since is not None else now
        if trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP):
            due = entry.ready_due if entry.ready_due is not None else entry.next_due
            scheduled_at = scheduled_at if due is None else min(scheduled_at, due)
        forced = entry.forced
        self._unready(entry)
        execution_id = entry.requested_id if trigger is Trigger.RUN_NOW else None
        attempt = entry.retry_attempt if trigger is Trigger.RETRY else 0
        claim = None
        if execution_id in self._takeovers:
            scheduled_at, attempt, claim = self._takeovers.pop(execution_id)
            trigger = Trigger.TAKEOVER
        entry.upstream_done = frozenset()  # ``after`` counts successes since the last start
        if trigger not in (Trigger.RETRY, Trigger.TAKEOVER):
            # An interval counts from the start of the last run, a cron expression gives
            # its next time after now; a one-shot is done once started.
            entry.next_due = self.next_due_after(entry.spec, now)
            if entry.next_due is not None:  # due again while running? overlap decides
                self._due.push(entry.next_due, entry.task_id, "due")
        gated = (
            entry.spec.priority is not Priority.CRITICAL
            and trigger not in (Trigger.RUN_NOW, Trigger.TAKEOVER)
            and not forced
        )
        if execution_id is not None:
            self.promises.started(execution_id)
        entry.requested_id = None
        run = Running(
            execution_id=execution_id or uuid.uuid4().hex,
            trigger=trigger,
            scheduled_at=scheduled_at,
            started_at=now,
            attempt=attempt,
            gated=gated,
            claim=claim,
        )
        run.critical_slot = entry.spec.priority is Priority.CRITICAL
        run.conditional = trigger not in (Trigger.RUN_NOW, Trigger.TAKEOVER) and not forced
        entry.runs.append(run)
        self._active[run.execution_id] = (entry, run)
        entry.counters.last_execution = now
        self.slots.take(run)
        self.dispatches += 1
        self._nursery.start_soon(self._execute, entry, run, name=f"execution:{entry.task_id}")
        if entry.requests and entry.spec.overlap is not Overlap.QUEUE:
            self._next_request(entry)  # allow: the next one starts beside this one
        self._changed()

    async def _execute(self, entry: TaskEntry, run: Running) -> None:
        outcome: Outcome | None = None
        claimed = True
        try:
            outcome = await self._runner(entry, run)
        except NotClaimed:
            claimed = False  # another daemon runs it: the schedule is the store's (fleet)
        except Exception:
            log.exception(
                "execution of %s failed inside the daemon",
                entry.task_id,
                extra={"task_id": entry.task_id, "execution_id": run.execution_id},
            )
        finally:
            entry.runs.remove(run)
            self._active.pop(run.execution_id, None)
            self.slots.give_back(run)
            if not claimed:
                if entry.requests and not entry.runs and entry.ready_since is None:
                    self._next_request(entry)  # a run-now or a takeover queued behind it
                self._push(entry)
            elif self.tasks.get(entry.task_id) is entry:
                self._after_run(entry, run, outcome)
                if outcome is Outcome.SUCCEEDED:
                    self._upstream_succeeded(entry)
            self._changed()

    def _after_run(self, entry: TaskEntry, run: Running, outcome: Outcome | None) -> None:
        """Retries, queued overlaps, and the next due time once a run has ended."""
        settle_retry(entry, run, outcome, self.backoff, self.clock.now())
        self._save(entry)
        if entry.requests and not entry.runs and entry.ready_since is None:
            self._next_request(entry)  # queue: accepted run-now requests go first
            self._push(entry)
            return
        if entry.queued is not None and not entry.runs:
            due, entry.queued = entry.queued, None
            if not entry.paused and entry.ready_since is None:
                self._ready_up(entry, Trigger.SCHEDULE, due=due)
                return
        self._push(entry)
        self._check_after(entry)  # its upstream may have succeeded while it ran

    def _save(self, entry: TaskEntry) -> None:
        """Have the schedule (next due, pending retry) stored, so a restart keeps it."""
        if self._persist is not None and self._nursery is not None:
            self._nursery.start_soon(self._persist, entry)

    # -- helpers -----------------------------------------------------------------

    def _next_request(self, entry: TaskEntry) -> None:
        entry.requested_id = entry.requests.pop(0)
        self._ready_up(entry, Trigger.RUN_NOW)

    def _push(self, entry: TaskEntry) -> None:
        if not entry.paused:
            if entry.next_due is not None:
                self._due.push(entry.next_due, entry.task_id, "due")
            if entry.retry_at is not None:
                self._due.push(entry.retry_at, entry.task_id, "retry")
        self._changed()

    def _ready_up(
        self,
        entry: TaskEntry,
        trigger: Trigger,
        since: float | None = None,
        due: float | None = None,
    ) -> None:
        if not runs_on(entry.spec, self.node):
            return  # the one way into a ready queue: nothing another daemon's starts here
        self._queues.add(entry, trigger, self.clock.now() if since is None else since)
        entry.ready_due = due
        forced_at = entry.forced_at
        if forced_at is not None and trigger is not Trigger.RUN_NOW:
            self._due.push(forced_at, entry.task_id, "force")
        self._notify("task_waiting", entry, None)

    def _unready(self, entry: TaskEntry) -> None:
        self._queues.remove(entry)

    def _changed(self) -> None:
        self.wake()
        self._on_change()
