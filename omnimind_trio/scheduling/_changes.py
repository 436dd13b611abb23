"""The changes callers make to the scheduler's tasks (add, load, remove, update, pause,
resume) and ``after`` bookkeeping: a part of :class:`~._scheduler.Scheduler`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

from ..exceptions import TaskExists, TaskNotFound
from ..models import TaskSpec, Trigger
from . import _requests as requests
from ._after import Followers, is_ready
from ._calendar import rescheduled, schedule_key
from ._clock import Clock
from ._due import DueTimes
from ._entry import TaskEntry
from ._machines import runs_on


class TaskChanges:
    """Registering and changing tasks (mixed into :class:`~._scheduler.Scheduler`)."""

    clock: Clock
    node: str
    timezone: tzinfo | None
    tasks: dict[str, TaskEntry]
    promises: requests.Promises
    _last_seq: int
    _due: DueTimes
    _followers: Followers
    _push: Callable[[TaskEntry], None]
    _changed: Callable[[], None]
    _unready: Callable[[TaskEntry], None]
    _ready_up: Callable[..., None]
    wake: Callable[[], None]

    def get(self, task_id: str) -> TaskEntry:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    # -- changes -----------------------------------------------------------------

    def add(self, entry: TaskEntry) -> None:
        """Register a task (its ``next_due`` says when it first runs)."""
        if entry.task_id in self.tasks:
            raise TaskExists(entry.task_id)
        out_of_order = bool(self.tasks) and entry.seq < self._last_seq
        self.tasks[entry.task_id] = entry
        if out_of_order:  # a stored task registered late: keep listing in insertion order
            ordered = sorted(self.tasks.items(), key=lambda item: item[1].seq)
            self.tasks.clear()  # in place: Followers holds this dict
            self.tasks.update(ordered)
        self._last_seq = max(self._last_seq, entry.seq)
        self._followers.link(entry)
        self._push(entry)

    def load(self, entries: list[TaskEntry]) -> None:
        """Register stored tasks at start-up, in ``seq`` order: one heapify and one change
        notice for all of them, instead of a push and a notice each."""
        for entry in entries:
            if entry.task_id in self.tasks:
                raise TaskExists(entry.task_id)
            self.tasks[entry.task_id] = entry
            self._last_seq = max(self._last_seq, entry.seq)
            self._followers.link(entry)
            if entry.paused:
                continue
            if entry.next_due is not None:
                self._due.append(entry.next_due, entry.task_id, "due")
            if entry.retry_at is not None:
                self._due.append(entry.retry_at, entry.task_id, "retry")
        self._due.heapify()
        self._changed()

    def remove(self, task_id: str) -> TaskEntry:
        """Unregister a task; its running executions are cancelled."""
        entry = self.get(task_id)
        del self.tasks[task_id]
        self._followers.unlink(entry)
        self._unready(entry)
        self.promises.drop(entry)
        for run in entry.runs:
            run.cancel("the task was deleted")
        self._changed()
        return entry

    def update(self, task_id: str, spec: TaskSpec) -> TaskEntry:
        """Replace a task's definition. A running execution keeps the code it started with;
        a new repeat interval counts from the last start, a new cron expression from now."""
        entry = self.get(task_id)
        old = entry.spec
        self._followers.unlink(entry)  # by the old definition's after
        waiting = entry.ready_since is not None
        if waiting and (spec.priority is not old.priority or spec.conditions != old.conditions):
            # Move it to its new priority's queue (or out of the tasks held for their
            # conditions), keeping how long it has waited (what max_delay_hours counts).
            trigger, since, due = entry.ready_trigger, entry.ready_since, entry.ready_due
            self._unready(entry)
            entry.spec = spec
            self._ready_up(entry, trigger, since=since, due=due)
        entry.spec = spec
        self._followers.link(entry)
        here, was_here = runs_on(spec, self.node), runs_on(old, self.node)
        if was_here and not here:
            # Now another daemon's: what waits here does not start (as at a pause).
            self._unready(entry)
            self.promises.drop(entry)
            waiting = False
        elif here and not was_here and not waiting:
            self._push(entry)  # its due time, left alone while it was another's
        if spec.after != old.after:
            entry.upstream_done &= frozenset(spec.after or ())
        if schedule_key(spec) != schedule_key(old) and not waiting:
            entry.next_due = rescheduled(
                spec,
                entry.next_due,
                entry.counters.last_execution,
                self.clock.now(),
                self.timezone,
            )
            self._push(entry)
        self._check_after(entry)
        self._changed()
        return entry

    def reschedule(
        self, entry: TaskEntry, *, next_due: float | None, retry_at: float | None, attempt: int
    ) -> None:
        """Set when a task is next due and its pending retry, as another daemon of the fleet
        stored them (it ran the task)."""
        if (entry.next_due, entry.retry_at, entry.retry_attempt) == (next_due, retry_at, attempt):
            return
        entry.next_due, entry.retry_at, entry.retry_attempt = next_due, retry_at, attempt
        if entry.ready_since is None:
            self._push(entry)

    def pause(self, task_id: str) -> TaskEntry:
        entry = self.get(task_id)
        entry.paused = True
        self._unready(entry)
        self.promises.drop(entry)  # what has not started does not run (documented)
        self._changed()
        return entry

    def resume(self, task_id: str) -> TaskEntry:
        entry = self.get(task_id)
        if entry.paused:
            entry.paused = False
            self._push(entry)
            self._check_after(entry)
        return entry

    # -- after: tasks that follow others ------------------------------------------

    def dependents(self, task_id: str) -> list[str]:
        """The tasks whose ``after`` names ``task_id``, in insertion order."""
        return self._followers.of(task_id)

    def _upstream_succeeded(self, upstream: TaskEntry) -> None:
        for task_id in self.dependents(upstream.task_id):
            entry = self.tasks[task_id]
            entry.upstream_done |= {upstream.task_id}
            self._check_after(entry)

    def mark_upstream_done(self, entry: TaskEntry, upstream_ids: set[str]) -> None:
        """Restore, at start-up, which upstream tasks have succeeded since ``entry`` last
        started (the daemon reads it from the history)."""
        entry.upstream_done |= upstream_ids & frozenset(entry.spec.after or ())
        self._check_after(entry)

    def _check_after(self, entry: TaskEntry) -> None:
        """Start a task that runs ``after`` others once every one has succeeded since it
        last started (then it waits for its own gate like any run)."""
        if is_ready(entry):
            self._ready_up(entry, Trigger.UPSTREAM)
            self.wake()
