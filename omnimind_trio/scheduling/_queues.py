"""The ready queues: due tasks waiting for their gate or a slot, started in order.

FIFO within a priority; run-now requests (and tasks forced by ``max_delay_hours``) in a
queue no gate holds; catch-ups of missed runs in a queue released one at a time, each
through its own gate. Entries leave a queue lazily: one that no longer belongs (started,
removed, paused, moved to another priority) is dropped when the queue is next drained.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..models import Priority, Trigger
from ._conditions import ConditionState
from ._entry import TaskEntry
from ._gates import GateSet
from ._slots import Slots


class ReadyQueues:
    """The due tasks not yet running. ``registered(entry)`` says whether an entry is still
    the scheduler's (a removed or replaced one is dropped)."""

    def __init__(self, registered: Callable[[TaskEntry], bool]) -> None:
        self._registered = registered
        self._by_priority: dict[Priority, deque[TaskEntry]] = {p: deque() for p in Priority}
        self._now: deque[TaskEntry] = deque()
        """Run-now requests and tasks forced by ``max_delay_hours``: no gate applies."""
        self._catch_up: deque[TaskEntry] = deque()
        """Catch-ups of missed runs: released one at a time, each through its gate."""
        self._held: dict[tuple[Priority, tuple[str, ...]], deque[TaskEntry]] = {}
        """Due tasks whose ``conditions`` did not hold when their turn came, by priority
        and the conditions they ask for: looked at again only once those hold, so a
        hundred thousand tasks waiting for the person to leave cost a pass nothing."""
        self.pending = 0
        """Tasks in a queue (due, not running)."""

    def add(self, entry: TaskEntry, trigger: Trigger, since: float) -> None:
        entry.ready_since, entry.ready_trigger, entry.forced = since, trigger, False
        if trigger is Trigger.RUN_NOW:
            self._now.append(entry)
        elif trigger is Trigger.CATCH_UP:
            self._catch_up.append(entry)
        else:
            self._by_priority[entry.spec.priority].append(entry)
        self.pending += 1

    def force(self, entry: TaskEntry) -> None:
        """``entry`` waited ``max_delay_hours``: it runs at the next free slot anyway."""
        entry.forced = True
        self._now.append(entry)

    def remove(self, entry: TaskEntry) -> None:
        if entry.ready_since is not None:
            entry.ready_since = None  # its place in a queue is dropped lazily
            entry.forced = False
            self.pending -= 1

    def dispatch(
        self,
        gates: GateSet,
        slots: Slots,
        start: Callable[[TaskEntry], None],
        conditions: ConditionState,
    ) -> None:
        """``start`` what may start now, in order, while slots are free. A task whose
        ``conditions`` do not hold stays in its queue without holding back the ones behind."""

        def conditions_hold(entry: TaskEntry) -> bool:
            return entry.spec.conditions is None or conditions.allows(entry.spec.conditions)

        self._drain(self._now, _bypasses_gates, slots, start, mixed=True)
        if self._catch_up and not slots.catch_up_running:

            def admitted(entry: TaskEntry) -> bool:
                return gates.is_open(entry.spec.priority) and conditions_hold(entry)

            self._drain(
                self._catch_up, _catches_up, slots, start, admit=admitted, limit=1, mixed=True
            )
        for priority in Priority:
            if not gates.is_open(priority):
                continue
            belongs = _queued_at(priority)
            for (held_priority, required), held in list(self._held.items()):
                # The held went before the ones still queued: they are served first.
                if held_priority is priority and all(conditions.admits(c) for c in required):
                    self._drain(held, belongs, slots, start, admit=conditions_hold)
                    if not held:
                        del self._held[held_priority, required]
            queue = self._by_priority[priority]
            self._drain(queue, belongs, slots, start, admit=conditions_hold, park=self._park)

    def _park(self, entry: TaskEntry) -> None:
        required = entry.spec.conditions.required if entry.spec.conditions is not None else ()
        self._held.setdefault((entry.spec.priority, required), deque()).append(entry)

    def _drain(
        self,
        queue: deque[TaskEntry],
        belongs: Callable[[TaskEntry], bool],
        slots: Slots,
        start: Callable[[TaskEntry], None],
        *,
        admit: Callable[[TaskEntry], bool] = lambda entry: True,
        limit: int | None = None,
        mixed: bool = False,
        park: Callable[[TaskEntry], None] | None = None,
    ) -> None:
        """Start what ``queue`` may start, in order. An entry ``admit`` refuses is left in
        place, or handed to ``park`` (taken out of the queue)."""
        started = 0
        index = 0
        while index < len(queue) and (limit is None or started < limit):
            entry = queue[index]
            if entry.ready_since is None or not self._registered(entry) or not belongs(entry):
                del queue[index]
                continue
            full = slots.full(critical=entry.spec.priority is Priority.CRITICAL)
            if full and not mixed:
                return  # one priority, one kind of slot: nothing more starts from here
            if not admit(entry):
                # Its conditions (or, in the catch-up queue, its gate) do not hold: the
                # ones behind it may still start.
                if park is None:
                    index += 1
                else:
                    del queue[index]
                    park(entry)
                continue
            if full:
                index += 1  # the run-now and catch-up queues mix both kinds of slot:
                continue  # a full kind must not hold back the other
            del queue[index]
            start(entry)
            started += 1


def _bypasses_gates(entry: TaskEntry) -> bool:
    return entry.bypasses_gates


def _catches_up(entry: TaskEntry) -> bool:
    return entry.ready_trigger is Trigger.CATCH_UP


def _queued_at(priority: Priority) -> Callable[[TaskEntry], bool]:
    def belongs(entry: TaskEntry) -> bool:
        return entry.spec.priority is priority and entry.ready_trigger in (
            Trigger.SCHEDULE,
            Trigger.RETRY,
            Trigger.UPSTREAM,
        )

    return belongs
