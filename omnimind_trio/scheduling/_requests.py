"""Run-now requests: which are accepted, and the execution ids promised to them.

Every accepted request runs once. One made while another is pending (requested, not
started) or running follows the task's ``overlap``: ``queue`` runs it after them, ``allow``
beside them, ``replace`` cancels the running one (but refuses while one is only pending:
nothing runs yet to replace), ``skip`` refuses it. A promised id is kept only until its run
starts or is dropped (pause, delete): a daemon run by run-now for a year must not grow.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from ..exceptions import Conflict
from ..models import Overlap, Trigger
from ._entry import TaskEntry
from ._machines import refused, runs_on


def pending(entry: TaskEntry) -> bool:
    """Whether a run-now request of this task waits to start."""
    return (
        entry.ready_since is not None
        and entry.ready_trigger is Trigger.RUN_NOW
        and entry.requested_id is not None
    )


def check(entry: TaskEntry, node: str) -> None:
    """Raise Conflict if a run-now request for this task would be refused now on the
    daemon named ``node`` (one its ``machines`` leaves out refuses every request)."""
    if not runs_on(entry.spec, node):
        raise refused(entry.spec, node)
    overlap = entry.spec.overlap
    if overlap in (Overlap.QUEUE, Overlap.ALLOW):
        return
    if pending(entry):
        raise Conflict(
            f"Task already has a run requested: {entry.task_id} (execution {entry.requested_id})"
        )
    if entry.runs and overlap is Overlap.SKIP:
        raise Conflict(f"Task is already running: {entry.task_id}")


class Promises:
    """Execution ids given to run-now requests that have not started.
    ``registered(entry)`` says whether an entry is still the scheduler's."""

    def __init__(self, registered: Callable[[TaskEntry], bool]) -> None:
        self._registered = registered
        self._ids: dict[str, TaskEntry] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def new(self, entry: TaskEntry, execution_id: str | None = None) -> str:
        execution_id = execution_id or uuid.uuid4().hex
        self._ids[execution_id] = entry
        return execution_id

    def started(self, execution_id: str) -> None:
        self._ids.pop(execution_id, None)

    def drop(self, entry: TaskEntry, *, queued: bool = True) -> None:
        """Forget the entry's pending promise, and (``queued``) the ones queued behind it."""
        if entry.requested_id is not None:
            self._ids.pop(entry.requested_id, None)
        if queued:
            for execution_id in entry.requests:
                self._ids.pop(execution_id, None)
            entry.requests.clear()

    def next_to_start(self, execution_id: str) -> TaskEntry | None:
        """The task of a request that starts at its next dispatch (not one queued behind
        another request or run of its task); None for any other id."""
        entry = self._ids.get(execution_id)
        if entry is None or execution_id not in self or entry.requested_id != execution_id:
            return None
        return entry

    def __contains__(self, execution_id: object) -> bool:
        """Whether the id names a request that has not started (nor been dropped)."""
        entry = self._ids.get(execution_id) if isinstance(execution_id, str) else None
        if entry is None:
            return False
        waiting = pending(entry) and entry.requested_id == execution_id
        if self._registered(entry) and (waiting or execution_id in entry.requests):
            return True
        del self._ids[str(execution_id)]  # stale: forget it
        return False
